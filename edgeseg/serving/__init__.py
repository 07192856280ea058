"""``edgeseg serve``: a TensorFlow-Serving-compatible gRPC model server.

Where things are (one module per concept, each opening with its contract):

- lifecycle: source.py (watches base paths) -> policy.py (which versions, in what order)
  -> manager.py (loads/unloads through loader.py, holds servable.py's states and handles)
  -> server_core.py (the configured models, labels, request routing)
- configuration: flags.py (command line), config.py (model_config_list text proto)
- the API core, transport-independent: predict.py, classify.py (Classify/Regress/
  MultiInference), model_service.py (metadata, status, reload); signatures.py and
  tensors.py are the pure pieces they share
- transports: grpc_api.py (the only place statuses become gRPC codes)
- the process: command.py (start-up, readiness, SIGTERM), notify.py (sd_notify)
"""
