"""``edgeseg models``: reference models in a per-user cache, sha256-pinned.

Contract:

* A model is known by name (:data:`REFERENCE_MODELS`): its public address and the
  sha256 of the one file that address served when the kit pinned it.
* ``fetch`` downloads into ``$XDG_CACHE_HOME/edgeseg/models`` (``~/.cache/…``),
  hashing while it writes a temporary file beside the target; only a file whose hash
  matches is renamed into place, so the cache never holds a partial or wrong file.
  ``--from FILE`` takes a copy made elsewhere instead (the offline path), verified
  the same way.
* ``path`` prints a verified copy without touching the network: the cache first, then
  the project's test-data folder (``$EDGESEG_SHARED/models`` or ``../shared/models``
  beside the checkout) when present.
* Offline, a download fails with :class:`~edgeseg.errors.Unavailable` saying so and
  how to pass a local file.
* ``$EDGESEG_MODELS_URL`` replaces the public address's folder (a mirror, an internal
  server, or a ``file://`` folder): the file is then fetched from
  ``$EDGESEG_MODELS_URL/<filename>`` and checked against the same sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import DataLoss, InvalidArgument, NotFound, Unavailable
from edgeseg.progress import Progress

CHUNK = 1 << 16
ALLOWED_SCHEMES = ("https://", "http://", "file://")
MODELS_URL_ENV = "EDGESEG_MODELS_URL"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    url: str
    sha256: str
    filename: str
    description: str
    shared_path: str = ""  # where the project's test-data folder keeps a copy


REFERENCE_MODELS: dict[str, ModelSpec] = {
    spec.name: spec for spec in (
        ModelSpec(
            name="deeplabv3-mnv2-voc",
            url="https://github.com/google-coral/test_data/raw/"
                "104342d2d3480b3e66203073dac24f4e2dbb4c41/deeplabv3_mnv2_pascal_quant.tflite",
            sha256="350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398",
            filename="deeplabv3_mnv2_pascal_quant.tflite",
            description="DeepLab-v3 MobileNetV2 (depth 1.0), PASCAL VOC 21 classes, uint8 "
                        "TFLite, 513x513 (google-coral/test_data, Apache-2.0)",
            shared_path="deeplab/deeplabv3_mnv2_pascal_quant.tflite"),
    )
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeseg" / "models"


def shared_models_dir() -> Path:
    """The project's test-data folder (optional: the product never needs it)."""
    root = os.environ.get("EDGESEG_SHARED")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared"
    return base / "models"


def download_url(spec: ModelSpec) -> str:
    """Where :func:`fetch` downloads ``spec`` from: ``$EDGESEG_MODELS_URL`` or the pin."""
    base = os.environ.get(MODELS_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{spec.filename}" if base else spec.url


def spec_for(name: str) -> ModelSpec:
    try:
        return REFERENCE_MODELS[name]
    except KeyError:
        raise NotFound(f"unknown model {name!r}; known: {', '.join(REFERENCE_MODELS)}"
                       ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find(spec: ModelSpec, cache: Path | None = None) -> Path | None:
    """A verified local copy (cache, then the test-data folder), or None."""
    candidates = [(cache or cache_dir()) / spec.filename]
    if spec.shared_path:
        candidates.append(shared_models_dir() / spec.shared_path)
    for path in candidates:
        if path.is_file() and sha256_of(path) == spec.sha256:
            return path
    return None


def fetch(spec: ModelSpec, cache: Path | None = None, source: Path | None = None,
          url: str | None = None, timeout: float = 30.0,
          progress: Progress | None = None) -> Path:
    """Put a verified copy of ``spec`` in the cache and return its path.

    ``progress`` shows the download as a byte counter (a bar on a terminal).
    """
    cache = cache or cache_dir()
    target = cache / spec.filename
    if target.is_file() and sha256_of(target) == spec.sha256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    if source is not None:
        if not source.is_file():
            raise NotFound(f"{source} does not exist")
        with source.open("rb") as f:
            return _store(f, spec, target, origin=str(source))
    url = url or download_url(spec)
    if not url.startswith(ALLOWED_SCHEMES):
        raise InvalidArgument(f"{url}: expected an https://, http:// or file:// address")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            total = int(response.headers.get("Content-Length") or 0) or None
            return _store(response, spec, target, origin=url, progress=progress, total=total)
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"downloading {spec.name} from {url} failed: HTTP {exc.code} "
                          f"{exc.reason}. {_offline_hint(spec)}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot download {spec.name} from {url} ({reason}): this machine "
                          f"looks offline. {_offline_hint(spec)}") from None


def _offline_hint(spec: ModelSpec) -> str:
    return (f"Copy {spec.filename} here from a connected machine and pass it with "
            f"'edgeseg models fetch {spec.name} --from FILE' (checked against its sha256), "
            f"or export it directly: 'edgeseg export FILE --output BASE'.")


def _store(stream: object, spec: ModelSpec, target: Path, origin: str,
           progress: Progress | None = None, total: int | None = None) -> Path:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=target.parent)
    tmp = Path(tmp_name)
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):  # type: ignore[attr-defined]
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress.transfer(f"fetching {spec.filename}", done, total)
            if progress is not None:
                progress.transfer(f"fetching {spec.filename}", done, done, final=True)
        if digest.hexdigest() != spec.sha256:
            raise DataLoss(f"{origin} is not the pinned {spec.name}: sha256 "
                           f"{digest.hexdigest()}, expected {spec.sha256}; nothing was cached")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# -- CLI -----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeseg models",
                                description="Reference models in a per-user cache "
                                            f"({cache_dir()}), sha256-pinned.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="known models and whether a verified copy is at hand")
    fetch_p = sub.add_parser("fetch", help="download (or --from a local file) into the cache")
    fetch_p.add_argument("name", choices=sorted(REFERENCE_MODELS))
    fetch_p.add_argument("--from", dest="source", type=Path, metavar="FILE",
                         help="a copy fetched elsewhere (offline machines); verified")
    fetch_p.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    path_p = sub.add_parser("path", help="print a verified local copy's path (no network)")
    path_p.add_argument("name", choices=sorted(REFERENCE_MODELS))
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        for spec in REFERENCE_MODELS.values():
            found = find(spec)
            print(f"{spec.name}  {found or 'not fetched'}\n    {spec.description}")
        return 0
    spec = spec_for(args.name)
    if args.command == "path":
        found = find(spec)
        if found is None:
            raise NotFound(f"no verified copy of {spec.name} in {cache_dir()}; run "
                           f"'edgeseg models fetch {spec.name}'")
        print(found)
        return 0
    path = fetch(spec, cache=args.cache_dir, source=args.source,
                 progress=Progress(prefix="edgeseg models"))
    print(path, file=sys.stdout)
    return 0

