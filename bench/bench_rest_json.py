"""REST answer encoding: one line (json's C encoder) against TF Serving's indent of 1 (which
makes json use its pure-Python encoder), through the server's own code path
(json_codec.predict_outputs, then http_message.json_response).

    .venv/bin/python bench/bench_rest_json.py [--runs 15]

Prints median ms per answer, the ratio, and the body sizes, for a DeepLab-size mask
(1x513x513 class ids) and half_plus_two's three floats; the two encodings are timed in
alternation and checked to decode to the same JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, median_ms, table
from edgeseg.serving.http_message import json_response
from edgeseg.serving.json_codec import predict_outputs

CASES = {
    "mask 1x513x513 int64": {"semantic": np.random.default_rng(0).integers(
        0, 21, (1, 513, 513))},
    "half_plus_two, 3 floats": {"y": np.float32([2.5, 3.0, 4.5])},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for name, outputs in CASES.items():
        def encode(indent: int | None, outputs: dict = outputs) -> bytes:
            return json_response(200, predict_outputs(outputs, True), indent).body

        one_line, indented = encode(None), encode(1)
        assert json.loads(one_line) == json.loads(indented)
        runs = args.runs if len(one_line) > 10_000 else 100 * args.runs
        times = interleaved({"one line": lambda: encode(None), "indent 1": lambda: encode(1)},
                            runs)
        line_ms, indent_ms = median_ms(times["one line"]), median_ms(times["indent 1"])
        rows.append((name, f"{line_ms:.3f}", f"{indent_ms:.3f}", f"{indent_ms / line_ms:.1f}x",
                     f"{len(one_line):,}", f"{len(indented):,}"))
    print(table(["answer", "one line ms", "indent 1 ms", "indent / one line",
                 "one line bytes", "indent 1 bytes"], rows))


if __name__ == "__main__":
    main()
