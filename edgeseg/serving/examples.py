"""tf.Example requests: the input handling Classify, Regress and MultiInference share.

Contract (as TF Serving's util.cc and the shared part of classifier.cc/regressor.cc):

- :func:`serialized_examples`: the request's ``Input`` (an ``example_list``, or an
  ``example_list_with_context`` whose context is merged into every example) as a 1-D batch
  of serialized tf.Examples, in request order; an empty input is INVALID_ARGUMENT.
- :func:`run_on_examples`: that batch fed to the signature's one DT_STRING input (a
  signature with more inputs, or another dtype, is INVALID_ARGUMENT) through
  :func:`~edgeseg.serving.predict.run_signature`, so a run gets its timeout, and a failure
  its explanation, exactly as Predict's do: with ``timeout_ms`` > 0 a run past it is
  cancelled and DEADLINE_EXCEEDED.
- :func:`check_batch`: every output has one row per example, else INVALID_ARGUMENT.
- :func:`answer`: one Classify or Regress call: a counted handle on the version the spec
  names, the signature (an unknown one FAILED_PRECONDITION; its ``method_name`` checked
  when ``--enable_signature_method_name_check``), the response's ``model_spec`` naming
  model, version and signature used, and the result filled by the caller's ``fill``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument
from edgeseg.serving import signatures
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.predict import fill_model_spec, run_signature
from edgeseg.serving.tensors import dtype_name
from edgeseg.wire.framework import types_pb2
from edgeseg.wire.schema import Message

# (model, signature, examples, result message, timeout_ms): fills the result
Fill = Callable[[Any, Any, np.ndarray, Message, int], None]


def serialized_examples(request_input: Any) -> np.ndarray:
    """The Input proto as a 1-D object array of serialized tf.Examples."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        blobs = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        # Concatenated protos parse as one merged message: example features win.
        blobs = [context + e.SerializeToString() for e in with_context.examples]
    else:
        blobs = []
    if not blobs:
        raise InvalidArgument("Input is empty.")
    array = np.empty(len(blobs), dtype=object)
    array[:] = blobs
    return array


def run_on_examples(model: Any, signature: Any, examples: np.ndarray,
                    aliases: list[str], timeout_ms: int = 0) -> list[np.ndarray]:
    """The outputs ``aliases`` (in that order) of ``signature`` run on ``examples``."""
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    (alias, info), = signature.inputs.items()
    if info.dtype != types_pb2.DT_STRING:
        raise InvalidArgument(
            f"input '{alias}': expected serialized tf.Examples (DT_STRING) but the signature "
            f"takes {dtype_name(info.dtype)}"
        )
    outputs = run_signature(model, signature, {alias: examples}, aliases, timeout_ms)
    return [outputs[a] for a in aliases]


def check_batch(value: np.ndarray, batch: int, what: str) -> None:
    if value.ndim < 1 or value.shape[0] != batch:
        raise InvalidArgument(
            f"Input batch size did not match output batch size: {batch} vs. "
            f"{value.shape[0] if value.ndim else 'a scalar'} ({what})"
        )


def answer(core: Core, request: Any, method: str, response: Any, fill: Fill,
           timeout_ms: int = 0) -> Any:
    """Classify and Regress share everything but the signature method and the filling."""
    examples = serialized_examples(request.input)
    with core.handle(request.model_spec) as handle:
        name, signature = signatures.find_signature(
            handle.model.signature_defs, request.model_spec.signature_name)
        signatures.check_method(name, signature, method, core.options.method_name_check)
        fill_model_spec(response.model_spec, handle.name, handle.version, name)
        fill(handle.model, signature, examples, response.result, timeout_ms)
        return response
