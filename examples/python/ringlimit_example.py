#!/usr/bin/env python3
"""ringlimit from Python: unary Allow and the streaming AllowStream, with stubs made from the .proto.

    python3 examples/python/ringlimit_example.py 127.0.0.1:7001 [--calls 1000] [--json]

Needs grpcio, and protoc with the gRPC Python plugin (Debian: apt-get install python3-grpcio
protobuf-compiler protobuf-compiler-grpc; with pip: grpcio grpcio-tools). The stubs are
generated into a temporary folder at start, from proto/ringlimit/v1.
"""
import argparse
import atexit
import json
import os
import queue
import sys
import tempfile
import threading
import time

import shutil
import subprocess

try:
    import grpc
except ImportError:
    sys.exit(
        f"ringlimit_example.py needs grpcio, which this Python ({sys.executable}) cannot import.\n"
        "  Debian/Ubuntu: apt-get install python3-grpcio protobuf-compiler protobuf-compiler-grpc\n"
        "                 (for the system's /usr/bin/python3: a pyenv or venv python3 does not see it;\n"
        "                 run /usr/bin/python3 examples/python/ringlimit_example.py ...)\n"
        f"  pip, for this Python: {sys.executable} -m pip install grpcio grpcio-tools"
    )

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")


def load_stubs():
    out = tempfile.mkdtemp(prefix="ringlimit-py-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    proto = os.path.join(PROTO_DIR, "ringlimit", "v1", "ratelimiter.proto")
    plugin = shutil.which("grpc_python_plugin")
    if shutil.which("protoc") and plugin:
        command = ["protoc", f"--plugin=protoc-gen-grpc_python={plugin}"]
    else:  # pip's grpcio-tools (a recent one: the .proto uses proto3 optional fields)
        command = [sys.executable, "-m", "grpc_tools.protoc"]
    status = subprocess.run([*command, f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", proto]).returncode
    if status != 0:
        sys.exit(f"protoc failed ({status})")
    sys.path.insert(0, out)
    from ringlimit.v1 import ratelimiter_pb2, ratelimiter_pb2_grpc  # noqa: E402

    return ratelimiter_pb2, ratelimiter_pb2_grpc


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def unary(stub, pb, key, calls):
    """One Allow per call, one at a time: what a simple client does."""
    allowed, latencies = 0, []
    for _ in range(calls):
        started = time.perf_counter()
        answer = stub.Allow(pb.AllowRequest(key=key, action="py", limit=calls // 2, window_ms=60_000, algorithm="fixed-window"), timeout=5)
        latencies.append(time.perf_counter() - started)
        allowed += answer.allowed
    return {"calls": calls, "allowed": allowed, "p50_us": round(percentile(latencies, 0.5) * 1e6)}


def streamed(stub, pb, key, calls, per_message=100):
    """AllowStream: requests carry ids, answers come back with them, in any order."""
    outgoing = queue.Queue()
    for start in range(0, calls, per_message):
        ids = range(start + 1, min(calls, start + per_message) + 1)
        outgoing.put(pb.AllowStreamRequest(requests=[pb.StreamedAllowRequest(id=i, request=pb.AllowRequest(key=key, action="py", limit=calls // 2, window_ms=60_000, algorithm="fixed-window")) for i in ids]))
    outgoing.put(None)
    answered, allowed, errors = set(), 0, 0
    started = time.perf_counter()
    for response in stub.AllowStream(iter(outgoing.get, None), timeout=10):
        for result in response.results:
            answered.add(result.id)
            if result.HasField("decision"):
                allowed += result.decision.allowed
            else:
                errors += 1
        if len(answered) == calls:
            break
    elapsed = time.perf_counter() - started
    return {"calls": calls, "answered": len(answered), "allowed": allowed, "errors": errors, "per_second": round(calls / elapsed)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pb, pb_grpc = load_stubs()
    # Straight to the node: an http_proxy in the environment must not capture a cluster-local address.
    with grpc.insecure_channel(args.address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = pb_grpc.RateLimiterStub(channel)
        members = stub.Members(pb.MembersRequest(), timeout=5)
        run = f"{os.getpid()}-{time.time_ns()}"
        report = {
            "owners": [m.node_id for m in members.owners],
            "placement": members.placement,
            "unary": unary(stub, pb, f"unary-{run}", args.calls),
            "stream": streamed(stub, pb, f"stream-{run}", args.calls),
        }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"owners {report['owners']} ({report['placement']})")
        u, s = report["unary"], report["stream"]
        print(f"Allow (unary): {u['allowed']} of {u['calls']} allowed, p50 {u['p50_us']} us")
        print(f"AllowStream: {s['allowed']} of {s['calls']} allowed, {s['answered']} answered, {s['per_second']} decisions/s")


if __name__ == "__main__":
    main()
