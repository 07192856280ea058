"""The ConfigProto the GPU/thread flags build, field by field (there is no GPU here: this is
the check by inspection the issue asks for), TF_FORCE_GPU_ALLOW_GROWTH, and the opt-in
mixed-precision rewrite, reported in a real server's load log line."""

from __future__ import annotations

import logging

import pytest
from tensorflow.core.protobuf import rewriter_config_pb2

from edgeseg.errors import InvalidArgument
from edgeseg.serving import session_options
from edgeseg.serving.flags import parse_flags
from edgeseg.serving.session_options import (
    BFLOAT16,
    FLOAT16,
    OFF,
    UNSUPPORTED,
    cpu_flags,
    from_flags,
    mixed_precision,
)

from .conftest import free_port, rest_call
from .models import two_tag_model

ON, DEFAULT = rewriter_config_pb2.RewriterConfig.ON, rewriter_config_pb2.RewriterConfig.DEFAULT
X86_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})


def build(*argv: str, environ=None, cpu=frozenset(), gpus=0):
    return from_flags(parse_flags(argv), environ or {}, cpu, gpus)


@pytest.mark.parametrize(
    ("argv", "intra", "inter", "fraction"),
    [
        ((), 0, 0, 0.0),
        (("--per_process_gpu_memory_fraction=0.4",), 0, 0, 0.4),
        (("--tensorflow_intra_op_parallelism=4", "--tensorflow_inter_op_parallelism=2"), 4, 2,
         0.0),
        # TF Serving's server.cc: session parallelism sets both when neither is given...
        (("--tensorflow_session_parallelism=3",), 3, 3, 0.0),
        # ...and is ignored when either is
        (("--tensorflow_intra_op_parallelism=4", "--tensorflow_session_parallelism=3"), 4, 0,
         0.0),
        (("--tensorflow_inter_op_parallelism=2", "--tensorflow_session_parallelism=3",
          "--per_process_gpu_memory_fraction=1"), 0, 2, 1.0),
    ],
    ids=["defaults", "gpu-fraction", "intra-inter", "session", "intra-wins", "inter-wins"],
)
def test_flags_build_the_config_field_by_field(argv, intra, inter, fraction):
    config, summary = build(*argv)
    assert config.intra_op_parallelism_threads == intra
    assert config.inter_op_parallelism_threads == inter
    assert config.gpu_options.per_process_gpu_memory_fraction == pytest.approx(fraction)
    assert config.gpu_options.allow_growth is False
    assert config.allow_soft_placement is True
    rewrites = config.graph_options.rewrite_options
    assert rewrites.auto_mixed_precision == DEFAULT
    assert rewrites.auto_mixed_precision_onednn_bfloat16 == DEFAULT
    assert summary.startswith(f"intra_op {intra or 'auto'}, inter_op {inter or 'auto'}; ")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [(("--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1",
       "--tensorflow_session_parallelism=1"), "You cannot configure all"),
     (("--tensorflow_session_parallelism=-2",), "must be >= 0")],
)
def test_conflicting_or_negative_thread_flags_are_refused(argv, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        build(*argv)


@pytest.mark.parametrize(
    ("flag", "env", "growth"),
    [(False, None, False), (True, None, True), (False, "true", True), (True, "false", False),
     (True, "yes", True), (False, "1", False)],
)
def test_tf_force_gpu_allow_growth_wins_as_in_tensorflow(flag, env, growth, caplog):
    environ = {} if env is None else {"TF_FORCE_GPU_ALLOW_GROWTH": env}
    with caplog.at_level(logging.WARNING):
        config, _ = build(f"--gpu_allow_growth={str(flag).lower()}", environ=environ)
    assert config.gpu_options.allow_growth is growth
    assert ("neither true nor false" in caplog.text) is (env in ("yes", "1"))


@pytest.mark.parametrize(
    ("requested", "gpus", "cpu", "mode"),
    [(False, 1, X86_BF16, OFF), (True, 1, frozenset(), FLOAT16), (True, 2, X86_BF16, FLOAT16),
     (True, 0, X86_BF16, BFLOAT16), (True, 0, frozenset({"amx_bf16", "amx_tile"}), BFLOAT16),
     (True, 0, frozenset({"avx2", "avx512f"}), UNSUPPORTED), (True, 0, frozenset(), UNSUPPORTED)],
)
def test_mixed_precision_choice(requested, gpus, cpu, mode):
    assert mixed_precision(requested, gpus, cpu).mode == mode


@pytest.mark.parametrize(
    ("gpus", "cpu", "fp16", "bf16", "said"),
    [(1, frozenset(), ON, DEFAULT, "mixed precision float16 (1 GPU(s))"),
     (0, X86_BF16, DEFAULT, ON, "mixed precision bfloat16 (CPU has avx512_bf16)"),
     (0, frozenset({"avx2"}), DEFAULT, DEFAULT, "requested but not applied")],
    ids=["gpu", "cpu-bf16", "cpu-without-bf16"],
)
def test_auto_mixed_precision_sets_the_grappler_rewrite(gpus, cpu, fp16, bf16, said, caplog):
    with caplog.at_level(logging.INFO):
        config, summary = build("--auto_mixed_precision", cpu=cpu, gpus=gpus)
    rewrites = config.graph_options.rewrite_options
    assert (rewrites.auto_mixed_precision, rewrites.auto_mixed_precision_onednn_bfloat16) == (
        fp16, bf16)
    assert said in summary
    assert ("no bfloat16 instructions" in caplog.text) is (bf16 == fp16 == DEFAULT)


def test_cpu_flags_of_x86_and_arm():
    x86 = "processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}
    assert cpu_flags("") == frozenset()
    assert "fpu" in cpu_flags() or "fp" in cpu_flags()  # this machine's, from /proc/cpuinfo


def test_server_reports_the_session_options_in_the_load_line(serve, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "m"
    two_tag_model(base / "1")
    rest = free_port()
    server = serve(f"--model_base_path={base}", "--model_name=m", f"--rest_api_port={rest}",
                   "--auto_mixed_precision", "--tensorflow_session_parallelism=1")
    url = server.serve_rest(rest)
    here = mixed_precision(True, 0, session_options.cpu_flags())  # no GPU on test machines
    server.wait_for_line(f"(tags serve): intra_op 1, inter_op 1; {here.describe()}")
    # on this machine's CPU either the bf16 rewrite runs or nothing does: answers are exact
    assert rest_call(f"{url}/m:predict", {"instances": [1.0, 2.0]}) == (
        200, {"predictions": [2.0, 3.0]})
