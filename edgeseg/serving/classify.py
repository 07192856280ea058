"""Classify, Regress and MultiInference: tf.Example in, scores/classes/values out.

Contract (as TF Serving's classifier.cc, regressor.cc, multi_inference.cc): the request's
``Input`` (an ``example_list``, or an ``example_list_with_context`` whose context is merged
into every example) is fed, serialized, to the signature's one DT_STRING input. A
classification signature has a ``scores`` (DT_FLOAT [batch, classes]) and/or ``classes``
(DT_STRING, same shape) output; a regression signature one ``outputs`` DT_FLOAT [batch] or
[batch, 1]. Results keep example order. MultiInference runs several classify/regress
signatures of ONE model (one version, one handle) on the same input. Responses echo the
model spec used, version included. Errors: empty input and malformed signatures are
INVALID_ARGUMENT; unknown signatures FAILED_PRECONDITION; an unknown task method
UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument, Unimplemented
from edgeseg.serving import signatures
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.predict import fill_model_spec
from edgeseg.serving.tensors import array_dtype_name, dtype_name
from edgeseg.wire.apis import classification_pb2, inference_pb2, regression_pb2
from edgeseg.wire.framework import types_pb2
from edgeseg.wire.schema import Message

CLASSES = "classes"
SCORES = "scores"
OUTPUTS = "outputs"


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


def _run_on_examples(model: Any, signature: Any, examples: np.ndarray,
                     aliases: list[str], timeout_ms: int = 0) -> list[np.ndarray]:
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    (alias, info), = signature.inputs.items()
    if info.dtype != types_pb2.DT_STRING:
        raise InvalidArgument(
            f"input '{alias}': expected serialized tf.Examples (DT_STRING) but the signature "
            f"takes {dtype_name(info.dtype)}"
        )
    feeds = {info.name: examples}
    fetches = [signature.outputs[a].name for a in aliases]
    return model.run(feeds, fetches, timeout_ms) if timeout_ms else model.run(feeds, fetches)


def _check_batch(value: np.ndarray, batch: int, what: str) -> None:
    if value.ndim < 1 or value.shape[0] != batch:
        raise InvalidArgument(
            f"Input batch size did not match output batch size: {batch} vs. "
            f"{value.shape[0] if value.ndim else 'a scalar'} ({what})"
        )


def classify_with(model: Any, signature: Any, examples: np.ndarray,
                  result: Message, timeout_ms: int = 0) -> None:
    aliases = [a for a in (CLASSES, SCORES) if a in signature.outputs]
    if not aliases:
        raise InvalidArgument(
            "Expected classification signature outputs to contain at least one of "
            "classes or scores."
        )
    values = dict(zip(aliases, _run_on_examples(model, signature, examples, aliases, timeout_ms),
                      strict=True))
    for alias, value in values.items():
        _check_batch(value, len(examples), alias)
        if value.ndim != 2:
            raise InvalidArgument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)} "
                f"for {alias}"
            )
    classes, scores = values.get(CLASSES), values.get(SCORES)
    if scores is not None and scores.dtype != np.float32:
        raise InvalidArgument(f"Expected scores Tensor of DT_FLOAT, got "
                              f"{array_dtype_name(scores)}")
    present = scores if scores is not None else classes
    assert present is not None  # the signature check above requires one of them
    width = present.shape[1]
    for i in range(len(examples)):
        classification = result.classifications.add()
        for j in range(width):
            item = classification.classes.add()
            if classes is not None:
                label = classes[i, j]
                item.label = label.decode() if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[i, j])


def regress_with(model: Any, signature: Any, examples: np.ndarray,
                 result: Message, timeout_ms: int = 0) -> None:
    if OUTPUTS not in signature.outputs or len(signature.outputs) != 1:
        raise InvalidArgument("Expected one output Tensor named outputs.")
    (value,) = _run_on_examples(model, signature, examples, [OUTPUTS], timeout_ms)
    _check_batch(value, len(examples), OUTPUTS)
    if value.ndim > 2 or (value.ndim == 2 and value.shape[1] != 1):
        raise InvalidArgument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {list(value.shape)}"
        )
    for v in value.reshape(-1):
        result.regressions.add().value = float(v)


def _answer(core: Core, request: Any, method: str, response: Any, fill: Any,
            timeout_ms: int) -> Any:
    """Classify and Regress share everything but the signature method and the filling."""
    examples = serialized_examples(request.input)
    with core.handle(request.model_spec) as handle:
        name, signature = signatures.find_signature(
            handle.model.signature_defs, request.model_spec.signature_name)
        signatures.check_method(name, signature, method, core.options.method_name_check)
        fill_model_spec(response.model_spec, handle.name, handle.version, name)
        fill(handle.model, signature, examples, response.result, timeout_ms)
        return response


def classify(core: Core, request: Any,
             timeout_ms: int = 0) -> Message:
    return _answer(core, request, signatures.CLASSIFY_METHOD,
                   classification_pb2.ClassificationResponse(), classify_with, timeout_ms)


def regress(core: Core, request: Any,
            timeout_ms: int = 0) -> Message:
    return _answer(core, request, signatures.REGRESS_METHOD,
                   regression_pb2.RegressionResponse(), regress_with, timeout_ms)


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


def multi_inference(core: Core, request: Any) -> Message:
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
                classify_with(handle.model, signature, examples, result.classification_result)
            else:
                regress_with(handle.model, signature, examples, result.regression_result)
    return response
