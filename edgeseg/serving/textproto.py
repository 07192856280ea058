"""TF Serving's small config protos that the tensorflow-serving-api wheel does not ship
(BatchingParameters, MonitoringConfig, SSLConfig), defined at run time, and text-proto
parsing with one error style.

Contract: :func:`message_class` adds a file to protobuf's default pool the first time and
returns the message class every time after (idempotent, so modules may call it lazily).
:func:`parse` returns a filled message or raises InvalidArgument naming the file and the
proto's problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from edgeseg.errors import InvalidArgument

PACKAGE = "edgeseg.serving"


def message_class(name: str, file_name: str,
                  build: Callable[[descriptor_pb2.FileDescriptorProto], None],
                  dependencies: tuple[str, ...] = ()) -> type:
    """The class of message ``PACKAGE.name``; ``build`` adds its message types to the file."""
    pool = descriptor_pool.Default()
    full = f"{PACKAGE}.{name}"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=PACKAGE, syntax="proto3",
                                             dependency=list(dependencies))
    build(fdp)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))


def parse(cls: type, text: str, origin: str) -> Any:
    message = cls()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise InvalidArgument(f"{origin}: not a valid {cls.DESCRIPTOR.name} text proto: {exc}"
                              ) from None
    return message
