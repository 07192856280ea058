"""``edgeseg inspect DIR``: what an exported SavedModel holds.

Like ``saved_model_cli show --all`` (tag-sets, signatures with dtypes and shapes) plus
the kit's own facts: variables size, every device string found (expected: none),
``model.tflite`` (size, and its signatures as LiteRT reads them: dtypes and shape
signatures, -1 for any size), assets.extra (warmup requests, labels, palette) and the
model card. ``DIR`` may be a
version folder or a base path (its highest version is shown). ``--json`` prints the
same facts for programs.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import DataLoss, NotFound
from edgeseg.model_contract import ASSETS_EXTRA, LABELS_FILE, TFLITE_FILE


def resolve_version_dir(path: Path) -> Path:
    if (path / "saved_model.pb").is_file():
        return path
    if not path.exists():
        raise NotFound(f"{path} does not exist")
    versions = sorted((p for p in path.iterdir() if p.name.isdigit() and p.is_dir()),
                      key=lambda p: int(p.name)) if path.is_dir() else []
    if versions and (versions[-1] / "saved_model.pb").is_file():
        return versions[-1]
    raise NotFound(f"{path} holds no saved_model.pb; expected a SavedModel version folder "
                   "(BASE/N) or a base path with numbered versions")


def count_tfrecords(path: Path) -> int:
    """Records in a TFRecord file (length-prefixed framing; CRCs not checked)."""
    data = path.read_bytes()
    offset = count = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        offset += 12 + length + 4
        count += 1
    if offset != len(data):
        raise DataLoss(f"{path} is not a complete TFRecord file")
    return count


def _shape(proto: Any) -> list[int] | None:
    if proto.unknown_rank:
        return None
    return [d.size for d in proto.dim]


def describe(version_dir: Path) -> dict[str, Any]:
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = version_dir / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb_path.read_bytes())
    except DecodeError as exc:
        raise DataLoss(f"{pb_path} is not a SavedModel proto: {exc}") from None

    def dtype(enum: int) -> str:
        return types_pb2.DataType.Name(enum).removeprefix("DT_").lower()

    facts: dict[str, Any] = {"path": str(version_dir), "meta_graphs": [], "devices": [],
                             "saved_model_pb_bytes": pb_path.stat().st_size}
    for meta in proto.meta_graphs:
        nodes = list(meta.graph_def.node)
        functions = meta.graph_def.library.function
        signatures = {}
        for name, sig in sorted(meta.signature_def.items()):
            signatures[name] = {
                "method": sig.method_name,
                "inputs": {k: {"dtype": dtype(v.dtype), "shape": _shape(v.tensor_shape)}
                           for k, v in sorted(sig.inputs.items())},
                "outputs": {k: {"dtype": dtype(v.dtype), "shape": _shape(v.tensor_shape)}
                            for k, v in sorted(sig.outputs.items())},
            }
        tags = list(meta.meta_info_def.tags)
        facts["meta_graphs"].append({
            "tags": tags, "signatures": signatures, "nodes": len(nodes),
            "functions": len(functions),
            "variables": sum(1 for n in nodes if n.op in ("VarHandleOp", "VariableV2")),
        })
        all_nodes = nodes + [n for f in functions for n in f.node_def]
        facts["devices"] += [f"{','.join(tags)}: {n.name} on {n.device}"
                             for n in all_nodes if n.device]
    variables = version_dir / "variables"
    files = sorted(variables.iterdir()) if variables.is_dir() else []
    facts["variables_bytes"] = sum(p.stat().st_size for p in files)
    facts["variables_files"] = [p.name for p in files]
    facts["tflite"] = _tflite(version_dir / TFLITE_FILE)
    facts["assets_extra"] = _assets(version_dir / ASSETS_EXTRA)
    card = version_dir / ASSETS_EXTRA / "model_card.json"
    facts["model_card"] = json.loads(card.read_text(encoding="utf-8")) if card.is_file() else None
    return facts


def _tflite(path: Path) -> dict[str, Any] | None:
    """``model.tflite``'s size and signatures (read with LiteRT), or None without one."""
    if not path.is_file():
        return None
    from ai_edge_litert.interpreter import Interpreter

    facts: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        facts["error"] = str(exc).strip().splitlines()[0]
        return facts

    def describe_io(details: dict[str, Any]) -> dict[str, Any]:
        return {name: {"dtype": np.dtype(d["dtype"]).name,
                       "shape": [int(v) for v in d["shape_signature"]]}
                for name, d in sorted(details.items())}

    facts["signatures"] = {}
    for key in sorted(interpreter.get_signature_list()):
        run = interpreter.get_signature_runner(key)
        facts["signatures"][key] = {"inputs": describe_io(run.get_input_details()),
                                    "outputs": describe_io(run.get_output_details())}
    return facts


def _assets(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        return {}
    out: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        entry: dict[str, Any] = {"bytes": path.stat().st_size}
        if path.name == "tf_serving_warmup_requests":
            entry["records"] = count_tfrecords(path)
        elif path.name == LABELS_FILE:
            entry["classes"] = sum(1 for line in path.read_text(encoding="utf-8").splitlines()
                                   if line.strip())
        out[path.name] = entry
    return out


def render(facts: dict[str, Any]) -> str:
    lines = [f"SavedModel {facts['path']}",
             f"  saved_model.pb: {facts['saved_model_pb_bytes'] / 1e6:.2f} MB, "
             f"{len(facts['meta_graphs'])} meta-graphs"]
    for meta in facts["meta_graphs"]:
        lines.append(f"\nMetaGraphDef with tag-set: '{', '.join(meta['tags'])}' "
                     f"({meta['nodes']} nodes, {meta['functions']} functions, "
                     f"{meta['variables']} variables)")
        for name, sig in meta["signatures"].items():
            lines.append(f"  signature_def['{name}'] ({sig['method']}):")
            for kind in ("inputs", "outputs"):
                for key, t in sig[kind].items():
                    shape = "unknown rank" if t["shape"] is None else t["shape"]
                    lines.append(f"    {kind[:-1]:<6} {key}: {t['dtype']} {shape}")
    lines.append(f"\nvariables/: {facts['variables_bytes'] / 1e6:.2f} MB in "
                 f"{len(facts['variables_files'])} files (one checkpoint for every tag-set)")
    lines += _render_tflite(facts.get("tflite"))
    devices = facts["devices"]
    lines.append(f"device placements: {'none' if not devices else len(devices)}")
    lines += [f"  {d}" for d in devices[:20]]
    if facts["assets_extra"]:
        lines.append("assets.extra/:")
        for name, entry in facts["assets_extra"].items():
            extra = "".join(f", {k} {v}" for k, v in entry.items() if k != "bytes")
            lines.append(f"  {name} ({entry['bytes']} bytes{extra})")
    card = facts["model_card"]
    if card:
        lines.append("model card:")
        for key in ("name", "kit_version", "created", "input_size", "num_classes", "output"):
            lines.append(f"  {key}: {card.get(key)}")
        lines.append(f"  classes: {', '.join(card.get('classes', []))}")
        lines.append(f"  preprocessing: {json.dumps(card.get('preprocessing'))}")
        lines.append(f"  quantization: {json.dumps(card.get('quantization'))}")
        lines.append(f"  calibration: {json.dumps(card.get('calibration'))}")
        lines.append(f"  tflite: {json.dumps(card.get('tflite'))}")
        lines.append(f"  source: {json.dumps(card.get('source'))}")
    return "\n".join(lines)


def _render_tflite(tflite: dict[str, Any] | None) -> list[str]:
    if tflite is None:
        return ["model.tflite: none"]
    lines = [f"model.tflite: {tflite['bytes'] / 1e6:.2f} MB"]
    if "error" in tflite:
        return lines + [f"  LiteRT cannot read it: {tflite['error']}"]
    for name, sig in tflite["signatures"].items():
        lines.append(f"  signature '{name}' (LiteRT):")
        for kind in ("inputs", "outputs"):
            for key, t in sig[kind].items():
                lines.append(f"    {kind[:-1]:<6} {key}: {t['dtype']} {t['shape']}")
    return lines


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgeseg inspect",
                                description="Show what an exported SavedModel holds.")
    p.add_argument("dir", type=Path, help="a version folder (BASE/N) or a base path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    facts = describe(resolve_version_dir(args.dir))
    print(json.dumps(facts, indent=2) if args.json else render(facts))
    return 0
