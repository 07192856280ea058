"""Batching with a fake model (merging, padding, a full queue, failures), then a real server."""

from __future__ import annotations

import threading
import urllib.request

import numpy as np
import pytest

from edgeseg.errors import InvalidArgument, ResourceExhausted
from edgeseg.serving.batching import BatchingModel, BatchingOptions, parse_batching_parameters
from tests.services import wait_until

from .conftest import free_port, rest_call, tfs_data
from .tfs_requests import predict_request


class Doubler:
    """y = 2x; records the batch sizes it was run with; may hold every run until released
    (``entered`` is set once a run has begun)."""

    signature_defs: dict = {}

    def __init__(self, hold: bool = False) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold:
            self.release.set()
        self.closed = False

    def run(self, feeds, fetches):
        self.entered.set()
        self.release.wait(10)
        (x,) = feeds.values()
        self.sizes.append(np.shape(x)[0] if np.ndim(x) else 0)
        return [x * 2 for _ in fetches]

    def close(self):
        self.closed = True


@pytest.fixture
def batching():
    made = []

    def make(model, **options):
        batcher = BatchingModel(model, BatchingOptions(**options))
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def call_all(batcher, inputs):
    results: dict[int, object] = {}

    def one(i, x):
        try:
            results[i] = batcher.run({"x:0": x}, ["y:0"])[0]
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i, x)) for i, x in enumerate(inputs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return [results[i] for i in range(len(inputs))]


def test_concurrent_calls_share_one_run_and_get_their_own_rows(batching):
    model = Doubler()
    batcher = batching(model, max_batch_size=8, batch_timeout_s=0.3)
    inputs = [np.float32([[i], [i + 0.5]]) for i in range(4)]
    results = call_all(batcher, inputs)
    for x, y in zip(inputs, results, strict=True):
        assert np.array_equal(y, x * 2)
    assert model.sizes == [8]  # 4 calls x 2 rows, one run


def test_padding_to_allowed_batch_sizes(batching):
    model = Doubler()
    batcher = batching(model, max_batch_size=4, batch_timeout_s=0.2, allowed_batch_sizes=(2, 4))
    results = call_all(batcher, [np.float32([1]), np.float32([2]), np.float32([3])])
    assert [r.tolist() for r in results] == [[2.0], [4.0], [6.0]]
    assert model.sizes == [4]  # 3 rows padded to 4, the padding dropped from the answers


def test_variable_length_inputs_are_padded_with_their_first_element(batching):
    """TF Serving's example: [1,500,101], [2,300,101], [1,400,101] -> [_, 500, 101]."""
    model = Doubler()
    batcher = batching(model, max_batch_size=4, batch_timeout_s=0.3,
                       pad_variable_length_inputs=True)
    inputs = [np.full((1, 5, 2), 1.0, np.float32), np.full((2, 3, 2), 2.0, np.float32),
              np.full((1, 4, 2), 3.0, np.float32)]
    inputs[1][0, 0, 0] = 7.0  # the padding value of the second call
    results = call_all(batcher, inputs)
    assert model.sizes == [4]
    assert [r.shape for r in results] == [(1, 5, 2), (2, 5, 2), (1, 5, 2)]
    assert np.array_equal(results[1][:, :3], inputs[1] * 2)
    assert np.all(results[1][:, 3:] == 14.0) and np.all(results[2][:, 4:] == 6.0)


def test_unequal_shapes_without_padding_run_in_separate_batches(batching):
    model = Doubler()
    batcher = batching(model, max_batch_size=4, batch_timeout_s=0.2)
    results = call_all(batcher, [np.zeros((1, 3), np.float32), np.zeros((1, 5), np.float32)])
    assert [r.shape for r in results] == [(1, 3), (1, 5)]
    assert model.sizes == [1, 1]


def test_padding_parameter_parses():
    assert parse_batching_parameters("pad_variable_length_inputs: true"
                                     ).pad_variable_length_inputs


def test_unbatchable_calls_run_alone(batching):
    model = Doubler()
    batcher = batching(model, max_batch_size=2, batch_timeout_s=5)
    assert batcher.run({"x:0": np.float32(3)}, ["y:0"])[0] == 6  # a scalar: no batch dim
    assert batcher.run({"x:0": np.zeros((5, 1), np.float32)}, ["y:0"])[0].shape == (5, 1)
    assert model.sizes == [0, 5]  # both straight through


def test_a_full_queue_refuses_at_once(batching):
    model = Doubler(hold=True)
    batcher = batching(model, max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    running = threading.Thread(target=batcher.run, args=({"x:0": np.float32([1])}, ["y:0"]))
    running.start()
    assert model.entered.wait(5)  # the first call is in the (held) model, the queue empty
    assert batcher.queued_batches == 0
    waiting = threading.Thread(target=batcher.run, args=({"x:0": np.float32([2])}, ["y:0"]))
    waiting.start()
    wait_until(lambda: batcher.queued_batches == 1, 5, what="the second call queued")
    with pytest.raises(ResourceExhausted, match="queue is full"):
        batcher.run({"x:0": np.float32([3])}, ["y:0"])
    model.release.set()
    running.join(10)
    waiting.join(10)
    assert sorted(model.sizes) == [1, 1]


def test_a_failed_run_fails_every_call_in_the_batch(batching):
    class Broken(Doubler):
        def run(self, feeds, fetches):
            raise InvalidArgument("bad batch")

    batcher = batching(Broken(), max_batch_size=4, batch_timeout_s=0.2)
    results = call_all(batcher, [np.float32([1]), np.float32([2])])
    assert all(isinstance(r, InvalidArgument) and "bad batch" in str(r) for r in results)


def test_close_closes_the_model(batching):
    model = Doubler()
    BatchingModel(model, BatchingOptions()).close()
    assert model.closed


def test_tf_servings_batching_config():
    options = parse_batching_parameters(tfs_data("batching_config.txt").read_text())
    assert options == BatchingOptions(max_batch_size=128, batch_timeout_s=0.0,
                                      max_enqueued_batches=1000000, num_batch_threads=8)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("max_batch_size { value: 0 }", ">= 1"),
     ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "end with max_batch_size"),
     ("bogus: 1", '"bogus"')],
)
def test_bad_batching_parameters(text, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        parse_batching_parameters(text)


# --- a real server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batched(serve, tmp_path_factory):
    params = tmp_path_factory.mktemp("batching") / "batching.config"
    params.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 200000 } "
                      "num_batch_threads { value: 2 }")
    port = free_port()
    server = serve(f"--model_base_path={tfs_data('saved_model_half_plus_two_cpu')}",
                   "--enable_batching", f"--batching_parameters_file={params}",
                   f"--rest_api_port={port}",
                   f"--monitoring_config_file={tfs_data('monitoring_config.txt')}")
    server.metrics = server.serve_rest(port).replace("/v1/models",
                                                     "/monitoring/prometheus/metrics")
    return server


def test_server_batches_concurrent_requests_with_the_same_answers(batched):
    answers: dict[int, list[float]] = {}

    def one(i):
        response = batched.predict.Predict(predict_request("default", [[float(i)]]), timeout=30)
        answers[i] = list(response.outputs["y"].float_val)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {i: [0.5 * i + 2] for i in range(8)}  # as unbatched
    lines = scrape(batched)
    assert "# TYPE edgeseg_serving_batch_size histogram" in lines
    assert "# TYPE edgeseg_serving_batch_queue_depth gauge" in lines
    total, runs = batch_totals(lines)
    assert total == 8 and runs < 8  # some run held more than one request


def scrape(server):
    with urllib.request.urlopen(server.metrics, timeout=30) as response:
        return response.read().decode().splitlines()


def batch_totals(lines):
    def value(prefix):
        return float(next(ln for ln in lines if ln.startswith(prefix)).split()[-1])

    return value("edgeseg_serving_batch_size_sum"), value("edgeseg_serving_batch_size_count")


def test_rest_requests_are_batched_too(batched):
    total_before, runs_before = batch_totals(scrape(batched))
    url = batched.metrics.replace("/monitoring/prometheus/metrics", "/v1/models/default:predict")
    answers: dict[int, object] = {}

    def one(i):
        answers[i] = rest_call(url, {"instances": [[float(i)]]})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {i: (200, {"predictions": [[0.5 * i + 2]]}) for i in range(6)}
    total, runs = batch_totals(scrape(batched))
    assert total - total_before == 6 and runs - runs_before < 6
