"""TensorFlow Serving's wire format without TensorFlow: messages, gRPC services, tensor codec.

One package, shared by the agent and the server, importing only protobuf, grpc and numpy
(``import tensorflow`` never happens here; tests/agent/test_protos.py checks it):

* ``schema``     declaring messages at run time into a private descriptor pool
* ``framework``  TensorFlow's messages on the wire (TensorProto, DataType, SignatureDef,
  tf.Example, error codes), as ``tensor_pb2``, ``types_pb2``... namespaces
* ``apis``       TF Serving's API and config messages (``predict_pb2``,
  ``get_model_metadata_pb2``, ``model_server_config_pb2``...), same names as the official
  ``tensorflow_serving.apis`` / ``tensorflow_serving.config`` modules
* ``services``   PredictionService and ModelService stubs and servicer registration on
  grpc's generic API (``prediction_service_pb2_grpc``, ``model_service_pb2_grpc``)
* ``tensors``    the one numpy <-> TensorProto codec, with TensorFlow's semantics

tests/test_wire_messages.py, test_wire_services.py and test_wire_tensors.py check all of it
against the official classes, stubs and ``tf.make_tensor_proto``/``tf.make_ndarray``.
"""
