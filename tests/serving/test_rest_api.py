"""TF Serving's REST API on a real server: the JSON TF Serving's own tests expect."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.errors import EdgesegError, Status
from edgeseg.serving.rest_api import http_code

from .conftest import free_port, rest_call, tfs_data


@pytest.fixture(scope="module")
def rest(serve):
    port = free_port()
    server = serve(f"--model_base_path={tfs_data('saved_model_half_plus_two_cpu')}",
                   f"--rest_api_port={port}",
                   f"--monitoring_config_file={tfs_data('monitoring_config.txt')}")
    server.url = server.serve_rest(port)
    return server


call = rest_call


@pytest.mark.parametrize(
    ("status", "code"),
    [(Status.INVALID_ARGUMENT, 400), (Status.FAILED_PRECONDITION, 400), (Status.NOT_FOUND, 404),
     (Status.RESOURCE_EXHAUSTED, 429), (Status.UNIMPLEMENTED, 501), (Status.UNAVAILABLE, 503),
     (Status.DEADLINE_EXCEEDED, 504), (Status.INTERNAL, 500), (Status.DATA_LOSS, 500)],
)
def test_http_codes_as_tf_serving(status, code):
    assert http_code(EdgesegError("x", status)) == code


def test_ready(rest):
    assert call(rest.url.replace("/v1/models", "/v1/ready")) == (200, {"ready": True})


def test_status(rest):
    assert call(f"{rest.url}/default") == (200, {"model_version_status": [
        {"version": "123", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]})


def test_metadata_is_tf_servings_json(rest):
    expected = json.loads(tfs_data("half_plus_two_model_metadata.json").read_text())
    assert call(f"{rest.url}/default/metadata") == (200, expected)
    assert call(f"{rest.url}/default/versions/123/metadata") == (200, expected)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (":predict", {"instances": [2.0, 3.0, 4.0]}, {"predictions": [3.0, 3.5, 4.0]}),
        ("/versions/123:predict", {"instances": [[2.0], [3.0]]},
         {"predictions": [[3.0], [3.5]]}),
        (":predict", {"inputs": {"x": [[2.0], [4.0]]}}, {"outputs": [[3.0], [4.0]]}),
        (":predict", {"signature_name": "regress_x2_to_y3", "inputs": [[2.0]]},
         {"outputs": [[4.0]]}),
    ],
)
def test_predict(rest, path, body, expected):
    assert call(f"{rest.url}/default{path}", body) == (200, expected)


@pytest.mark.parametrize(
    ("verb", "body", "expected"),
    [
        ("classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]},
         {"results": [[["", 3.0]], [["", 4.0]]]}),
        ("regress", {"signature_name": "regress_x_to_y2", "examples": [{"x": 2.0}]},
         {"results": [4.0]}),
        ("regress", {"signature_name": "regress_x_to_y", "context": {"x": 2.0},
                     "examples": [{}]}, {"results": [3.0]}),
    ],
)
def test_classify_and_regress(rest, verb, body, expected):
    assert call(f"{rest.url}/default:{verb}", body) == (200, expected)


def test_array_answers_are_one_line_and_status_is_indented(rest):
    """Predict's arrays come from json's C encoder (one line; an indent would need the
    pure-Python one); status and metadata keep TF Serving's indented look."""
    request = urllib.request.Request(f"{rest.url}/default:predict",
                                     data=b'{"instances": [1.0, 2.0]}', method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
    assert b"\n" not in body and json.loads(body) == {"predictions": [2.5, 3.0]}
    with urllib.request.urlopen(f"{rest.url}/default", timeout=30) as answer:
        assert answer.read().startswith(b'{\n "model_version_status"')


def test_nan_goes_through(rest):
    status, answer = call(f"{rest.url}/default:predict", raw=b'{"instances": [NaN, 2.0]}')
    assert status == 200 and math.isnan(answer["predictions"][0])
    assert answer["predictions"][1] == 3.0


@pytest.mark.parametrize(
    ("path", "raw", "code", "complaint"),
    [
        ("/nope:predict", b'{"instances": [1.0]}', 404, "Servable not found for request"),
        ("/default/versions/9", None, 404, "Could not find version 9 of model default"),
        ("/default:predict", b'{"instances": [1.0], "signature_name": "zz"}', 400,
         'Serving signature key "zz" not found.'),
        ("/default:predict", b"{not json", 400, "not valid JSON"),
        ("/default:predict", b'{"instances": [[1.0], [2.0, 3.0]]}', 400, "ragged"),
        ("/default:predict", b'{"instances": ["x"]}', 400, "expected a number"),
        ("/default:predict", b'{"instances": [1], "inputs": [1]}', 400, "exactly one of"),
        ("/default:predict", b'[' * 100000 + b']' * 100000, 400, "not valid JSON"),
        ("/default:classify", b'{"examples": []}', 400, "non-empty list"),
        ("/default:regress", b'{"examples": [{"x": 2.0}], "signature_name": "nope"}', 400,
         'Serving signature key "nope" not found.'),
        ("/default:explode", b"{}", 404, "Malformed request"),
    ],
    ids=["model", "version", "signature", "json", "ragged", "type", "both", "deep", "examples",
         "regress-signature", "verb"],
)
def test_errors_are_json_with_tf_servings_codes(rest, path, raw, code, complaint):
    status, answer = call(f"{rest.url}{path}", raw=raw)
    assert (status, set(answer)) == (code, {"error"})
    assert complaint in answer["error"]
    assert call(f"{rest.url}/default:predict", {"instances": [2.0]}) == (
        200, {"predictions": [3.0]})  # and it keeps serving


# --- fuzzing: whatever the body, a 4xx or a 200, never a 500, and the server lives on -----

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.fixed_dictionaries({"b64": st.text(max_size=8)}),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)
BODIES = (
    JSON
    | st.fixed_dictionaries({"instances": JSON})
    | st.fixed_dictionaries({"inputs": JSON}, optional={"signature_name": JSON})
    | st.fixed_dictionaries({"examples": JSON}, optional={"context": JSON})
    | st.fixed_dictionaries({"examples": st.lists(st.dictionaries(st.sampled_from(["x", "y"]),
                                                                   JSON, max_size=2),
                                                  max_size=3)},
                            optional={"signature_name": st.sampled_from(
                                ["classify_x_to_y", "regress_x_to_y", "serving_default"])})
)
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(verb=st.sampled_from(["predict", "classify", "regress"]), body=BODIES)
def test_fuzzed_json_bodies_never_give_a_500(rest, verb, body):
    raw = json.dumps(body, allow_nan=True).encode()
    status, answer = call(f"{rest.url}/default:{verb}", raw=raw)
    assert status in (200, 400, 404), (status, answer)
    assert status == 200 or set(answer) == {"error"}


@FUZZ
@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_never_give_a_500(rest, raw):
    status, answer = call(f"{rest.url}/default:predict", raw=raw or b" ")
    if status == 200:  # the bytes happened to be a valid request, e.g. {"instances":[0]}
        assert "predictions" in answer and "instances" in json.loads(raw)
    else:
        assert status == 400 and "error" in answer, (status, answer)


def test_the_fuzzers_valid_find_is_answered(rest):
    # hypothesis once drew these 17 bytes: valid JSON that half_plus_two answers
    status, answer = call(f"{rest.url}/default:predict", raw=b'{"instances":[0]}')
    assert status == 200 and answer == {"predictions": [2.0]}


def test_prometheus_metrics(rest):
    from .tfs_requests import predict_request

    for _ in range(3):
        rest.predict.Predict(predict_request("default", [[2.0]]), timeout=30)
    call(f"{rest.url}/nope:predict", {"instances": [1.0]})
    url = rest.url.replace("/v1/models", "/monitoring/prometheus/metrics")
    with urllib.request.urlopen(url, timeout=30) as response:  # loopback
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    for kind in ("edgeseg_serving_requests_total counter",
                 "edgeseg_serving_request_latency_seconds histogram",
                 "edgeseg_serving_model_load_seconds histogram",
                 "edgeseg_serving_model_versions gauge"):
        assert f"# TYPE {kind}" in text
    lines = text.splitlines()
    grpc_ok = [ln for ln in lines if ln.startswith(
        'edgeseg_serving_requests_total{transport="grpc",api="Predict",model="default",'
        'version="123",signature="serving_default",status="OK"}')]
    assert grpc_ok and float(grpc_ok[0].split()[-1]) >= 3
    assert any('transport="rest",api="predict",model="nope"' in ln and 'status="NOT_FOUND"' in ln
               for ln in lines)
    assert 'edgeseg_serving_model_versions{model="default",state="AVAILABLE"} 1' in lines
    assert any(ln.startswith('edgeseg_serving_model_load_seconds_count{model="default"} 1')
               for ln in lines)


def test_still_serving_after_the_fuzz(rest):
    assert call(f"{rest.url}/default:predict", {"instances": [2.0]}) == (
        200, {"predictions": [3.0]})
