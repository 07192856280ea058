"""The `edgeseg serve` process: flag errors, --validate-config, start-up errors, SIGTERM."""

from __future__ import annotations

import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from tests.services import wait_until

from .conftest import free_port, run_serve, tfs_data
from .models import slow_model
from .procstat import metric


def test_unknown_flag_is_a_clear_error_exit_2():
    result = run_serve("--model_base_path=/m", "--enable_batchingg")
    assert result.returncode == 2
    assert "unknown flag --enable_batchingg" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "complaint"),
    [("--per_process_gpu_memory_fraction=2", "must be in 0..1"),
     ("--tensorflow_intra_op_parallelism=-1", "must be >= 0"),
     ("--max_num_load_retries=-1", "out of range")],
)
def test_out_of_range_flags(flag, complaint):
    result = run_serve("--model_base_path=/m", flag)
    assert result.returncode == 2 and complaint in result.stderr


def test_metrics_need_the_rest_port():
    result = run_serve("--model_base_path=/m",
                       f"--monitoring_config_file={tfs_data('monitoring_config.txt')}")
    assert result.returncode == 2 and "give --rest_api_port" in result.stderr


def test_help_lists_the_flags():
    result = run_serve("--help")
    assert result.returncode == 0
    for flag in ("--port=8500", "--model_config_file=", "--grpc_socket_path=",
                 "--file_system_poll_wait_seconds=1", "--validate_config="):
        assert flag in result.stdout


def test_no_model_is_a_clear_error():
    result = run_serve("--port=0")
    assert result.returncode == 2
    assert "--model_base_path" in result.stderr and "--model_config_file" in result.stderr


def good_config(tmp_path):
    text = tfs_data("good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(tfs_data("saved_model_half_plus_two_cpu")))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(tmp_path / "not-there-yet"))
    path = tmp_path / "models.config"
    path.write_text(text)
    return path


def test_validate_config_reports_what_would_be_served(tmp_path):
    result = run_serve(f"--model_config_file={good_config(tmp_path)}", "--validate-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK: 2 model(s)" in result.stdout
    assert "half_plus_two" in result.stdout and "would serve [123]" in result.stdout
    assert "WARNING: base path not readable" in result.stdout  # half_plus_three's


@pytest.mark.parametrize("validate", [True, False], ids=["validate", "start-up"])
def test_malformed_config_file_is_a_clear_error_exit(validate):
    path = tfs_data("bad_model_config.txt")
    flags = [f"--model_config_file={path}"] + (["--validate-config"] if validate else [])
    result = run_serve(*flags, "--port=0", "--grpc_bind_address=127.0.0.1")
    assert result.returncode != 0
    assert f"model config file {path}" in result.stderr and "improperly" in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = run_serve(f"--model_config_file={tmp_path / 'nope.config'}", "--validate-config")
    assert result.returncode == 2
    assert "cannot read --model_config_file" in result.stderr


def slow_request(n):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([7.0])))
    request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.int32(n)))
    return request


def test_sigterm_finishes_in_flight_requests_and_exits_0(serve, tmp_path):
    slow_model(tmp_path / "slow" / "1")
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(30)
    rest_port = free_port()
    try:
        server = serve("--model_name=slow", f"--model_base_path={tmp_path / 'slow'}",
                       "--shutdown_grace_seconds=20", f"--rest_api_port={rest_port}",
                       f"--monitoring_config_file={tfs_data('monitoring_config.txt')}",
                       env={"NOTIFY_SOCKET": notify_path})
        assert notify.recv(100) == b"READY=1"
        metrics = server.serve_rest(rest_port).replace("/v1/models",
                                                       "/monitoring/prometheus/metrics")
        outcome: dict = {}

        def in_flight():
            response = server.predict.Predict(slow_request(300_000), timeout=60)
            outcome["y"] = list(response.outputs["y"].float_val)
            outcome["done_at"] = time.monotonic()

        thread = threading.Thread(target=in_flight)
        thread.start()
        wait_until(lambda: metric(metrics, "edgeseg_serving_active_requests",
                                  transport="grpc") >= 1, 30,
                   what="the request running on a worker (the model spins for seconds)")
        sent = time.monotonic()
        assert server.terminate(timeout=60) == 0
        thread.join(30)
        assert outcome.get("y") == [7.0]  # the in-flight request was answered...
        assert outcome["done_at"] > sent  # ...after SIGTERM came
        assert notify.recv(100) == b"STOPPING=1"
        assert "edgeseg serve: stopped" in server.log()
        with pytest.raises(grpc.RpcError):
            server.predict.Predict(slow_request(1), timeout=5)  # nobody listens any more
    finally:
        notify.close()


def test_a_port_in_use_is_a_clear_error_exit(tmp_path):
    from .models import two_tag_model

    two_tag_model(tmp_path / "m" / "1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(f"--model_base_path={tmp_path / 'm'}", f"--port={port}",
                           "--grpc_bind_address=127.0.0.1")
    assert result.returncode != 0
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_rest_timeout_ends_a_long_predict_with_504(serve, tmp_path):
    from .conftest import free_port, rest_call

    slow_model(tmp_path / "slow" / "1")
    port = free_port()
    server = serve("--model_name=slow", f"--model_base_path={tmp_path / 'slow'}",
                   f"--rest_api_port={port}", "--rest_api_timeout_in_ms=300")
    url = f"{server.serve_rest(port)}/slow:predict"
    status, answer = rest_call(url, {"inputs": {"x": [7.0], "n": 3_000_000}})
    assert status == 504 and "running the model took longer than" in answer["error"]
    assert rest_call(url, {"inputs": {"x": [7.0], "n": 10}}) == (200, {"outputs": [7.0]})
    regress = f"{server.serve_rest(port)}/slow:regress"
    status, answer = rest_call(regress, {"signature_name": "regress",
                                         "examples": [{"x": 2.0, "n": 3_000_000}]})
    assert status == 504, answer
    assert rest_call(regress, {"signature_name": "regress",
                               "examples": [{"x": 2.0, "n": 5}]}) == (200, {"results": [2.0]})
