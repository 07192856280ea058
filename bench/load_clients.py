"""bench_load's clients, each run as a process of its own (``bench_load.py --role``): the
load (asyncio: many gRPC and REST clients, idle connections, slow senders) and the
well-behaved client whose latency is the measure."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import resource
import sys
import threading
import time

BODY = b'{"instances": [1.0, 2.0, 5.0]}'


def rest_request(port: int) -> bytes:
    return (f"POST /v1/models/default:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
            ).encode() + BODY


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.end = args, time.monotonic() + args.seconds
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def pace(self) -> bool:
        await asyncio.sleep(random.expovariate(self.args.rate))
        return time.monotonic() < self.end

    async def grpc_client(self) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.args.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while await self.pace():
                try:
                    await stub.Predict(predict_request(), timeout=10)
                    self.count("grpc ok")
                except grpc.aio.AioRpcError as err:
                    self.count(f"grpc {err.code().name}")

    async def rest_client(self) -> None:
        request, writer = rest_request(self.args.rest_port), None
        while await self.pace():
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1",
                                                                   self.args.rest_port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                self.count(f"rest {head.split(b' ')[1].decode()}")
                if b"connection: close" in head.lower():
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                self.count("rest connection lost")
                writer = None

    async def hold(self, slow: bool, index: int) -> None:
        """An idle connection (half a head on odd ones) or a slow sender, reopened when the
        server drops it, until the end."""
        request = rest_request(self.args.rest_port)
        kind = "slow" if slow else "idle"
        while time.monotonic() < self.end:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.args.rest_port)
            except OSError:
                self.count(f"{kind} connect failed")
                await asyncio.sleep(0.5)
                continue
            try:
                if not slow and index % 2:
                    writer.write(request[:40])
                for i in range(len(request) if slow else 0):
                    writer.write(request[i:i + 1])
                    if await self._closed(reader, 1.0):
                        break
                else:
                    await self._closed(reader, self.end - time.monotonic())
                self.count(f"{kind} dropped" if time.monotonic() < self.end else f"{kind} held")
            except OSError:
                self.count(f"{kind} dropped")
            finally:
                writer.close()
            await asyncio.sleep(random.uniform(0.05, 0.5))

    @staticmethod
    async def _closed(reader: asyncio.StreamReader, seconds: float) -> bool:
        try:
            await asyncio.wait_for(reader.read(), max(0.0, seconds))  # to EOF
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self) -> None:
        a = self.args
        tasks = [self.grpc_client() for _ in range(a.grpc_clients)]
        tasks += [self.rest_client() for _ in range(a.rest_clients)]
        tasks += [self.hold(False, i) for i in range(a.idle)]
        tasks += [self.hold(True, i) for i in range(a.slow)]
        await asyncio.wait_for(asyncio.gather(*tasks), a.seconds + 30)
        print(json.dumps(self.counts), flush=True)  # before the teardown of thousands of tasks


def predict_request():
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([1.0, 2.0, 5.0])))
    return request


def load_main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    os.nice(args.load_nice)  # it stands in for clients on other machines (see --load-nice)
    predict_request()  # imports TensorFlow before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()  # "go", once the measuring client has run alone
    load = Load(args)
    asyncio.run(load.run())


def probe_main(args: argparse.Namespace) -> None:
    """The well-behaved client, in a process of its own so that the sampler's work (reading
    2,000 fds from /proc, parsing metrics) never holds the GIL it needs: one gRPC and one
    REST Predict every 20 ms until stdin closes, then one JSON line of
    [monotonic start, transport, seconds or -1] (CLOCK_MONOTONIC is the machine's)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{args.grpc_port}"))
    request = predict_request()
    rest = http.client.HTTPConnection("127.0.0.1", args.rest_port, timeout=10)
    stop, latency = threading.Event(), []

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print("ready", flush=True)
    while not stop.wait(0.02):
        for transport in ("grpc", "rest"):
            started = time.monotonic()
            try:
                if transport == "grpc":
                    stub.Predict(request, timeout=10)
                else:
                    rest.request("POST", "/v1/models/default:predict", BODY,
                                 {"Content-Type": "application/json"})
                    response = rest.getresponse()
                    response.read()
                    assert response.status == 200, response.status
                seconds = time.monotonic() - started
            except Exception:  # counted as a failure
                seconds = -1.0
                rest.close()
            latency.append((started, transport, seconds))
    print(json.dumps(latency), flush=True)
