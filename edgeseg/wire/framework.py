"""TensorFlow's own wire messages that TF Serving's API uses, without importing TensorFlow.

Contract: each name below stands for the generated module of the same name and holds the
same messages with the same full names, field numbers, types and oneofs as the ``.proto``
file it names (tests/test_wire_messages.py compares every field against the official
descriptors and checks bytes both ways):

* ``types_pb2``            tensorflow/core/framework/types.proto (``DataType``)
* ``tensor_shape_pb2``     tensorflow/core/framework/tensor_shape.proto
* ``resource_handle_pb2``  tensorflow/core/framework/resource_handle.proto
* ``tensor_pb2``           tensorflow/core/framework/tensor.proto
* ``meta_graph_pb2``       ``TensorInfo`` and ``SignatureDef`` of
  tensorflow/core/protobuf/meta_graph.proto (the rest of that file, graphs and saved
  objects, is not on TF Serving's wire; ``TensorInfo.composite_tensor`` is left out and
  kept as an unknown field if a peer sends it)
* ``feature_pb2``, ``example_pb2``  tensorflow/core/example/ (tf.Example, for Classify,
  Regress and MultiInference inputs)
* ``error_codes_pb2``      xla/tsl/protobuf/error_codes.proto (``tensorflow.error.Code``)
"""

from __future__ import annotations

from edgeseg.wire.schema import enum, field, map_field, message, oneof, proto_file, repeated

types_pb2 = proto_file(
    "tensorflow/core/framework/types.proto", "tensorflow",
    enum("DataType", """
        DT_INVALID=0 DT_FLOAT=1 DT_DOUBLE=2 DT_INT32=3 DT_UINT8=4 DT_INT16=5 DT_INT8=6
        DT_STRING=7 DT_COMPLEX64=8 DT_INT64=9 DT_BOOL=10 DT_QINT8=11 DT_QUINT8=12
        DT_QINT32=13 DT_BFLOAT16=14 DT_QINT16=15 DT_QUINT16=16 DT_UINT16=17 DT_COMPLEX128=18
        DT_HALF=19 DT_RESOURCE=20 DT_VARIANT=21 DT_UINT32=22 DT_UINT64=23 DT_FLOAT8_E5M2=24
        DT_FLOAT8_E4M3FN=25 DT_FLOAT8_E4M3FNUZ=26 DT_FLOAT8_E4M3B11FNUZ=27
        DT_FLOAT8_E5M2FNUZ=28 DT_INT4=29 DT_UINT4=30 DT_INT2=31 DT_UINT2=32
        DT_FLOAT4_E2M1FN=33 DT_FLOAT_REF=101 DT_DOUBLE_REF=102 DT_INT32_REF=103
        DT_UINT8_REF=104 DT_INT16_REF=105 DT_INT8_REF=106 DT_STRING_REF=107
        DT_COMPLEX64_REF=108 DT_INT64_REF=109 DT_BOOL_REF=110 DT_QINT8_REF=111
        DT_QUINT8_REF=112 DT_QINT32_REF=113 DT_BFLOAT16_REF=114 DT_QINT16_REF=115
        DT_QUINT16_REF=116 DT_UINT16_REF=117 DT_COMPLEX128_REF=118 DT_HALF_REF=119
        DT_RESOURCE_REF=120 DT_VARIANT_REF=121 DT_UINT32_REF=122 DT_UINT64_REF=123
        DT_FLOAT8_E5M2_REF=124 DT_FLOAT8_E4M3FN_REF=125 DT_FLOAT8_E4M3FNUZ_REF=126
        DT_FLOAT8_E4M3B11FNUZ_REF=127 DT_FLOAT8_E5M2FNUZ_REF=128 DT_INT4_REF=129
        DT_UINT4_REF=130 DT_INT2_REF=131 DT_UINT2_REF=132 DT_FLOAT4_E2M1FN_REF=133"""),
    message("SerializedDType", field("datatype", 1, ".tensorflow.DataType")),
)

tensor_shape_pb2 = proto_file(
    "tensorflow/core/framework/tensor_shape.proto", "tensorflow",
    message("TensorShapeProto",
            repeated("dim", 2, ".tensorflow.TensorShapeProto.Dim"),
            field("unknown_rank", 3, "bool"),
            message("Dim", field("size", 1, "int64"), field("name", 2, "string"))),
)

resource_handle_pb2 = proto_file(
    "tensorflow/core/framework/resource_handle.proto", "tensorflow",
    message("ResourceHandleProto",
            field("device", 1, "string"),
            field("container", 2, "string"),
            field("name", 3, "string"),
            field("hash_code", 4, "uint64"),
            field("maybe_type_name", 5, "string"),
            repeated("dtypes_and_shapes", 6, ".tensorflow.ResourceHandleProto.DtypeAndShape"),
            message("DtypeAndShape",
                    field("dtype", 1, ".tensorflow.DataType"),
                    field("shape", 2, ".tensorflow.TensorShapeProto"))),
    deps=("tensorflow/core/framework/tensor_shape.proto",
          "tensorflow/core/framework/types.proto"),
)

tensor_pb2 = proto_file(
    "tensorflow/core/framework/tensor.proto", "tensorflow",
    message("TensorProto",
            field("dtype", 1, ".tensorflow.DataType"),
            field("tensor_shape", 2, ".tensorflow.TensorShapeProto"),
            field("version_number", 3, "int32"),
            field("tensor_content", 4, "bytes"),
            repeated("half_val", 13, "int32"),  # float16/bfloat16 bit patterns
            repeated("float_val", 5, "float"),
            repeated("double_val", 6, "double"),
            repeated("int_val", 7, "int32"),  # int32, int16, int8, uint16, uint8
            repeated("string_val", 8, "bytes"),
            repeated("scomplex_val", 9, "float"),  # real, imaginary, real, ...
            repeated("int64_val", 10, "int64"),
            repeated("bool_val", 11, "bool"),
            repeated("dcomplex_val", 12, "double"),
            repeated("resource_handle_val", 14, ".tensorflow.ResourceHandleProto"),
            repeated("variant_val", 15, ".tensorflow.VariantTensorDataProto"),
            repeated("uint32_val", 16, "uint32"),
            repeated("uint64_val", 17, "uint64"),
            field("float8_val", 18, "bytes")),
    message("VariantTensorDataProto",
            field("type_name", 1, "string"),
            field("metadata", 2, "bytes"),
            repeated("tensors", 3, ".tensorflow.TensorProto")),
    deps=("tensorflow/core/framework/resource_handle.proto",
          "tensorflow/core/framework/tensor_shape.proto",
          "tensorflow/core/framework/types.proto"),
)

meta_graph_pb2 = proto_file(
    "tensorflow/core/protobuf/meta_graph.proto", "tensorflow",
    message("TensorInfo",
            oneof("encoding",
                  field("name", 1, "string"),
                  field("coo_sparse", 4, ".tensorflow.TensorInfo.CooSparse")),
            field("dtype", 2, ".tensorflow.DataType"),
            field("tensor_shape", 3, ".tensorflow.TensorShapeProto"),
            message("CooSparse",
                    field("values_tensor_name", 1, "string"),
                    field("indices_tensor_name", 2, "string"),
                    field("dense_shape_tensor_name", 3, "string"))),
    message("SignatureDef",
            map_field("inputs", 1, "string", ".tensorflow.TensorInfo"),
            map_field("outputs", 2, "string", ".tensorflow.TensorInfo"),
            field("method_name", 3, "string"),
            map_field("defaults", 4, "string", ".tensorflow.TensorProto")),
    deps=("tensorflow/core/framework/tensor.proto",
          "tensorflow/core/framework/tensor_shape.proto",
          "tensorflow/core/framework/types.proto"),
)

feature_pb2 = proto_file(
    "tensorflow/core/example/feature.proto", "tensorflow",
    message("BytesList", repeated("value", 1, "bytes")),
    message("FloatList", repeated("value", 1, "float")),
    message("Int64List", repeated("value", 1, "int64")),
    message("Feature",
            oneof("kind",
                  field("bytes_list", 1, ".tensorflow.BytesList"),
                  field("float_list", 2, ".tensorflow.FloatList"),
                  field("int64_list", 3, ".tensorflow.Int64List"))),
    message("Features", map_field("feature", 1, "string", ".tensorflow.Feature")),
    message("FeatureList", repeated("feature", 1, ".tensorflow.Feature")),
    message("FeatureLists",
            map_field("feature_list", 1, "string", ".tensorflow.FeatureList")),
)

example_pb2 = proto_file(
    "tensorflow/core/example/example.proto", "tensorflow",
    message("Example", field("features", 1, ".tensorflow.Features")),
    message("SequenceExample",
            field("context", 1, ".tensorflow.Features"),
            field("feature_lists", 2, ".tensorflow.FeatureLists")),
    deps=("tensorflow/core/example/feature.proto",),
)

error_codes_pb2 = proto_file(
    "xla/tsl/protobuf/error_codes.proto", "tensorflow.error",
    enum("Code", """
        OK=0 CANCELLED=1 UNKNOWN=2 INVALID_ARGUMENT=3 DEADLINE_EXCEEDED=4 NOT_FOUND=5
        ALREADY_EXISTS=6 PERMISSION_DENIED=7 UNAUTHENTICATED=16 RESOURCE_EXHAUSTED=8
        FAILED_PRECONDITION=9 ABORTED=10 OUT_OF_RANGE=11 UNIMPLEMENTED=12 INTERNAL=13
        UNAVAILABLE=14 DATA_LOSS=15
        DO_NOT_USE_RESERVED_FOR_FUTURE_EXPANSION_USE_DEFAULT_IN_SWITCH_INSTEAD_=20"""),
)
