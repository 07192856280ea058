"""``edgeseg serve``: a TensorFlow-Serving-compatible model server (gRPC and REST).

Where things are (one module per concept, each opening with its contract):

- lifecycle: source.py (watches base paths) -> policy.py (which versions, in what order)
  -> manager.py (loads/unloads through loader.py, holds servable.py's states and handles)
  -> server_core.py (the configured models, labels, request routing); warmup.py replays
  recorded requests inside a load; integrity.py refuses empty or truncated model files
  before a load
- configuration: flags.py (command line), config.py (model_config_list text proto),
  tls.py (--ssl_config_file), monitoring.py (--monitoring_config_file)
- metrics.py: the server's families in edgeseg/metrics.py's registry (``SERVING``) and how a
  call is labelled
- the API core, transport-independent: predict.py, classify.py (Classify/Regress/
  MultiInference), model_service.py (metadata, status, reload); signatures.py and
  tensors.py are the pure pieces they share
- transports: grpc_api.py and rest_api.py (with json_codec.py) only convert and delegate;
  each maps statuses in one place; health.py (grpc.health.v1 and REST readiness)
- front doors under load: http_server.py (REST's selector loop and fixed worker pool, with
  http_message.py for the wire format), grpc_admission.py (the bound on gRPC calls)
- the process: command.py (start-up, readiness via edgeseg.sdnotify, SIGTERM)
"""
