"""TensorFlow Serving's API and config messages, without importing TensorFlow.

Contract: each ``*_pb2`` name below stands for the module of the same name in
``tensorflow_serving.apis`` or ``tensorflow_serving.config`` and holds the same messages
(full names, field numbers, types, oneofs and enums as the ``.proto`` files), so a server or
client switches by changing an import line (tests/test_wire_messages.py checks every field
against the official descriptors and the bytes both ways). Left out, and kept as unknown
fields when a peer sends them: ``PredictionLog.session_run_log`` (it pulls in TensorFlow's
whole ``config.proto``; TF Serving does not replay it at warm-up either).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from edgeseg.wire import framework  # noqa: F401 - adds the tensorflow.* files to the pool
from edgeseg.wire.schema import (
    ANY_FILE,
    WRAPPERS_FILE,
    enum,
    field,
    map_field,
    message,
    oneof,
    optional,
    proto_file,
    repeated,
)

_TS = "tensorflow.serving"
_SPEC = ".tensorflow.serving.ModelSpec"
_APIS = "tensorflow_serving/apis/"
_CONFIG = "tensorflow_serving/config/"

model_pb2 = proto_file(
    _APIS + "model.proto", _TS,
    message("ModelSpec",
            field("name", 1, "string"),
            oneof("version_choice",
                  field("version", 2, ".google.protobuf.Int64Value"),
                  field("version_label", 4, "string")),
            field("signature_name", 3, "string")),
    deps=(WRAPPERS_FILE,),
)

predict_pb2 = proto_file(
    _APIS + "predict.proto", _TS,
    message("PredictRequest",
            field("model_spec", 1, _SPEC),
            map_field("inputs", 2, "string", ".tensorflow.TensorProto"),
            repeated("output_filter", 3, "string"),
            field("predict_streamed_options", 5, ".tensorflow.serving.PredictStreamedOptions"),
            optional("client_id", 6, "bytes"),
            optional("request_options", 7, ".tensorflow.serving.PredictRequest.RequestOptions"),
            message("RequestOptions",
                    optional("client_id", 1, "bytes"),
                    optional("deterministic_mode", 2, ".tensorflow.serving.PredictRequest"
                             ".RequestOptions.DeterministicMode"),
                    optional("return_additional_arrays_from_prefill", 3, "bool"),
                    repeated("return_stoptokens", 4, "int64"),
                    optional("return_all_stoptokens", 9, "bool"),
                    optional("max_cache_length", 6, "int64"),
                    optional("handshake", 13,
                             ".tensorflow.serving.PredictRequest.RequestOptions.Handshake"),
                    enum("DeterministicMode",
                         "DETERMINISTIC_MODE_UNSPECIFIED=0 FIXED_DECODER_SLOT=1"),
                    message("Handshake", field("estimated_payload_bytes", 1, "int64")))),
    message("PredictStreamedOptions",
            field("request_state", 1,
                  ".tensorflow.serving.PredictStreamedOptions.RequestState"),
            map_field("split_dimensions", 2, "string", "int32"),
            field("return_single_response", 3, "bool"),
            enum("RequestState", "NONE=0 SPLIT=1 END_SPLIT=2 CANCEL=3")),
    message("PredictResponse",
            field("model_spec", 2, _SPEC),
            map_field("outputs", 1, "string", ".tensorflow.TensorProto")),
    deps=("tensorflow/core/framework/tensor.proto", _APIS + "model.proto"),
)

get_model_metadata_pb2 = proto_file(
    _APIS + "get_model_metadata.proto", _TS,
    message("SignatureDefMap",
            map_field("signature_def", 1, "string", ".tensorflow.SignatureDef")),
    message("GetModelMetadataRequest",
            field("model_spec", 1, _SPEC),
            repeated("metadata_field", 2, "string")),
    message("GetModelMetadataResponse",
            field("model_spec", 1, _SPEC),
            map_field("metadata", 2, "string", ".google.protobuf.Any")),
    deps=(ANY_FILE, "tensorflow/core/protobuf/meta_graph.proto", _APIS + "model.proto"),
)
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"

status_pb2 = proto_file(
    _APIS + "status.proto", _TS,
    message("StatusProto",
            field("error_code", 1, ".tensorflow.error.Code"),
            field("error_message", 2, "string")),
    deps=("xla/tsl/protobuf/error_codes.proto",),
)

get_model_status_pb2 = proto_file(
    _APIS + "get_model_status.proto", _TS,
    message("GetModelStatusRequest", field("model_spec", 1, _SPEC)),
    message("ModelVersionStatus",
            field("version", 1, "int64"),
            field("state", 2, ".tensorflow.serving.ModelVersionStatus.State"),
            field("status", 3, ".tensorflow.serving.StatusProto"),
            enum("State", "UNKNOWN=0 START=10 LOADING=20 AVAILABLE=30 UNLOADING=40 END=50")),
    message("GetModelStatusResponse",
            repeated("model_version_status", 1, ".tensorflow.serving.ModelVersionStatus")),
    deps=(_APIS + "model.proto", _APIS + "status.proto"),
)

_POLICY = ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy"
file_system_storage_path_source_pb2 = proto_file(
    _CONFIG + "file_system_storage_path_source.proto", _TS,
    message("FileSystemStoragePathSourceConfig",
            repeated("servables", 5,
                     ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableToMonitor"),
            field("file_system_poll_wait_seconds", 3, "int64"),
            field("fail_if_zero_versions_at_startup", 4, "bool"),
            field("servable_versions_always_present", 6, "bool"),
            message("ServableVersionPolicy",
                    oneof("policy_choice",
                          field("latest", 100, _POLICY + ".Latest"),
                          field("all", 101, _POLICY + ".All"),
                          field("specific", 102, _POLICY + ".Specific")),
                    message("Latest", field("num_versions", 1, "uint32")),
                    message("All"),
                    message("Specific", repeated("versions", 1, "int64"))),
            message("ServableToMonitor",
                    field("servable_name", 1, "string"),
                    field("base_path", 2, "string"),
                    field("servable_version_policy", 4, _POLICY))),
)

log_collector_config_pb2 = proto_file(
    _CONFIG + "log_collector_config.proto", _TS,
    message("LogCollectorConfig",
            field("type", 1, "string"), field("filename_prefix", 2, "string")),
)

logging_config_pb2 = proto_file(
    _CONFIG + "logging_config.proto", _TS,
    message("PerTaskSamplingConfig",
            field("dc", 1, "string"),
            optional("task_index", 2, "int32"),
            field("sampling_rate", 3, "double")),
    message("SamplingConfig",
            field("sampling_rate", 1, "double"),
            repeated("per_task_sampling_configs", 3, ".tensorflow.serving.PerTaskSamplingConfig"),
            field("attributes", 2, "int32"),
            enum("Attributes", "ATTR_DEFAULT=0 ATTR_REQUEST_ORIGIN=1 ATTR_REQUEST_CRITICALITY=2")),
    message("LoggingConfig",
            field("log_collector_config", 1, ".tensorflow.serving.LogCollectorConfig"),
            field("sampling_config", 2, ".tensorflow.serving.SamplingConfig"),
            field("custom_logging_config", 3, ".google.protobuf.Any")),
    deps=(ANY_FILE, _CONFIG + "log_collector_config.proto"),
)

model_server_config_pb2 = proto_file(
    _CONFIG + "model_server_config.proto", _TS,
    enum("ModelType", "MODEL_TYPE_UNSPECIFIED=0 TENSORFLOW=1 OTHER=2"),
    message("ModelConfig",
            field("name", 1, "string"),
            field("base_path", 2, "string"),
            field("model_type", 3, ".tensorflow.serving.ModelType"),
            field("model_platform", 4, "string"),
            field("model_version_policy", 7, _POLICY),
            map_field("version_labels", 8, "string", "int64"),
            field("logging_config", 6, ".tensorflow.serving.LoggingConfig")),
    message("ModelConfigList", repeated("config", 1, ".tensorflow.serving.ModelConfig")),
    message("ModelServerConfig",
            oneof("config",
                  field("model_config_list", 1, ".tensorflow.serving.ModelConfigList"),
                  field("custom_model_config", 2, ".google.protobuf.Any"))),
    deps=(ANY_FILE, _CONFIG + "file_system_storage_path_source.proto",
          _CONFIG + "logging_config.proto"),
)

model_management_pb2 = proto_file(
    _APIS + "model_management.proto", _TS,
    message("ReloadConfigRequest",
            field("config", 1, ".tensorflow.serving.ModelServerConfig"),
            repeated("metric_names", 2, "string")),
    message("ReloadConfigResponse",
            field("status", 1, ".tensorflow.serving.StatusProto"),
            repeated("metric", 2, ".tensorflow.serving.Metric")),
    message("Metric",
            field("name", 1, "string"),
            oneof("value_increase", field("int64_value_increase", 2, "int64"))),
    deps=(_APIS + "status.proto", _CONFIG + "model_server_config.proto"),
)

input_pb2 = proto_file(
    _APIS + "input.proto", _TS,
    message("ExampleList", repeated("examples", 1, ".tensorflow.Example")),
    message("ExampleListWithContext",
            repeated("examples", 1, ".tensorflow.Example"),
            field("context", 2, ".tensorflow.Example")),
    message("Input",
            oneof("kind",
                  field("example_list", 1, ".tensorflow.serving.ExampleList"),
                  field("example_list_with_context", 2,
                        ".tensorflow.serving.ExampleListWithContext"))),
    deps=("tensorflow/core/example/example.proto",),
)

_IO = (_APIS + "input.proto", _APIS + "model.proto")
classification_pb2 = proto_file(
    _APIS + "classification.proto", _TS,
    message("Class", field("label", 1, "string"), field("score", 2, "float")),
    message("Classifications", repeated("classes", 1, ".tensorflow.serving.Class")),
    message("ClassificationResult",
            repeated("classifications", 1, ".tensorflow.serving.Classifications")),
    message("ClassificationRequest",
            field("model_spec", 1, _SPEC), field("input", 2, ".tensorflow.serving.Input")),
    message("ClassificationResponse",
            field("model_spec", 2, _SPEC),
            field("result", 1, ".tensorflow.serving.ClassificationResult")),
    deps=_IO,
)

regression_pb2 = proto_file(
    _APIS + "regression.proto", _TS,
    message("Regression", field("value", 1, "float")),
    message("RegressionResult", repeated("regressions", 1, ".tensorflow.serving.Regression")),
    message("RegressionRequest",
            field("model_spec", 1, _SPEC), field("input", 2, ".tensorflow.serving.Input")),
    message("RegressionResponse",
            field("model_spec", 2, _SPEC),
            field("result", 1, ".tensorflow.serving.RegressionResult")),
    deps=_IO,
)

inference_pb2 = proto_file(
    _APIS + "inference.proto", _TS,
    message("InferenceTask", field("model_spec", 1, _SPEC), field("method_name", 2, "string")),
    message("InferenceResult",
            field("model_spec", 1, _SPEC),
            oneof("result",
                  field("classification_result", 2, ".tensorflow.serving.ClassificationResult"),
                  field("regression_result", 3, ".tensorflow.serving.RegressionResult"))),
    message("MultiInferenceRequest",
            repeated("tasks", 1, ".tensorflow.serving.InferenceTask"),
            field("input", 2, ".tensorflow.serving.Input")),
    message("MultiInferenceResponse",
            repeated("results", 1, ".tensorflow.serving.InferenceResult")),
    deps=(_APIS + "classification.proto", *_IO, _APIS + "regression.proto"),
)

logging_pb2 = proto_file(
    _APIS + "logging.proto", _TS,
    message("LogMetadata",
            field("model_spec", 1, _SPEC),
            field("sampling_config", 2, ".tensorflow.serving.SamplingConfig"),
            repeated("saved_model_tags", 3, "string"),
            field("timestamp_secs", 4, "int64"),
            field("dc", 5, "string"),
            field("request_origin", 6, "string"),
            field("request_criticality", 7, "string"),
            field("safe_aggregation_privacy_key", 8, "int64")),
    deps=(_APIS + "model.proto", _CONFIG + "logging_config.proto"),
)


def _log(name: str, request: str, response: str, repeat: bool = False
         ) -> descriptor_pb2.DescriptorProto:
    make = repeated if repeat else field
    return message(name, make("request", 1, f".{_TS}.{request}"),
                   make("response", 2, f".{_TS}.{response}"))


prediction_log_pb2 = proto_file(
    _APIS + "prediction_log.proto", _TS,
    _log("ClassifyLog", "ClassificationRequest", "ClassificationResponse"),
    _log("RegressLog", "RegressionRequest", "RegressionResponse"),
    _log("PredictLog", "PredictRequest", "PredictResponse"),
    _log("PredictStreamedLog", "PredictRequest", "PredictResponse", repeat=True),
    _log("MultiInferenceLog", "MultiInferenceRequest", "MultiInferenceResponse"),
    message("PredictionLog",
            field("log_metadata", 1, ".tensorflow.serving.LogMetadata"),
            oneof("log_type",
                  field("classify_log", 2, ".tensorflow.serving.ClassifyLog"),
                  field("regress_log", 3, ".tensorflow.serving.RegressLog"),
                  field("predict_log", 6, ".tensorflow.serving.PredictLog"),
                  field("predict_streamed_log", 7, ".tensorflow.serving.PredictStreamedLog"),
                  field("multi_inference_log", 4, ".tensorflow.serving.MultiInferenceLog"))),
    deps=(_APIS + "classification.proto", _APIS + "inference.proto", _APIS + "logging.proto",
          _APIS + "predict.proto", _APIS + "regression.proto"),
)
