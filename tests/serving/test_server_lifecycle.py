"""Versions come and go under a running server: hot swap under load, broken versions, reload.

One server per module; the tests run in file order and share its version folder:
version 1 (half_plus_two) -> hot swap to 2 (half_plus_three) -> broken 3, 4, 5 -> reload.
"""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2

from .conftest import copy_version, tfs_data
from .tfs_requests import predict_request, rpc_error, status_request

STATE = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope="module")
def hot(serve, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "hot"
    base.mkdir()
    copy_version(tfs_data("saved_model_half_plus_two_cpu/00000123"), base, 1)
    server = serve("--model_name=hot", f"--model_base_path={base}",
                   "--file_system_poll_wait_seconds=1", "--max_num_load_retries=0")
    server.base = base
    return server


def states(server, name="hot"):
    response = server.models.GetModelStatus(status_request(name), timeout=30)
    return {s.version: s for s in response.model_version_status}


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_hot_swap_under_load(hot):
    stop = threading.Event()
    answers: list[list[tuple[int, float]]] = [[] for _ in range(4)]
    failures: list[str] = []

    def client(seen):
        deadline = time.monotonic() + 90  # bounded even if the test body breaks
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = hot.predict.Predict(predict_request("hot", [[2.0]]), timeout=30)
                seen.append((response.model_spec.version.value,
                             response.outputs["y"].float_val[0]))
            except grpc.RpcError as exc:
                failures.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=client, args=(a,)) for a in answers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: all(len(a) >= 5 for a in answers), what="traffic on version 1")
        copy_version(tfs_data("saved_model_half_plus_three/00000123"), hot.base, 2)
        shutil.rmtree(hot.base / "1")
        wait_for(lambda: STATE.Name(states(hot)[1].state) == "END", what="version 1 to END")
        wait_for(lambda: all(a[-1][0] == 2 for a in answers if a), what="answers from v2")
        # load goes on until every client has a few answers from v2: none may come from v1
        wait_for(lambda: all(a.count((2, 4.0)) >= 5 for a in answers),
                 what="five answers from v2 on every client")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
    for seen in answers:
        assert seen[0] == (1, 3.0) and seen[-1] == (2, 4.0)  # half_plus_two, half_plus_three
        first_new = seen.index((2, 4.0))
        assert set(seen[:first_new]) == {(1, 3.0)} and set(seen[first_new:]) == {(2, 4.0)}
    final = states(hot)
    assert {v: STATE.Name(s.state) for v, s in final.items()} == {1: "END", 2: "AVAILABLE"}
    assert final[1].status.error_code == 0  # unloaded, not failed


def _no_graph(path):
    (path / "saved_model.pb").unlink()


def _corrupt_graph(path):
    (path / "saved_model.pb").write_bytes(b"\x08\x01 this is not a SavedModel proto \xff\xff")


def _no_variables(path):
    shutil.rmtree(path / "variables")


@pytest.mark.parametrize(
    ("version", "breakage", "complaint"),
    [(3, _no_graph, "no saved_model.pb"), (4, _corrupt_graph, "cannot load SavedModel"),
     (5, _no_variables, "cannot load SavedModel")],
    ids=["no-graph", "corrupt-proto", "no-variables"],
)
def test_broken_version_beside_a_good_one(hot, tmp_path, version, breakage, complaint):
    staging = tmp_path / "broken"
    shutil.copytree(tfs_data("saved_model_half_plus_two_cpu/00000123"), staging)
    breakage(staging)
    staging.rename(hot.base / str(version))
    wait_for(lambda: version in states(hot) and STATE.Name(states(hot)[version].state) == "END",
             what=f"version {version} to fail")
    broken = states(hot)[version]
    assert broken.status.error_code != 0 and complaint in broken.status.error_message
    assert STATE.Name(states(hot)[2].state) == "AVAILABLE"
    response = hot.predict.Predict(predict_request("hot", [[2.0]]), timeout=30)
    assert (response.model_spec.version.value, response.outputs["y"].float_val[0]) == (2, 4.0)


def reload_request(models):
    request = model_management_pb2.ReloadConfigRequest()
    for name, base in models:
        request.config.model_config_list.config.add(name=name, base_path=str(base))
    return request


def test_reload_config_adds_and_removes_models(hot):
    two = tfs_data("saved_model_half_plus_two_cpu")
    hot.models.HandleReloadConfigRequest(reload_request([("hot", hot.base), ("two", two)]),
                                         timeout=60)
    assert hot.predict.Predict(predict_request("two", [[2.0]]), timeout=30).outputs[
        "y"].float_val[0] == 3.0
    hot.models.HandleReloadConfigRequest(reload_request([("two", two)]), timeout=60)
    wait_for(lambda: all(STATE.Name(s.state) == "END" for s in states(hot).values()),
             what="model hot to unload")
    err = rpc_error(hot.predict.Predict, predict_request("hot", [[2.0]]))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert hot.predict.Predict(predict_request("two", [[2.0]]), timeout=30).outputs[
        "y"].float_val[0] == 3.0


def test_reload_with_a_bad_config_is_refused(hot):
    request = reload_request([("x", "")])  # no base_path
    err = rpc_error(hot.models.HandleReloadConfigRequest, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "base_path is missing" in err.details()
