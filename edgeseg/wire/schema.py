"""A small, readable way to declare protobuf messages at run time, and the private pool.

Contract: :func:`proto_file` turns a declaration written with :func:`message`, :func:`field`,
:func:`repeated`, :func:`optional`, :func:`map_field`, :func:`oneof` and :func:`enum` into a
``FileDescriptorProto`` and adds it to :data:`POOL`, a descriptor pool of its own (never
protobuf's default pool, so these classes never clash with the official ``*_pb2`` modules
when both are loaded, as in the tests). It returns a :class:`ProtoFile`: a namespace shaped
like a generated ``*_pb2`` module (message classes, enum wrappers and enum constants by
name, ``DESCRIPTOR``), so code written against ``tensorflow_serving.apis.predict_pb2`` runs
unchanged against ``edgeseg.wire.apis.predict_pb2``.

Declarations mirror the ``.proto`` source line for line: a field's type is a scalar name
(``"int64"``, ``"string"``...) or a fully qualified ``".package.Message"``/enum name, which
the pool resolves. Files must be added dependencies first.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, TypeAlias

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from google.protobuf.internal import enum_type_wrapper

# protobuf ships no types that know these run-time classes: a message's fields are Any to
# mypy. The aliases say in signatures which kind of object is meant.
Message: TypeAlias = Any  # an instance of a message class built here (or a *_pb2 one)
MessageClass: TypeAlias = Any  # such a class: FromString, DESCRIPTOR, fields by name

_F = FieldDescriptorProto
SCALARS = {
    "double": _F.TYPE_DOUBLE, "float": _F.TYPE_FLOAT, "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64, "int32": _F.TYPE_INT32, "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "uint32": _F.TYPE_UINT32,
}

POOL = descriptor_pool.DescriptorPool()


def _well_known(module: Any) -> None:
    """google/protobuf/{any,wrappers}.proto in our pool: same names, and Any keeps Pack()."""
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    POOL.Add(fdp)


_well_known(any_pb2)
_well_known(wrappers_pb2)
ANY_FILE = "google/protobuf/any.proto"
WRAPPERS_FILE = "google/protobuf/wrappers.proto"


def field(name: str, number: int, type_: str, *, label: int = _F.LABEL_OPTIONAL,
          proto3_optional: bool = False) -> FieldDescriptorProto:
    proto = _F(name=name, number=number, label=label)
    if type_ in SCALARS:
        proto.type = SCALARS[type_]
    else:
        if not type_.startswith("."):
            raise ValueError(f"field {name}: type {type_!r} must be fully qualified")
        proto.type_name = type_  # message or enum: the pool resolves which
    if proto3_optional:
        proto.proto3_optional = True
    return proto


def repeated(name: str, number: int, type_: str) -> FieldDescriptorProto:
    return field(name, number, type_, label=_F.LABEL_REPEATED)


def optional(name: str, number: int, type_: str) -> FieldDescriptorProto:
    """proto3 ``optional``: presence tracked through a synthetic one-field oneof."""
    return field(name, number, type_, proto3_optional=True)


def map_field(name: str, number: int, key: str, value: str
              ) -> tuple[str, FieldDescriptorProto, str, str]:
    return ("map", field(name, number, value), key, value)


def oneof(name: str, *fields: FieldDescriptorProto
          ) -> tuple[str, str, tuple[FieldDescriptorProto, ...]]:
    return ("oneof", name, fields)


def enum(name: str, values: str) -> descriptor_pb2.EnumDescriptorProto:
    """``values``: whitespace-separated ``NAME=number`` pairs, in declaration order."""
    proto = descriptor_pb2.EnumDescriptorProto(name=name)
    for pair in values.split():
        value_name, number = pair.split("=")
        proto.value.add(name=value_name, number=int(number))
    return proto


def message(name: str, *members: Any) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=name)
    for member in members:
        if isinstance(member, _F):
            msg.field.append(member)
        elif isinstance(member, descriptor_pb2.DescriptorProto):
            msg.nested_type.append(member)
        elif isinstance(member, descriptor_pb2.EnumDescriptorProto):
            msg.enum_type.append(member)
        elif member[0] == "oneof":
            index = len(msg.oneof_decl)
            msg.oneof_decl.add(name=member[1])
            for f in member[2]:
                f.oneof_index = index
                msg.field.append(f)
        else:  # map: a nested *Entry message plus a repeated field of it
            _, value_field, key, value = member
            entry_name = "".join(p.title() for p in value_field.name.split("_")) + "Entry"
            entry = msg.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.extend([field("key", 1, key), field("value", 2, value)])
            value_field.ClearField("type")
            value_field.label = _F.LABEL_REPEATED
            value_field.type = _F.TYPE_MESSAGE
            value_field.type_name = f"{name}.{entry_name}"  # relative: resolved in scope
            msg.field.append(value_field)
    for stored in msg.field:  # synthetic oneofs come after the real ones
        if stored.proto3_optional:
            stored.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name=f"_{stored.name}")
    return msg


class ProtoFile(SimpleNamespace):
    """What a generated ``*_pb2`` module offers: classes, enums and enum values by name."""


def proto_file(name: str, package: str, *members: Any, deps: tuple[str, ...] = ()) -> ProtoFile:
    fdp = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3",
                                             dependency=list(deps))
    for member in members:
        if isinstance(member, descriptor_pb2.EnumDescriptorProto):
            fdp.enum_type.append(member)
        else:
            fdp.message_type.append(member)
    POOL.Add(fdp)
    descriptor = POOL.FindFileByName(name)
    out = ProtoFile(DESCRIPTOR=descriptor)
    for msg in descriptor.message_types_by_name.values():
        setattr(out, msg.name, message_factory.GetMessageClass(msg))
    for enum_desc in descriptor.enum_types_by_name.values():
        setattr(out, enum_desc.name, enum_type_wrapper.EnumTypeWrapper(enum_desc))
        for value in enum_desc.values:
            setattr(out, value.name, value.number)
    return out


def message_class(full_name: str) -> MessageClass:
    """The class of any message in the pool, by full name (e.g. "tensorflow.TensorProto")."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))
