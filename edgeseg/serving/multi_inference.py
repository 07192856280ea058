"""MultiInference: several Classify/Regress signatures of one model on the same examples.

Contract (as TF Serving's multi_inference.cc): every task names the same model and a
different signature (else INVALID_ARGUMENT; at least one task) and a method that is
classify or regress (else UNIMPLEMENTED). All tasks run on ONE version, through one counted
handle, on the same input (examples.py), each filled as Classify (classify.py) or Regress
(regress.py) would; the results keep task order, each echoing the model spec it used.
``timeout_ms`` > 0 bounds the whole call: each task runs within what is left of it, and a
task that would start past it, or runs past it, is DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import math
import time
from typing import Any

from edgeseg.errors import DeadlineExceeded, InvalidArgument, Unimplemented
from edgeseg.serving import signatures
from edgeseg.serving.classify import classify_with
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.examples import serialized_examples
from edgeseg.serving.predict import fill_model_spec
from edgeseg.serving.regress import regress_with
from edgeseg.wire.apis import inference_pb2
from edgeseg.wire.schema import Message


def _check_tasks(tasks: Any) -> None:
    if not tasks:
        raise InvalidArgument("MultiInferenceRequest must contain at least one task.")
    model_name = tasks[0].model_spec.name
    seen: set[str] = set()
    for task in tasks:
        if task.model_spec.name != model_name:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        sig = task.model_spec.signature_name or signatures.DEFAULT_SIGNATURE
        if sig in seen:
            raise InvalidArgument(f"Duplicate evaluation of signature: {sig}")
        seen.add(sig)
        if task.method_name not in (signatures.CLASSIFY_METHOD, signatures.REGRESS_METHOD):
            raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")


def _remaining_ms(ends: float | None) -> int:
    """What is left until ``ends`` (time.monotonic) as a run's timeout; 0: no deadline."""
    if ends is None:
        return 0
    left = ends - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the call's deadline passed before all its tasks ran")
    return max(1, math.ceil(left * 1000))


def multi_inference(core: Core, request: Any, timeout_ms: int = 0) -> Message:
    """The reply to a MultiInferenceRequest (see the module docstring)."""
    ends = time.monotonic() + timeout_ms / 1000 if timeout_ms > 0 else None
    _check_tasks(request.tasks)
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    with core.handle(request.tasks[0].model_spec) as handle:
        for task in request.tasks:
            name, signature = signatures.find_signature(
                handle.model.signature_defs, task.model_spec.signature_name)
            signatures.check_method(name, signature, task.method_name,
                                    core.options.method_name_check)
            result = response.results.add()
            fill_model_spec(result.model_spec, handle.name, handle.version, name)
            if task.method_name == signatures.CLASSIFY_METHOD:
                classify_with(handle.model, signature, examples, result.classification_result,
                              _remaining_ms(ends))
            else:
                regress_with(handle.model, signature, examples, result.regression_result,
                             _remaining_ms(ends))
    return response
