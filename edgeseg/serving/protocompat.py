"""The protobuf calls whose spelling changed between the protobuf releases TensorFlow pins.

Contract: every protobuf call that differs between protobuf 4.25 (what TensorFlow 2.16-2.17
and tensorflow-serving-api 2.17 pin, ``protobuf<5``) and 5.x-7.x (TensorFlow 2.18-2.21)
goes through this module, so the rest of edgeseg spells each call one way. Pure, no I/O,
imports no TensorFlow.

What differs, and where it is used:

- ``json_format.MessageToDict``: ``including_default_value_fields`` became
  ``always_print_fields_with_no_presence`` in protobuf 5.26, and the old name was removed
  (REST status and metadata, rest_api.py).

What does not, checked on both ends (``make test-floor`` runs the serving and exporter tests
on the lowest): ``message_factory.GetMessageClass`` (protobuf >= 4.21; ``GetPrototype`` is
gone in 5.x, so we never use it), ``DescriptorPool.Add`` with a ``FileDescriptorProto``,
``text_format.Parse`` and ``ParseError.GetLine``/``GetColumn``, ``json_format.ParseDict``.
"""

from __future__ import annotations

import inspect
from typing import Any

from google.protobuf import json_format

# The keyword that prints fields still at their default ([] , 0, ""), as TF Serving's REST
# API does (it uses the C++ JsonPrintOptions.always_print_fields_with_no_presence).
_PRINT_DEFAULTS = (
    "always_print_fields_with_no_presence"
    if "always_print_fields_with_no_presence"
    in inspect.signature(json_format.MessageToDict).parameters
    else "including_default_value_fields"
)


def message_to_dict(message: Any, preserving_proto_field_name: bool = True) -> dict:
    """``MessageToDict`` with fields at their default value printed, on any protobuf."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=preserving_proto_field_name,
        **{_PRINT_DEFAULTS: True},
    )
