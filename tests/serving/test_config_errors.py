"""Malformed text protos are refused in TF Serving's words, naming line, column and field.

Operators and scripts grep TF Serving's stderr for ``Error parsing text-format
tensorflow.serving.ModelServerConfig``; edgeseg parses through its own extended copy of the
message (two extra fields) and must still name TF Serving's types.
"""

from __future__ import annotations

import pytest

from edgeseg.errors import InvalidArgument
from edgeseg.serving.batching import parse_batching_parameters
from edgeseg.serving.config import load_model_config_file, parse_model_config
from edgeseg.serving.monitoring import parse_monitoring_config

from .conftest import run_serve, tfs_data

TFS = "Error parsing text-format tensorflow.serving."


def test_tf_serving_bad_config_gets_tf_servings_message():
    path = tfs_data("bad_model_config.txt")
    with pytest.raises(InvalidArgument) as err:
        load_model_config_file(path)
    assert err.value.message.startswith(
        f'{TFS}ModelServerConfig: 1:1: Message type "tensorflow.serving.ModelServerConfig" '
        'has no field named "improperly".')
    assert str(path) in err.value.message


@pytest.mark.parametrize(
    ("text", "position", "detail"),
    [
        ('model_config_list {\n  config {\n    name: "a"\n    bogus: 1 } }', "4:5",
         'Message type "tensorflow.serving.ModelConfig" has no field named "bogus".'),
        # one of edgeseg's own extension fields, with a value of the wrong type
        ('model_config_list { config {\n name: "a" aspired_version_policy: 3 } }', "2:36",
         "Expected string"),
        ('model_config_list { config { name: "a" version_labels { key: "x" value: "y" } } }',
         "1:73", "Couldn't parse integer"),
    ],
    ids=["unknown-field", "extension-field", "map-value"],
)
def test_errors_keep_line_column_and_official_names(text, position, detail):
    with pytest.raises(InvalidArgument) as err:
        parse_model_config(text, "model config file m.config")
    message = err.value.message
    assert message.startswith(f"{TFS}ModelServerConfig: {position}: "), message
    assert detail in message and "(in model config file m.config)" in message
    assert "edgeseg.serving" not in message


@pytest.mark.parametrize(
    ("parse", "text", "official"),
    [(parse_batching_parameters, "max_batch_size { value: lots }", "BatchingParameters"),
     (parse_monitoring_config, "prometheus_config { enable: maybe }", "MonitoringConfig")],
    ids=["batching", "monitoring"],
)
def test_other_config_files_speak_the_same_way(parse, text, official):
    with pytest.raises(InvalidArgument, match=f"^{TFS}{official}: 1:"):
        parse(text, "some file")


def test_serve_exits_nonzero_with_tf_servings_line_on_stderr():
    path = tfs_data("bad_model_config.txt")
    result = run_serve(f"--model_config_file={path}", "--port=0",
                       "--grpc_bind_address=127.0.0.1")
    assert result.returncode != 0
    assert f"{TFS}ModelServerConfig: 1:1: " in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
