"""TF Serving's small config protos that the tensorflow-serving-api wheel does not ship
(BatchingParameters, MonitoringConfig, SSLConfig), defined at run time, and text-proto
parsing with one error style: TF Serving's.

Contract: :func:`message_class` adds a file to protobuf's default pool the first time and
returns the message class every time after (idempotent, so modules may call it lazily).
:func:`parse` returns a filled message or raises InvalidArgument whose message starts as
TF Serving's does (protobuf C++'s text-format error collector)::

    Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type
    "tensorflow.serving.ModelServerConfig" has no field named "improperly". (in FILE)

Our run-time copies live in the ``edgeseg.serving`` package (so they never clash with a
wheel that does ship them) but keep TF Serving's message names; errors name them as
``tensorflow.serving.*``, which is what operators and scripts grep for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from edgeseg.errors import InvalidArgument
from edgeseg.wire.schema import MessageClass

PACKAGE = "edgeseg.serving"
TF_SERVING_PACKAGE = "tensorflow.serving"
_POSITION = re.compile(r"^\d+:\d+ : ")  # how Python's ParseError prefixes line:column


def message_class(name: str, file_name: str,
                  build: Callable[[descriptor_pb2.FileDescriptorProto], None],
                  dependencies: tuple[str, ...] = ()) -> MessageClass:
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


def parse(cls: MessageClass, text: str, origin: str) -> Any:
    """A ``cls`` filled from ``text``; InvalidArgument in TF Serving's words otherwise."""
    message = cls()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise InvalidArgument(parse_error_message(cls, exc, origin)) from None
    return message


def official_names(text: str) -> str:
    """``edgeseg.serving.X`` -> ``tensorflow.serving.X``: the names TF Serving's users know."""
    return text.replace(f"{PACKAGE}.", f"{TF_SERVING_PACKAGE}.")


def parse_error_message(cls: MessageClass, exc: text_format.ParseError, origin: str) -> str:
    position = f"{exc.GetLine()}:{exc.GetColumn()}: " if exc.GetLine() is not None else ""
    detail = _POSITION.sub("", str(exc), count=1)
    return (f"Error parsing text-format {official_names(cls.DESCRIPTOR.full_name)}: "
            f"{position}{official_names(detail)} (in {origin})")
