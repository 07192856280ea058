"""--monitoring_config_file (serving/monitoring.py), on tables and TF Serving's own file."""

from __future__ import annotations

import pytest

from edgeseg.errors import InvalidArgument
from edgeseg.serving.monitoring import DEFAULT_PATH, parse_monitoring_config

from .conftest import tfs_data


def test_tf_servings_monitoring_config():
    assert parse_monitoring_config(tfs_data("monitoring_config.txt").read_text()) == DEFAULT_PATH


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("prometheus_config { enable: false }", None),
     ("prometheus_config { enable: true }", DEFAULT_PATH),
     ('prometheus_config { enable: true path: "/m" }', "/m")],
)
def test_monitoring_configs(text, expected):
    assert parse_monitoring_config(text) == expected


@pytest.mark.parametrize(("text", "complaint"), [
    ("prometheus { }", "prometheus"),
    ('prometheus_config { enable: true path: "m" }', "must start with /")])
def test_bad_monitoring_configs(text, complaint):
    with pytest.raises(InvalidArgument, match=complaint) as raised:
        parse_monitoring_config(text, "monitoring config file /etc/m.txt")
    assert "/etc/m.txt" in raised.value.message
