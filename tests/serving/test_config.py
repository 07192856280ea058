"""model_config_list text protos: TF Serving's files, our two extra fields, errors naming keys."""

from __future__ import annotations

import pytest
from tensorflow_serving.config import model_server_config_pb2

from edgeseg.errors import InvalidArgument
from edgeseg.serving.config import (
    load_model_config_file,
    models_from_proto,
    parse_model_config,
    split_tags,
)
from edgeseg.serving.policy import PreservePolicy, VersionPolicy, VersionPolicyKind

from .conftest import tfs_data


def test_tf_serving_good_config_parses():
    text = tfs_data("good_model_config.txt").read_text()
    models = parse_model_config(text)
    assert [(m.name, m.base_path) for m in models] == [
        ("half_plus_two", "${TEST_HALF_PLUS_TWO_DIR}"),
        ("half_plus_three", "${TEST_HALF_PLUS_THREE_DIR}"),
    ]
    assert all(m.policy == VersionPolicy() and m.tags == ("serve",) for m in models)


def test_tf_serving_bad_config_is_refused_naming_the_file_and_position():
    path = tfs_data("bad_model_config.txt")
    with pytest.raises(InvalidArgument) as err:
        load_model_config_file(path)
    assert str(path) in err.value.message
    assert "1:1" in err.value.message and "improperly" in err.value.message


FULL = """
model_config_list {
  config {
    name: "two" base_path: "/m/two" model_platform: "tensorflow"
    model_version_policy { specific { versions: 123 versions: 124 } }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
  config {
    name: "int8" base_path: "/m/deeplab"
    saved_model_tags: "serve_quantized"
    aspired_version_policy: "resource_preserving"
    model_version_policy { latest { num_versions: 2 } }
  }
  config { name: "every" base_path: "/m/x" model_version_policy { all {} } }
}
"""


def test_policies_labels_and_our_extension_fields():
    two, int8, every = parse_model_config(FULL, default_tags=("gpu",))
    assert two.policy == VersionPolicy(VersionPolicyKind.SPECIFIC, versions=frozenset({123, 124}))
    assert two.labels == {"stable": 123, "canary": 124}
    assert two.tags == ("gpu",) and two.preserve is PreservePolicy.AVAILABILITY
    assert int8.tags == ("serve_quantized",) and int8.preserve is PreservePolicy.RESOURCE
    assert int8.policy == VersionPolicy(VersionPolicyKind.LATEST, num_versions=2)
    assert every.policy.kind is VersionPolicyKind.ALL


def test_official_proto_from_reload_request():
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name="a", base_path="/a")
    entry.version_labels["stable"] = 3
    (model,) = models_from_proto(config, "reload")
    assert (model.name, model.base_path, model.labels) == ("a", "/a", {"stable": 3})


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("improperly formatted file", "improperly"),
        ('model_config_list { config { name: "a" } }', "base_path is missing"),
        ('model_config_list { config { base_path: "/a" } }', "name is missing"),
        ('model_config_list { config { name: "a" base_path: "/a" bogus: 1 } }', '"bogus"'),
        ('model_config_list { config { name: "a" base_path: "/a" } '
         'config { name: "a" base_path: "/b" } }', "'a' is configured twice"),
        ('model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }',
         "model_platform 'onnx'"),
        ('model_config_list { config { name: "a" base_path: "/a" '
         'aspired_version_policy: "fastest" } }', "aspired_version_policy"),
        ('model_config_list { config { name: "a" base_path: "/a" '
         "model_version_policy { latest { num_versions: -1 } } } }", "num_versions"),
        ('custom_model_config { }', "custom_model_config"),
    ],
)
def test_bad_configs_say_what_is_wrong(text, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        parse_model_config(text)


def test_split_tags():
    assert split_tags("serve, gpu") == ("serve", "gpu")
    with pytest.raises(InvalidArgument):
        split_tags(" , ")
