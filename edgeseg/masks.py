"""Decode what ``edgeseg agent`` publishes — the subscriber API — and ``edgeseg subscribe``.

Topics (docs/mqtt.md is the specification; this module is one reading of it):

* ``<prefix>/mask``   PNG, 8-bit single channel; pixel value = class id; frame size.
* ``<prefix>/meta``   JSON object, schema ``edgeseg/agent/meta.schema.json``.
* ``<prefix>/status`` ``online`` / ``degraded`` / ``offline``, retained; ``offline`` is also
  the Last Will.

Contract: the codec functions are pure (bytes in, arrays/dicts out) and raise
:class:`~edgeseg.errors.InvalidArgument` on a payload that breaks the specification.
:func:`encode_mask` is the agent's half, kept here so both halves live side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from importlib import resources

import cv2
import numpy as np

from edgeseg.errors import InvalidArgument, PermissionDenied

META_SCHEMA_ID = "edgeseg.meta/1"
MASK_CONTENT_TYPE = "image/png"
META_CONTENT_TYPE = "application/json"


def encode_mask(class_map: np.ndarray) -> bytes:
    """PNG of a 2-D uint8 class map (lossless; pixel value = class id)."""
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise InvalidArgument(
            f"a mask must be a 2-D uint8 class map, got {class_map.dtype} {class_map.shape}")
    ok, png = cv2.imencode(".png", class_map, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InvalidArgument("PNG encoding of the mask failed")
    return png.tobytes()


def decode_mask(payload: bytes) -> np.ndarray:
    """The class map (H, W) uint8 from a ``<prefix>/mask`` payload."""
    if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InvalidArgument("mask payload is not a PNG")
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        shape = None if image is None else (image.dtype, image.shape)
        raise InvalidArgument(f"mask PNG must be 8-bit single-channel, got {shape}")
    return image


def class_fractions(class_map: np.ndarray, names: Sequence[str]) -> list[dict]:
    """[{id, name, fraction}] for each class present, by id (fractions sum to 1)."""
    counts = np.bincount(class_map.ravel(), minlength=256)
    total = float(class_map.size)
    return [
        {"id": int(i), "name": names[i] if i < len(names) else f"class_{i}",
         "fraction": round(float(counts[i]) / total, 6)}
        for i in np.flatnonzero(counts)
    ]


def meta_schema() -> dict:
    text = resources.files("edgeseg.agent").joinpath("meta.schema.json").read_text("utf-8")
    return json.loads(text)


def decode_meta(payload: bytes) -> dict:
    """The ``<prefix>/meta`` JSON object, checked against the schema."""
    try:
        meta = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"meta payload is not JSON: {exc}") from None
    problems = schema_errors(meta, meta_schema())
    if problems:
        raise InvalidArgument("meta breaks the schema: " + "; ".join(problems))
    return meta


# -- the subset of JSON Schema meta.schema.json uses (jsonschema is not a dependency) --

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value, schema: dict, path: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (type, const, enum, required, properties,
    additionalProperties: false, items, minimum, maximum); empty when it conforms."""
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in types):
            return [f"{path}: expected {'/'.join(types)}, got {type(value).__name__}"]
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def _object_errors(value: dict, schema: dict, path: str) -> list[str]:
    props = schema.get("properties", {})
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    for key, item in value.items():
        if key in props:
            errors += schema_errors(item, props[key], f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{path}: unexpected key {key!r}")
    return errors


# -- edgeseg subscribe --

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeseg subscribe",
        description="Print one line per mask a camera publishes (decoded from <prefix>/mask "
                    "and <prefix>/meta) and its status changes.")
    from edgeseg.agent import broker

    broker.add_arguments(p)
    p.add_argument("--topic-prefix", default="edgeseg/+/+",
                   help="the camera's prefix; MQTT wildcards allowed (default: every camera)")
    p.add_argument("--count", type=int, default=0, help="exit after N masks (0: run until ^C)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="give up after SECONDS without the N masks (0: wait for ever)")
    return p


def main(argv: Sequence[str]) -> int:
    """Exit 0 after --count masks (or at ^C), 1 on a timeout; a broker that cannot be
    reached, refuses the login or the subscription raises one line (edgeseg.agent.broker)."""
    from edgeseg.agent import broker

    args = _parser().parse_args(list(argv))
    client, cfg = broker.client_for_args(args)
    done = threading.Event()
    seen: dict = {"masks": 0, "refused": None}
    topics = [f"{args.topic_prefix}/{k}" for k in ("mask", "meta", "status")]

    def on_message(_client, _userdata, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            if kind == "mask":
                mask = decode_mask(msg.payload)
                seen["masks"] += 1
                print(f"{msg.topic} {mask.shape[1]}x{mask.shape[0]} "
                      f"classes={sorted(int(c) for c in np.unique(mask))}", flush=True)
                if args.count and seen["masks"] >= args.count:
                    done.set()
            elif kind == "meta":
                meta = decode_meta(msg.payload)
                names = ",".join(f"{c['name']}:{c['fraction']:.3f}" for c in meta["classes"])
                print(f"{msg.topic} frame={meta['frame_id']} "
                      f"total={meta['latency_ms']['total']:.1f}ms {names}", flush=True)
            elif kind == "status":
                print(f"{msg.topic} {msg.payload.decode('utf-8', 'replace')}", flush=True)
        except InvalidArgument as exc:
            print(f"{msg.topic}: {exc.message}", file=sys.stderr, flush=True)

    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        refused = [(t, rc) for t, rc in zip(topics, reason_codes, strict=False) if rc.is_failure]
        if refused:
            seen["refused"] = ", ".join(f"{t}: {rc}" for t, rc in refused)
            done.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
    broker.connect(client, cfg)
    try:
        finished = done.wait(args.timeout or None)
    finally:
        client.disconnect()
        client.loop_stop()
    if seen["refused"]:
        raise PermissionDenied(f"the MQTT broker at {cfg.address} refused the subscription "
                               f"({seen['refused']})")
    if args.count and not finished:
        print(f"edgeseg subscribe: {seen['masks']} of {args.count} masks within "
              f"{args.timeout:g} s", file=sys.stderr)
        return 1
    return 0
