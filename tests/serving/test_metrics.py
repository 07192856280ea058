"""The server's families (serving/metrics.py) and how a call is labelled."""

from __future__ import annotations

from tensorflow_serving.apis import inference_pb2, predict_pb2

from edgeseg.serving.metrics import ServingMetrics, spec_labels


def test_serving_families_keep_their_names_labels_and_types():
    metrics = ServingMetrics()
    metrics.observe_request("grpc", "Predict", "m", "7", "serving_default", "OK", 0.02)
    metrics.observe_load("m", 1.5)
    metrics.reject("rest", "max_connections")
    metrics.batch_size.observe(4)
    metrics.watch_transport("rest", lambda: (3, 1, 0))
    metrics.watch_transport("grpc", lambda: (None, 2, 5))
    metrics.watch_versions(lambda: [(("m", "AVAILABLE"), 1)])
    metrics.watch_versions(lambda: [(("m", "AVAILABLE"), 2)])  # attaching again replaces
    metrics.watch_batch_queues(lambda: [((), 3)])
    lines = metrics.registry.render().splitlines()
    for kind in ("requests_total counter", "request_latency_seconds histogram",
                 "model_load_seconds histogram", "batch_size histogram",
                 "rejections_total counter", "open_connections gauge", "active_requests gauge",
                 "queued_requests gauge", "model_versions gauge", "batch_queue_depth gauge"):
        assert lines.count(f"# TYPE edgeseg_serving_{kind}") == 1, kind
    for sample in (
            'edgeseg_serving_requests_total{transport="grpc",api="Predict",model="m",'
            'version="7",signature="serving_default",status="OK"} 1',
            'edgeseg_serving_request_latency_seconds_bucket{transport="grpc",api="Predict",'
            'model="m",le="0.025"} 1',
            'edgeseg_serving_model_load_seconds_count{model="m"} 1',
            'edgeseg_serving_batch_size_bucket{le="4"} 1',
            'edgeseg_serving_rejections_total{transport="rest",reason="max_connections"} 1',
            'edgeseg_serving_open_connections{transport="rest"} 3',
            'edgeseg_serving_active_requests{transport="grpc"} 2',
            'edgeseg_serving_queued_requests{transport="grpc"} 5',
            'edgeseg_serving_model_versions{model="m",state="AVAILABLE"} 2',
            "edgeseg_serving_batch_queue_depth 3"):
        assert sample in lines, sample
    assert not any(ln.startswith('edgeseg_serving_open_connections{transport="grpc"')
                   for ln in lines)  # gRPC does not know its connections


def test_spec_labels_prefer_the_version_that_answered():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    assert spec_labels(request, None) == ("m", "", "")
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "m"
    response.model_spec.version.value = 7
    response.model_spec.signature_name = "serving_default"
    assert spec_labels(request, response) == ("m", "7", "serving_default")
    multi = inference_pb2.MultiInferenceRequest()
    multi.tasks.add().model_spec.name = "k"
    assert spec_labels(multi, inference_pb2.MultiInferenceResponse()) == ("k", "", "")
