"""A/B serving benchmark: one model served by two git revisions, measured side by side.

Issue 13 (a refactor) asks that behaviour and benchmark figures stay unchanged. Two runs of
bench_serving.py on a shared machine differ by ~10% on their own, so this script measures
both revisions in ONE run: the same noise hits both, and the ratio is what is read.

It makes a temporary ``git worktree add --detach`` of ``--baseline`` (and of ``--candidate``
when that is a revision rather than a folder; default: this checkout), exports one DeepLab-v3
with the candidate's exporter and starts two real ``edgeseg serve`` on 127.0.0.1 (gRPC and
REST) on that same base path, one per tree: cwd and PYTHONPATH are the tree, and a quick
``import edgeseg`` there checks that each imports its own code. Calls alternate request by
request in ABBA order (A B B A A B ...), so drift cancels as well as noise:

- DeepLab: gRPC Predict (uint8 frame; ``--runs`` pairs), REST Predict (b64 JPEG to
  ``predict_encoded``, as bench_serving --issue5; ``--runs``/4, it is slow), gRPC
  GetModelMetadata (5 x ``--runs``: a cheap call, the front door alone);
- TF Serving's half_plus_two (``../shared/tfserving-testdata``; skipped with a message when
  absent): gRPC Predict, REST Predict (JSON instances), gRPC GetModelMetadata, 5 x ``--runs``
  pairs each: the front door's own overhead, which DeepLab's compute hides.

Before timing, each model's Predict answers of the two servers are compared (equal or not).
Prints per call kind each side's median and p90, the candidate/baseline ratio of medians, the
range of that ratio over 5 consecutive blocks of the run (drift shows there) and a bootstrap
95% interval over the pairs; "slower"/"faster" only when both put 1.0 outside, else "within
noise" (the 5 blocks alone fall all on one side in ~6% of the rows of an A/A run). Then each
server's RSS after its phase (/proc). The worktrees are removed (and ``git worktree prune``
run) in ``finally``, also on Ctrl-C or SIGTERM; so are the servers and the temporary folder.

    .venv/bin/python bench/bench_compare.py --baseline REV [--candidate WORKTREE_OR_REV]
                                            [--runs 200] [--input-size 513]

``--baseline HEAD`` against an unchanged checkout is an A/A run: it shows the noise floor.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_load import MODEL as HALF_PLUS_TWO  # noqa: E402
from bench.bench_serving import (  # noqa: E402
    _rest_call,
    export,
    free_port,
    start_server,
    stop_server,
)
from bench.bench_tflite_serving import rss_mb  # noqa: E402
from bench.common import median_ms, p90_ms, table  # noqa: E402
from edgeseg.model_contract import IMAGES, PREDICT_ENCODED  # noqa: E402

BLOCKS = 5
SIDES = ("baseline", "candidate")
Call = Callable[[], Any]
Server = tuple[subprocess.Popen, int, int]  # process, gRPC port, REST port


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()


def describe(tree: Path) -> str:
    """``sha subject`` of the tree's HEAD, ``+ uncommitted changes`` when it has them."""
    head = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=tree, check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree,
                           check=True, capture_output=True, text=True).stdout.strip()
    return f"{head[:72]}{' + uncommitted changes' if dirty else ''}"


@contextmanager
def worktrees(baseline: str, candidate: str | None, tmp: Path) -> Iterator[tuple[Path, Path]]:
    """(baseline tree, candidate tree); the temporary worktrees are removed on the way out."""
    made: list[Path] = []
    try:
        trees = []
        for side, rev in zip(SIDES, (baseline, candidate), strict=True):
            if rev is None or (side == "candidate" and Path(rev).is_dir()):
                trees.append(Path(rev or REPO).resolve())
                continue
            sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
            path = tmp / side
            made.append(path)
            git("worktree", "add", "--detach", str(path), sha)
            trees.append(path)
        yield trees[0], trees[1]
    finally:
        for path in made:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO,
                           check=False, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, check=False)


def tree_env(tree: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(tree))


def check_imports(tree: Path) -> str:
    """Where ``import edgeseg`` resolves with the servers' cwd and env; exits unless in tree."""
    found = subprocess.run([sys.executable, "-c", "import edgeseg; print(edgeseg.__file__)"],
                           cwd=tree, env=tree_env(tree), check=True, capture_output=True,
                           text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree):
        raise SystemExit(f"edgeseg imported from {found}, not from {tree}")
    return found


def start_pair(stack: ExitStack, trees: tuple[Path, Path], base: Path, logs: Path,
               *flags: str) -> list[Server]:
    """One server per tree on ``base``, stopped when the stack closes."""
    servers: list[Server] = []
    for side, tree in zip(SIDES, trees, strict=True):
        rest = free_port()
        proc, port = start_server(base, logs / f"{base.name}-{side}.log", *flags,
                                  f"--rest_api_port={rest}", cwd=tree, env=tree_env(tree))
        stack.callback(stop_server, proc)
        servers.append((proc, port, rest))
    return servers


def grpc_calls(port: int, model: str, inputs: dict) -> dict[str, Call]:
    """gRPC Predict (answer not decoded: that is client time) and GetModelMetadata."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    limit = 256 << 20
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = model
    for name, value in inputs.items():
        predict.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = model
    metadata.metadata_field.append("signature_def")
    return {"gRPC Predict": lambda: stub.Predict(predict, timeout=300),
            "gRPC GetModelMetadata": lambda: stub.GetModelMetadata(metadata, timeout=60)}


def same_answers(calls: tuple[Call, Call]) -> bool:
    """Do both servers' Predict outputs hold equal tensors (encodings may differ)?"""
    import numpy as np
    import tensorflow as tf

    answers = [fn().outputs for fn in calls]
    if set(answers[0]) != set(answers[1]):
        return False
    return all(np.array_equal(tf.make_ndarray(answers[0][k]), tf.make_ndarray(answers[1][k]))
               for k in answers[0])


def abba(calls: tuple[Call, Call], pairs: int, warmup: int = 3) -> tuple[list, list]:
    """Seconds per call of each side, timed A B B A A B ... so drift hits both alike."""
    for _ in range(warmup):
        for fn in calls:
            fn()
    out: tuple[list, list] = ([], [])
    for i in range(pairs):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            started = time.perf_counter()
            calls[side]()
            out[side].append(time.perf_counter() - started)
    return out


def ratio_row(name: str, a: list[float], b: list[float]) -> list[object]:
    import numpy as np

    ratio = statistics.median(b) / statistics.median(a)
    size = max(1, len(a) // BLOCKS)
    blocks = [statistics.median(b[i:i + size]) / statistics.median(a[i:i + size])
              for i in range(0, size * min(BLOCKS, len(a)), size)]
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(a), (2000, len(a)))  # pairs resampled together
    boot = np.median(np.asarray(b)[picks], axis=1) / np.median(np.asarray(a)[picks], axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    verdict = "within noise"  # unless the blocks and the bootstrap both put 1.0 outside
    if min(min(blocks), low) > 1 or max(max(blocks), high) < 1:
        verdict = f"{'slower' if ratio > 1 else 'faster'} ({100 * (ratio - 1):+.1f}%)"
    return [name, len(a), f"{median_ms(a):.2f}", f"{p90_ms(a):.2f}", f"{median_ms(b):.2f}",
            f"{p90_ms(b):.2f}", f"{ratio:.3f}", f"{min(blocks):.3f}-{max(blocks):.3f}",
            f"{low:.3f}-{high:.3f}", verdict]


HEADERS = ["call", "n/side", "base med ms", "base p90", "cand med ms", "cand p90",
           "cand/base", f"{BLOCKS} blocks", "bootstrap 95%", "verdict"]


def measure(title: str, kinds: dict[str, tuple[tuple[Call, Call], int]]) -> None:
    rows = []
    for name, (calls, pairs) in kinds.items():
        print(f"  {title}: {name}, {pairs} pairs…", flush=True)
        rows.append(ratio_row(name, *abba(calls, pairs)))
    print(f"\n{title} (ABBA, 1 client; ms per call; ratio < 1 = candidate faster)")
    print(table(HEADERS, rows) + "\n", flush=True)


def deeplab_phase(trees: tuple[Path, Path], tmp: Path, size: int, runs: int) -> list:
    import cv2
    import numpy as np

    base = tmp / "deeplab"
    print(f"exporting DeepLab-v3 at {size}x{size} with the candidate's exporter…", flush=True)
    export(base, size, cwd=trees[1], env=tree_env(trees[1]))
    frame = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), np.uint8)
    jpeg = base64.b64encode(cv2.imencode(".jpg", frame[0])[1].tobytes()).decode()
    body = {"signature_name": PREDICT_ENCODED, "instances": [{"b64": jpeg}]}
    with ExitStack() as stack:
        servers = start_pair(stack, trees, base, tmp)
        grpc_sides = [grpc_calls(port, "deeplab", {IMAGES: frame}) for _, port, _ in servers]
        rest = tuple(_rest_call(f"http://127.0.0.1:{r}/v1/models/deeplab:predict", body)
                     for _, _, r in servers)
        predict = (grpc_sides[0]["gRPC Predict"], grpc_sides[1]["gRPC Predict"])
        print(f"DeepLab Predict answers equal: {same_answers(predict)}", flush=True)
        measure(f"DeepLab-v3 {size}x{size}", {
            "gRPC Predict": (predict, runs),
            "REST Predict (b64 JPEG)": (rest, max(5, runs // 4)),
            "gRPC GetModelMetadata": ((grpc_sides[0]["gRPC GetModelMetadata"],
                                       grpc_sides[1]["gRPC GetModelMetadata"]), runs * 5),
        })
        return [["DeepLab", *(f"{rss_mb(p.pid):.0f}" for p, _, _ in servers)]]


def half_plus_two_phase(trees: tuple[Path, Path], tmp: Path, runs: int) -> list:
    import numpy as np

    if not HALF_PLUS_TWO.is_dir():
        print(f"half_plus_two skipped: no model at {HALF_PLUS_TWO} (TF Serving's test data, "
              "see ../shared)")
        return []
    with ExitStack() as stack:
        servers = start_pair(stack, trees, HALF_PLUS_TWO, tmp, "--model_name=half_plus_two")
        x = np.array([1.0, 2.0, 5.0], np.float32)
        grpc_sides = [grpc_calls(port, "half_plus_two", {"x": x}) for _, port, _ in servers]
        url = "http://127.0.0.1:{}/v1/models/half_plus_two:predict"
        rest = tuple(_rest_call(url.format(r), {"instances": [1.0, 2.0, 5.0]})
                     for _, _, r in servers)
        predict = (grpc_sides[0]["gRPC Predict"], grpc_sides[1]["gRPC Predict"])
        print(f"half_plus_two Predict answers equal: {same_answers(predict)}", flush=True)
        measure("half_plus_two (front door only)", {
            name: ((grpc_sides[0][name], grpc_sides[1][name]), runs * 5) for name in grpc_sides[0]
        } | {"REST Predict (JSON)": (rest, runs * 5)})
        return [["half_plus_two", *(f"{rss_mb(p.pid):.0f}" for p, _, _ in servers)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--candidate", help="a worktree folder or git revision "
                        "(default: this checkout, uncommitted changes included)")
    parser.add_argument("--runs", type=int, default=200,
                        help="DeepLab gRPC Predicts per side (REST: /4; cheap calls: x5)")
    parser.add_argument("--input-size", type=int, default=513)
    args = parser.parse_args()
    # SIGTERM ends like Ctrl-C, through the finally blocks (servers, worktrees, temp dirs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="bench_compare-")).resolve()
    try:
        with worktrees(args.baseline, args.candidate, tmp) as trees:
            for side, tree in zip(SIDES, trees, strict=True):
                print(f"{side:9}  {describe(tree)}\n           edgeseg from "
                      f"{check_imports(tree)}")
            print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
                  "both servers and the client on this machine\n", flush=True)
            rss = deeplab_phase(trees, tmp, args.input_size, args.runs)
            rss += half_plus_two_phase(trees, tmp, args.runs)
            print(f"server RSS MB after each phase (load average {os.getloadavg()[0]:.1f} "
                  "at the end)")
            print(table(["model", "baseline", "candidate"], rss))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
