"""``edgeseg serve``: a TensorFlow-Serving-compatible model server (gRPC and REST).

Where things are (one module per concept, each opening with its contract):

- lifecycle: source.py (watches base paths) -> policy.py (which versions, in what order)
  -> manager.py (loads/unloads through loader.py, holds servable.py's states and handles)
  -> server_core.py (the configured models, labels, request routing; core_protocol.py is
  ``Core``, the part of it the API core, transports and health are typed against);
  warmup.py replays recorded requests inside a load (tfrecord.py reads them, no
  TensorFlow); integrity.py refuses empty or truncated model files before a load
- configuration: flags.py (command line), config.py (model_config_list text proto),
  textproto.py (TF Serving's config protos the wheel lacks, errors in TF Serving's words),
  tls.py (--ssl_config_file), monitoring.py (--monitoring_config_file),
  session_options.py (threads, GPU memory, mixed precision: every session's ConfigProto),
  protocompat.py (the protobuf calls spelled differently across protobuf 4.25-7)
- model.tflite (--prefer_tflite_model): loader.version_loader picks tflite_loader.py for a
  folder that has one (LiteRT, no TensorFlow; tflite_pool.py, tflite_signatures.py)
- metrics.py: the server's families in edgeseg/metrics.py's registry (``SERVING``) and how a
  call is labelled
- the API core, transport-independent: predict.py (Predict, and run_signature: every
  run's checks and timeout), classify.py, regress.py, multi_inference.py over examples.py
  (tf.Example input, shared by the three), model_service.py (metadata, status, reload);
  signatures.py and tensors.py are the pure pieces they share
- messages: edgeseg.wire's everywhere (no TensorFlow); TensorFlow is imported only when a
  SavedModel loads (loader.py, session_options.py)
- transports: grpc_api.py and rest_api.py (with json_codec.py) only convert and delegate;
  each maps statuses in one place; health.py (grpc.health.v1 and REST readiness);
  profiler.py (TensorFlow's ProfilerService on the gRPC port)
- front doors under load: http_server.py (REST's selector loop and fixed worker pool, with
  http_message.py for the wire format), grpc_admission.py (the bound on gRPC calls)
- the process: command.py (start-up, readiness via edgeseg.sdnotify, SIGTERM)
"""
