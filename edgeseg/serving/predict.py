"""Predict: the transport-independent core of PredictionService.Predict.

Contract: :func:`run` takes the server core, a model spec, the input arrays (or a function
of the signature that decodes them: REST's JSON needs the signature's dtypes), an output
filter and a timeout, and returns a :class:`PredictResult`: the model's name, the version
that actually answered, the signature used ("serving_default" when the spec left it empty)
and the output arrays. It holds a counted handle on that version for exactly the duration
of the call; with ``timeout_ms`` > 0 (REST's --rest_api_timeout_in_ms, a gRPC client's
deadline) the run is cancelled past it and DEADLINE_EXCEEDED is raised. Every deliberate
failure is an :class:`~edgeseg.errors.EdgesegError` (see signatures.py for which status
means what). The transports only convert: :func:`predict` is gRPC's (PredictRequest in,
PredictResponse out), rest_api.py has REST's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.serving import signatures, tensors
from edgeseg.serving.core_protocol import Core
from edgeseg.wire.apis import predict_pb2
from edgeseg.wire.schema import Message


def fill_model_spec(out: Message, name: str, version: int,
                    signature_name: str | None = None) -> None:
    out.name = name
    out.version.value = version
    if signature_name is not None:
        out.signature_name = signature_name


def run_signature(model: Any, signature: Any, inputs: dict[str, Any],
                  output_filter: Any = (), timeout_ms: int = 0) -> dict[str, Any]:
    """Check ``inputs`` against ``signature``, run it (within ``timeout_ms`` when > 0), and
    return {output alias: array}."""
    signatures.check_inputs(signature, inputs)
    aliases = signatures.select_outputs(signature, output_filter)
    feeds = {signature.inputs[a].name: value for a, value in inputs.items()}
    fetches = [signature.outputs[a].name for a in aliases]
    try:
        results = (model.run(feeds, fetches, timeout_ms) if timeout_ms
                   else model.run(feeds, fetches))
    except EdgesegError as exc:
        raise signatures.explain_failure(signature, inputs, exc) from None
    return dict(zip(aliases, results, strict=True))


@dataclass(frozen=True)
class PredictResult:
    name: str
    version: int
    signature_name: str
    outputs: dict[str, Any]  # output alias -> array


Inputs = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]


def run(core: Core, spec: Message, inputs: Inputs, output_filter: Any = (),
        timeout_ms: int = 0) -> PredictResult:
    """Run the signature ``spec`` names on ``inputs`` ({alias: array}, or a function of the
    signature that returns them)."""
    with core.handle(spec) as handle:
        sig_name, signature = signatures.find_signature(handle.model.signature_defs,
                                                        spec.signature_name)
        arrays = inputs(signature) if callable(inputs) else inputs
        outputs = run_signature(handle.model, signature, dict(arrays), output_filter,
                                timeout_ms)
        return PredictResult(handle.name, handle.version, sig_name, outputs)


def predict(core: Core, request: Message, timeout_ms: int = 0) -> Message:
    """gRPC's side: a PredictRequest's tensors decoded, run, the reply encoded."""
    inputs = {alias: tensors.decode(proto, f"input '{alias}'")
              for alias, proto in request.inputs.items()}
    result = run(core, request.model_spec, inputs, request.output_filter, timeout_ms)
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, result.name, result.version, result.signature_name)
    for alias, value in result.outputs.items():
        tensors.encode(value, out=response.outputs[alias])
    return response
