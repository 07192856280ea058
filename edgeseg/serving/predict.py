"""Predict: the transport-independent core of PredictionService.Predict.

Contract: :func:`predict` takes a ``tensorflow.serving.PredictRequest`` and a
:class:`~edgeseg.serving.server_core.ServerCore`, and returns a ``PredictResponse`` whose
``model_spec`` names the model, the version that actually answered and the signature used
("serving_default" when the request left it empty). It holds a counted handle on that
version for exactly the duration of the call. Every deliberate failure is an
:class:`~edgeseg.errors.EdgesegError` (see signatures.py for which status means what);
transports convert protos and map statuses, nothing more. gRPC and (later) REST share it.
"""

from __future__ import annotations

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


def predict(core: Core, request: Message,
            timeout_ms: int = 0) -> Message:
    """The reply to ``request``; with ``timeout_ms`` > 0 (REST's --rest_api_timeout_in_ms, a
    gRPC client's deadline) the run is cancelled past it and DEADLINE_EXCEEDED is raised."""
    with core.handle(request.model_spec) as handle:
        sig_name, signature = signatures.find_signature(
            handle.model.signature_defs, request.model_spec.signature_name
        )
        inputs = {
            alias: tensors.decode(proto, f"input '{alias}'")
            for alias, proto in request.inputs.items()
        }
        outputs = run_signature(handle.model, signature, inputs, request.output_filter,
                                timeout_ms)
        response = predict_pb2.PredictResponse()
        fill_model_spec(response.model_spec, handle.name, handle.version, sig_name)
        for alias, value in outputs.items():
            tensors.encode(value, out=response.outputs[alias])
        return response
