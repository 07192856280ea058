"""TF Serving's flag spellings, on tables."""

from __future__ import annotations

import pytest

from edgeseg.errors import InvalidArgument
from edgeseg.serving.flags import ServerFlags, parse_flags, usage


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {}),
        (["--port=9000"], {"port": 9000}),
        (["--port", "9000"], {"port": 9000}),
        (["--model_name=deeplab", "--model_base_path", "/m"],
         {"model_name": "deeplab", "model_base_path": "/m"}),
        (["--enable_signature_method_name_check"], {"enable_signature_method_name_check": True}),
        (["--enable_signature_method_name_check=false"],
         {"enable_signature_method_name_check": False}),
        (["--allow_version_labels_for_unavailable_models=1"],
         {"allow_version_labels_for_unavailable_models": True}),
        (["--validate-config"], {"validate_config": True}),
        (["--validate_config=true"], {"validate_config": True}),
        (["--saved_model_tags=serve_quantized"], {"saved_model_tags": "serve_quantized"}),
        (["--load_retry_interval_micros=500"], {"load_retry_interval_micros": 500}),
        (["--shutdown_grace_seconds=2.5"], {"shutdown_grace_seconds": 2.5}),
        (["-h"], {"help": True}),
    ],
)
def test_spellings(argv, expected):
    flags = parse_flags(argv)
    defaults = ServerFlags()
    for name in vars(defaults):
        assert getattr(flags, name) == expected.get(name, getattr(defaults, name)), name


def test_defaults_are_tf_servings_and_large_enough_for_1080p():
    flags = ServerFlags()
    assert (flags.port, flags.grpc_bind_address, flags.model_name) == (8500, "0.0.0.0", "default")
    assert flags.saved_model_tags == "serve" and flags.file_system_poll_wait_seconds == 1
    assert flags.max_num_load_retries == 5 and flags.load_retry_interval_micros == 60_000_000
    assert flags.grpc_max_message_bytes >= 64 << 20 > 1920 * 1080 * 3 * 4  # a float32 frame


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--bogus=1"], "unknown flag --bogus"),
        (["--port=http"], "--port expects int"),
        (["--port"], "--port needs a value"),
        (["--enable_signature_method_name_check=maybe"], "expects true or false"),
        (["models/deeplab"], "unexpected argument 'models/deeplab'"),
    ],
)
def test_errors_name_the_flag(argv, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        parse_flags(argv)


def test_usage_lists_every_flag():
    text = usage()
    for name in vars(ServerFlags()):
        assert f"--{name}=" in text
