"""The API cores without a transport: Predict, Classify, Regress, MultiInference,
GetModelMetadata and GetModelStatus called directly on a ServerCore.

The core serves TF Serving's own half_plus_two (y = 0.5x + 2; regress_x_to_y2 0.5x + 3,
regress_x2_to_y3 0.5x2 + 3; version 123) and models.py's slow model. Answers are checked
against TF Serving's (values, and the model_spec echoed: name, version, signature), errors
by their status (edgeseg/errors.py), and a timeout by DeadlineExceeded from a run cut short.
No gRPC, no HTTP: the transports have their own tests (test_server_tfserving.py,
test_rest_api.py, test_deadline.py).
"""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import pytest

from edgeseg.errors import DeadlineExceeded, EdgesegError, Status
from edgeseg.serving import (
    classify,
    model_service,
    multi_inference,
    predict,
    regress,
    signatures,
    tensors,
)
from edgeseg.serving.config import ModelConfig
from edgeseg.serving.servable import State
from edgeseg.serving.server_core import CoreOptions, ServerCore
from edgeseg.wire.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)
from edgeseg.wire.framework import example_pb2

from .conftest import tfs_data
from .models import slow_model

HALF, SLOW = "half", "slow"
VERSION = 123
LONG_RUN = 100_000_000  # the slow model's spins: minutes of running unless cancelled
TIMEOUT_MS = 100
CLASSIFY, REGRESS = signatures.CLASSIFY_METHOD, signatures.REGRESS_METHOD


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    half = tfs_data("saved_model_half_plus_two_cpu")
    slow = tmp_path_factory.mktemp("slow")
    slow_model(slow / "1")
    core = ServerCore(CoreOptions(file_system_poll_wait_s=0))
    core.start()
    try:
        assert core.apply_config([ModelConfig(HALF, str(half)), ModelConfig(SLOW, str(slow))],
                                 wait_s=120)
        yield core
    finally:
        core.stop(5)


def _spec(request, name: str, signature: str = "", version: int | None = None):
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    return request


def predict_request(name=HALF, signature="", version=None, **inputs):
    request = _spec(predict_pb2.PredictRequest(), name, signature, version)
    for key, value in inputs.items():
        tensors.encode(np.asarray(value), out=request.inputs[key])
    return request


def example(**features) -> example_pb2.Example:
    out = example_pb2.Example()
    for key, value in features.items():
        feature = out.features.feature[key]
        if isinstance(value, int):
            feature.int64_list.value.append(value)
        else:
            feature.float_list.value.append(value)
    return out


def examples_request(kind, signature, *examples, name=HALF):
    request = _spec(kind(), name, signature)
    request.input.example_list.examples.extend(examples)
    return request


def classify_request(signature, *examples, name=HALF):
    return examples_request(classification_pb2.ClassificationRequest, signature, *examples,
                            name=name)


def regress_request(signature, *examples, name=HALF):
    return examples_request(regression_pb2.RegressionRequest, signature, *examples, name=name)


def multi_request(*tasks, name=HALF, examples=()):
    """``tasks``: (signature, method_name) pairs, all on model ``name``."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in tasks:
        _spec(request.tasks.add(method_name=method), name, signature)
    request.input.example_list.examples.extend(examples)
    return request


def spec_of(message) -> tuple[str, int, str]:
    spec = message.model_spec
    return spec.name, spec.version.value, spec.signature_name


def raises(status: Status, match: str, call, *args):
    with pytest.raises(EdgesegError, match=match) as err:
        call(*args)
    assert err.value.status is status, err.value
    return err.value


# --- Predict --------------------------------------------------------------------------

def test_predict_answers_with_the_spec_it_used(core):
    response = predict.predict(core, predict_request(x=np.float32([[1.0], [2.0], [5.0]])))
    assert tensors.decode(response.outputs["y"], "y").tolist() == [[2.5], [3.0], [4.5]]
    assert spec_of(response) == (HALF, VERSION, "serving_default")


def test_the_predict_core_takes_arrays_or_a_decoder_of_the_signature(core):
    spec = predict_request().model_spec
    result = predict.run(core, spec, {"x": np.float32([[1.0]])})
    assert (result.name, result.version, result.signature_name) == (HALF, VERSION,
                                                                     "serving_default")
    assert result.outputs["y"].tolist() == [[2.5]]
    seen = []

    def decode(signature):  # REST's way: the JSON's dtypes come from the signature
        seen.append(sorted(signature.inputs))
        return {"x": np.float32([[4.0]])}

    assert predict.run(core, spec, decode).outputs["y"].tolist() == [[4.0]]
    assert seen == [["x"]]


def test_predict_other_signature_version_and_output_filter(core):
    request = predict_request(signature="regress_x2_to_y3", version=VERSION,
                              inputs=np.float32([4.0]))
    request.output_filter.append("outputs")
    response = predict.predict(core, request)
    assert list(response.outputs) == ["outputs"]
    assert tensors.decode(response.outputs["outputs"], "outputs").tolist() == [5.0]
    assert spec_of(response) == (HALF, VERSION, "regress_x2_to_y3")


@pytest.mark.parametrize(("request_", "status", "message"), [
    (predict_request("nope", x=np.float32([[1.0]])), Status.NOT_FOUND,
     r"Servable not found for request: Latest\(nope\)"),
    (predict_request(version=9, x=np.float32([[1.0]])), Status.NOT_FOUND,
     r"Specific\(half, 9\)"),
    (predict_request("", x=np.float32([[1.0]])), Status.INVALID_ARGUMENT, "Missing ModelSpec"),
    (predict_request(signature="nope", x=np.float32([[1.0]])), Status.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (predict_request(z=np.float32([[1.0]])), Status.INVALID_ARGUMENT,
     r"Sent extra: \{z\}. Missing but required: \{x\}."),
    (predict_request(x=np.int32([[1]])), Status.INVALID_ARGUMENT,
     "input 'x': expected dtype DT_FLOAT, got DT_INT32"),
], ids=["model", "version", "no-name", "signature", "input-name", "dtype"])
def test_predict_errors(core, request_, status, message):
    raises(status, message, predict.predict, core, request_)


def test_predict_unknown_output_alias(core):
    request = predict_request(x=np.float32([[1.0]]))
    request.output_filter.append("nope")
    raises(Status.INVALID_ARGUMENT, "output tensor alias not found in signature: nope",
           predict.predict, core, request)


# --- Classify, Regress, MultiInference -------------------------------------------------

def test_classify(core):
    response = classify.classify(core, classify_request("classify_x_to_y", example(x=2.0),
                                                        example(x=4.0)))
    scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
    assert scores == [[3.0], [4.0]]
    assert spec_of(response) == (HALF, VERSION, "classify_x_to_y")


@pytest.mark.parametrize(("signature", "expected"),
                         [("regress_x_to_y", [3.0, 4.0]), ("regress_x_to_y2", [4.0, 5.0])])
def test_regress(core, signature, expected):
    response = regress.regress(core, regress_request(signature, example(x=2.0),
                                                     example(x=4.0)))
    assert [r.value for r in response.result.regressions] == expected
    assert spec_of(response) == (HALF, VERSION, signature)


def test_regress_with_context(core):
    request = _spec(regression_pb2.RegressionRequest(), HALF, "regress_x_to_y")
    request.input.example_list_with_context.context.CopyFrom(example(x=2.0))
    request.input.example_list_with_context.examples.add()  # takes x from the context
    request.input.example_list_with_context.examples.append(example(x=6.0))  # its own wins
    response = regress.regress(core, request)
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]


def test_multi_inference(core):
    request = multi_request(("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY),
                            examples=[example(x=2.0)])
    response = multi_inference.multi_inference(core, request)
    regressed, classified = response.results
    assert regressed.regression_result.regressions[0].value == 3.0
    assert classified.classification_result.classifications[0].classes[0].score == 3.0
    assert [spec_of(r) for r in response.results] == [
        (HALF, VERSION, "regress_x_to_y"), (HALF, VERSION, "classify_x_to_y")]


@pytest.mark.parametrize(("call", "request_", "status", "message"), [
    (classify.classify, classify_request("classify_x_to_y", example(x=1.0), name="nope"),
     Status.NOT_FOUND, "Servable not found"),
    (classify.classify, classify_request("classify_x_to_y"), Status.INVALID_ARGUMENT,
     "Input is empty."),
    (regress.regress, regress_request("nope", example(x=1.0)), Status.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (regress.regress, regress_request("regress_x2_to_y3", example(x=1.0)),
     Status.INVALID_ARGUMENT,
     r"expected serialized tf.Examples \(DT_STRING\) but the signature takes DT_FLOAT"),
    (classify.classify, classify_request("regress_x_to_y", example(x=1.0)),
     Status.INVALID_ARGUMENT, "at least one of classes or scores"),
    (regress.regress, regress_request("classify_x_to_y", example(x=1.0)),
     Status.INVALID_ARGUMENT, "Expected one output Tensor named outputs."),
], ids=["model", "empty", "signature", "not-examples", "no-scores", "no-outputs"])
def test_classify_and_regress_errors(core, call, request_, status, message):
    raises(status, message, call, core, request_)


@pytest.mark.parametrize(("request_", "status", "message"), [
    (multi_request(examples=[example(x=1.0)]), Status.INVALID_ARGUMENT,
     "must contain at least one task"),
    (multi_request(("regress_x_to_y", REGRESS), examples=[]), Status.INVALID_ARGUMENT,
     "Input is empty."),
    (multi_request(("regress_x_to_y", REGRESS), ("regress_x_to_y", REGRESS),
                   examples=[example(x=1.0)]), Status.INVALID_ARGUMENT,
     "Duplicate evaluation of signature: regress_x_to_y"),
    (multi_request(("serving_default", "tensorflow/serving/predict"),
                   examples=[example(x=1.0)]), Status.UNIMPLEMENTED,
     "Unsupported signature method_name: tensorflow/serving/predict"),
    (multi_request(("regress_x_to_y", REGRESS), name="nope", examples=[example(x=1.0)]),
     Status.NOT_FOUND, "Servable not found"),
], ids=["no-tasks", "empty", "duplicate", "predict-method", "model"])
def test_multi_inference_errors(core, request_, status, message):
    raises(status, message, multi_inference.multi_inference, core, request_)


def test_multi_inference_tasks_must_name_one_model(core):
    request = multi_request(("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY),
                            examples=[example(x=1.0)])
    request.tasks[1].model_spec.name = SLOW
    raises(Status.INVALID_ARGUMENT, "same model name", multi_inference.multi_inference,
           core, request)


def test_a_signature_of_the_wrong_method_with_the_check_on(core):
    """--enable_signature_method_name_check: the core reads it from ``core.options``."""
    checking = SimpleNamespace(options=dataclasses.replace(core.options,
                                                           method_name_check=True),
                               handle=core.handle)
    raises(Status.INVALID_ARGUMENT,
           "Expected classification signature method_name to be tensorflow/serving/classify",
           classify.classify, checking, classify_request("regress_x_to_y", example(x=1.0)))
    raises(Status.INVALID_ARGUMENT,
           "Expected regression signature method_name to be tensorflow/serving/regress",
           regress.regress, checking, regress_request("classify_x_to_y", example(x=1.0)))
    raises(Status.INVALID_ARGUMENT, "Expected regression signature method_name",
           multi_inference.multi_inference, checking,
           multi_request(("classify_x_to_y", REGRESS), examples=[example(x=1.0)]))
    # the right methods pass the check
    assert classify.classify(checking, classify_request("classify_x_to_y", example(x=2.0))
                             ).result.classifications[0].classes[0].score == 3.0


# --- GetModelMetadata, GetModelStatus --------------------------------------------------

def metadata_request(name=HALF, *fields):
    request = _spec(get_model_metadata_pb2.GetModelMetadataRequest(), name)
    request.metadata_field.extend(fields)
    return request


def test_metadata_is_the_signature_def_map(core):
    response = model_service.get_model_metadata(core,
                                                metadata_request(HALF, "signature_def"))
    assert spec_of(response) == (HALF, VERSION, "")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def) == {
        "serving_default", "classify_x_to_y", "regress_x_to_y", "regress_x_to_y2",
        "regress_x2_to_y3"}
    assert signature_map.signature_def["classify_x_to_y"].method_name == CLASSIFY


@pytest.mark.parametrize(("request_", "status", "message"), [
    (metadata_request(HALF), Status.INVALID_ARGUMENT, "must specify at least one"),
    (metadata_request(HALF, "graph"), Status.INVALID_ARGUMENT,
     "Metadata field graph is not supported"),
    (metadata_request("nope", "signature_def"), Status.NOT_FOUND, "Servable not found"),
], ids=["no-field", "unknown-field", "model"])
def test_metadata_errors(core, request_, status, message):
    raises(status, message, model_service.get_model_metadata, core, request_)


def test_status(core):
    request = _spec(get_model_status_pb2.GetModelStatusRequest(), HALF)
    (version,) = model_service.get_model_status(core, request).model_version_status
    assert (version.version, version.state, version.status.error_code) == (
        VERSION, State.AVAILABLE, 0)
    request.model_spec.version.value = 9
    raises(Status.NOT_FOUND, "Could not find version 9 of model half",
           model_service.get_model_status, core, request)
    raises(Status.NOT_FOUND, "nope", model_service.get_model_status, core,
           _spec(get_model_status_pb2.GetModelStatusRequest(), "nope"))


# --- deadlines: a run past its timeout is cancelled and DEADLINE_EXCEEDED ---------------

def slow_predict(n: int):
    return predict_request(SLOW, x=np.float32([7.0]), n=np.int32(n))


SLOW_CALLS = {
    "predict": (predict.predict, slow_predict),
    "classify": (classify.classify,
                 lambda n: classify_request("classify", example(x=7.0, n=n), name=SLOW)),
    "regress": (regress.regress,
                lambda n: regress_request("regress", example(x=7.0, n=n), name=SLOW)),
    "multi_inference": (multi_inference.multi_inference, lambda n: multi_request(
        ("regress", REGRESS), ("classify", CLASSIFY), name=SLOW,
        examples=[example(x=7.0, n=n)])),
}


@pytest.mark.parametrize("api", list(SLOW_CALLS))
def test_a_run_past_its_timeout_is_cancelled_and_deadline_exceeded(core, api):
    call, request = SLOW_CALLS[api]
    answered = call(core, request(10), 60_000)  # a timeout longer than the run
    assert answered.ListFields()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="took longer than"):
        call(core, request(LONG_RUN), TIMEOUT_MS)
    assert time.monotonic() - started < 30  # cancelled: the whole run takes minutes
    assert call(core, request(10)) == answered  # and the core answers the next call


def test_multi_inference_tasks_share_one_deadline(core, monkeypatch):
    """The second task runs within what the first left, and not at all once it is spent."""
    timeouts = []
    run = predict.run_signature

    def spy(model, signature, inputs, output_filter=(), timeout_ms=0):
        timeouts.append(timeout_ms)
        time.sleep(0.2)
        return run(model, signature, inputs, output_filter, timeout_ms)

    monkeypatch.setattr("edgeseg.serving.examples.run_signature", spy)
    request = multi_request(("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY),
                            examples=[example(x=2.0)])
    assert len(multi_inference.multi_inference(core, request, 10_000).results) == 2
    assert 9_000 < timeouts[0] <= 10_000 and timeouts[1] <= timeouts[0] - 150
    timeouts.clear()
    with pytest.raises(DeadlineExceeded, match="before all its tasks ran"):
        multi_inference.multi_inference(core, request, 150)
    assert len(timeouts) == 1
