"""``edgeseg demo`` (what ``make demo`` runs): the kit end to end on one machine.

Today it exports the demo model into ``WORKDIR/models/deeplab`` and shows what the
export holds (``edgeseg inspect``). The model is the real PASCAL VOC DeepLab-v3 when
it can be had (the user cache or ../shared/models) and the importer for it is
installed; otherwise the built-in DeepLab-v3 with random weights, said plainly.
An export already in WORKDIR is reused unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edgeseg.progress import Progress

REAL_MODEL = "deeplabv3_mnv2_pascal_quant.tflite"


def find_real_model() -> Path | None:
    """The reference VOC model: user cache first, then the shared test-data folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeseg" / "models"
    repo = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("EDGESEG_SHARED", repo.parent / "shared"))
    for candidate in (cache / REAL_MODEL, shared / "models" / "deeplab" / REAL_MODEL):
        if candidate.is_file():
            return candidate
    return None


def export_demo_model(base: Path, input_size: int, fresh: bool, progress: Progress) -> Path:
    from edgeseg.errors import NotFound
    from edgeseg.inspect import resolve_version_dir
    from exporters import command

    if not fresh:
        try:
            existing = resolve_version_dir(base)
        except NotFound:
            existing = None
        if existing is not None:
            progress.say(f"reusing the demo model at {existing} (--fresh to export again)")
            return existing
    real = find_real_model()
    argv = ["--output", str(base), "--force"]
    if real is not None and ".tflite" in command.FILE_SOURCES:
        progress.say(f"exporting the real PASCAL VOC DeepLab-v3 from {real}")
        argv = [str(real), *argv]
    else:
        why = ("no reference model found" if real is None
               else "this build has no TFLite importer yet")
        progress.say(f"{why}: exporting the built-in DeepLab-v3 with RANDOM weights "
                     "(the masks will be noise; the plumbing is real)")
        argv = ["deeplabv3", *argv, "--input-size", str(input_size)]
    command.main(argv)
    return resolve_version_dir(base)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgeseg demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("build/demo"))
    p.add_argument("--input-size", type=int, default=513,
                   help="input size of the built-in model when it is used")
    p.add_argument("--fresh", action="store_true", help="export the demo model again")
    args = p.parse_args(argv)
    progress = Progress(prefix="edgeseg demo")
    version_dir = export_demo_model(args.workdir / "models" / "deeplab", args.input_size,
                                    args.fresh, progress)

    from edgeseg.inspect import describe, render

    print(render(describe(version_dir)))
    return 0
