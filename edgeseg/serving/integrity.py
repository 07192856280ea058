"""Integrity checks of a version's files, made before a loader hands them to TF or LiteRT.

Contract: each check reads only the files it is given, changes nothing, and either returns
or raises :class:`~edgeseg.errors.DataLoss` whose message names the file and what is wrong
with it (empty, truncated, not parseable). A version that fails goes to END with that
error (manager.py); the versions already AVAILABLE keep serving.

Why: an export that was renamed into place but not synced before a power cut can leave
files empty or short (ext4's delayed allocation). TF's own errors for such files are
misleading (an empty saved_model.pb parses as a SavedModel with no meta-graphs: "tags not
found"), and a TFLite interpreter may read past the end of a short flatbuffer.

- :func:`check_saved_model`: ``saved_model.pb`` non-empty and a parseable SavedModel
  proto; ``variables/variables.index`` non-empty and readable by TF's checkpoint reader;
  every data shard the index names present, and every tensor readable from it (TF checks
  each tensor's length and CRC32C, so a short or damaged shard is found).
- :func:`check_tflite`: ``model.tflite`` non-empty, ``TFL3`` at bytes 4..8, and the whole
  flatbuffer (every table, vector, string and buffer's data) inside the file: it is
  unpacked with LiteRT's generated schema, which reads past the end of a short file and
  fails. Bytes appended after the flatbuffer (MediaPipe's metadata zip) are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeseg.errors import DataLoss

TFLITE_IDENTIFIER = b"TFL3"
_SHARD = re.compile(r"^variables\.data-(\d+)-of-(\d+)$")


def check_saved_model(path: str | Path) -> None:
    """Refuse a SavedModel folder whose graph or variables are empty, short or corrupt."""
    path = Path(path)
    try:
        graph = path / "saved_model.pb"
        if graph.is_file():
            _check_graph(graph)
        variables = path / "variables"
        if variables.is_dir() and any(variables.iterdir()):
            _check_variables(variables)
    except _Damage as exc:
        raise DataLoss(f"cannot load SavedModel {path}: {exc}") from None


class _Damage(Exception):
    """What is wrong with one file, before the version's path is put in front."""


def _check_graph(graph: Path) -> None:
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    data = graph.read_bytes()
    if not data:
        raise _Damage("saved_model.pb is empty (0 bytes); expected a SavedModel proto "
                      "(a truncated or unsynced export)")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise _Damage(f"saved_model.pb ({len(data)} bytes) is truncated or corrupt, not a "
                      f"parseable SavedModel proto: {exc}") from None
    if not proto.meta_graphs:
        raise _Damage(f"saved_model.pb ({len(data)} bytes) holds no meta-graph; expected at "
                      "least one (a truncated export?)")


def _check_variables(variables: Path) -> None:
    import tensorflow as tf

    index = variables / "variables.index"
    shards = sorted(p for p in variables.iterdir() if _SHARD.match(p.name))
    if not index.is_file():
        raise _Damage(f"variables/variables.index is missing but variables/ holds "
                      f"{', '.join(p.name for p in shards) or 'files'}")
    if index.stat().st_size == 0:
        raise _Damage("variables/variables.index is empty (0 bytes); expected a checkpoint "
                      "index")
    if shards:
        total = int(_SHARD.match(shards[0].name).group(2))  # type: ignore[union-attr]
        names = [f"variables.data-{i:05d}-of-{total:05d}" for i in range(total)]
        missing = [name for name in names if not (variables / name).is_file()]
        if missing:
            raise _Damage(f"variables/: data shard(s) {', '.join(missing)} missing")
    try:
        reader = tf.train.load_checkpoint(str(variables / "variables"))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)  # TF checks each tensor's length and CRC32C
    except Exception as exc:  # OpError, IndexError ("Read less bytes"), …
        text = getattr(exc, "message", None) or str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        sizes = ", ".join(f"{p.name} {p.stat().st_size} bytes" for p in [index, *shards])
        raise _Damage(f"the variables checkpoint is truncated or corrupt ({sizes}): "
                      f"{first}") from None


def check_tflite(path: str | Path, data: bytes | None = None) -> None:
    """Refuse a model.tflite that is empty, not a TFLite flatbuffer, or cut short.

    ``data``: the file's bytes when the caller has read them already (the TFLite loader).
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    size = len(data)
    if size == 0:
        raise DataLoss(f"{path} is empty (0 bytes); expected a TFLite flatbuffer")
    if size < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise DataLoss(f"{path} ({size} bytes) is not a TFLite model: expected the "
                       f"identifier {TFLITE_IDENTIFIER.decode()} at bytes 4..8, found "
                       f"{data[4:8]!r}")
    from ai_edge_litert import schema_py_generated as schema

    try:  # unpacks every table, vector and string: a read past the end raises
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # struct.error, IndexError, …: all mean damage
        raise DataLoss(f"{path} ({size} bytes) is truncated or corrupt: the flatbuffer "
                       f"reads past its end ({type(exc).__name__}: {exc})") from None
    for i, buffer in enumerate(model.buffers or []):
        # Models over 2 GB keep weights after the flatbuffer: offset/size into the file.
        if buffer.offset > 1 and buffer.offset + buffer.size > size:
            raise DataLoss(f"{path} ({size} bytes) is truncated: buffer {i} needs bytes "
                           f"{buffer.offset}..{buffer.offset + buffer.size}")
