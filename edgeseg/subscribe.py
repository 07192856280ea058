"""``edgeseg subscribe``: print one line per mask a camera publishes, and its status changes.

A thin CLI over :mod:`edgeseg.mqtt_contract` (the decoding) and :mod:`edgeseg.agent.broker`
(reaching the broker). Lines go to stdout, flushed one by one:

* ``<prefix>/mask WxH classes=[ids]``
* ``<prefix>/meta frame=N total=T.Tms name:fraction,...``
* ``<prefix>/status online|degraded|offline``

A payload that breaks docs/mqtt.md is one line on stderr naming the problem; the command
carries on. Exit 0 after ``--count`` masks (or at ^C), 1 on ``--timeout``; a broker that
cannot be reached, refuses the login or the subscription raises one line (via the CLI).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

import numpy as np

from edgeseg import mqtt_contract as contract
from edgeseg.errors import InvalidArgument, PermissionDenied


def _parser() -> argparse.ArgumentParser:
    from edgeseg.agent import broker

    p = argparse.ArgumentParser(
        prog="edgeseg subscribe",
        description="Print one line per mask a camera publishes (decoded from <prefix>/mask "
                    "and <prefix>/meta) and its status changes.")
    broker.add_arguments(p)
    p.add_argument("--topic-prefix", default="edgeseg/+/+",
                   help="the camera's prefix; MQTT wildcards allowed (default: every camera)")
    p.add_argument("--count", type=int, default=0, help="exit after N masks (0: run until ^C)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="give up after SECONDS without the N masks (0: wait for ever)")
    return p


def describe(topic: str, payload: bytes) -> tuple[str, str] | None:
    """``(kind, line)`` for one received message; None for a kind this command ignores."""
    _, kind = contract.Topics.parse(topic)
    if kind == contract.MASK:
        mask = contract.decode_mask(payload)
        classes = sorted(int(c) for c in np.unique(mask))
        return kind, f"{topic} {mask.shape[1]}x{mask.shape[0]} classes={classes}"
    if kind == contract.META:
        meta = contract.decode_meta(payload)
        names = ",".join(f"{c['name']}:{c['fraction']:.3f}" for c in meta["classes"])
        return kind, (f"{topic} frame={meta['frame_id']} "
                      f"total={meta['latency_ms']['total']:.1f}ms {names}")
    if kind == contract.STATUS:
        return kind, f"{topic} {contract.decode_status(payload).value}"
    return None


def main(argv: Sequence[str]) -> int:
    from edgeseg.agent import broker

    args = _parser().parse_args(list(argv))
    client, cfg = broker.client_for_args(args)
    done = threading.Event()
    seen: dict = {"masks": 0, "refused": None}
    topics = contract.Topics(args.topic_prefix).filters(
        contract.MASK, contract.META, contract.STATUS)

    def on_message(_client, _userdata, msg):
        try:
            described = describe(msg.topic, msg.payload)
        except InvalidArgument as exc:
            print(f"{msg.topic}: {exc.message}", file=sys.stderr, flush=True)
            return
        if described is None:
            return
        kind, line = described
        print(line, flush=True)
        if kind == contract.MASK:
            seen["masks"] += 1
            if args.count and seen["masks"] >= args.count:
                done.set()

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
