#!/usr/bin/python3
"""Real-libzmq SUB (Debian python3-zmq) for the misptest interop test.

Connects to the endpoint given as argument and subscribes like a MISP ZeroMQ client
(misp-api.md §1.3, §1.11). PLAIN credentials come from ZMQ_USERNAME / ZMQ_PASSWORD in the
environment, so they never show in the process list. Writes JSON lines on stdout:

  {"ready": true, "libzmq": "4.3.4"}           once, after connect()
  {"frames": ["<base64>", ...]}                per message (a MISP message has exactly one)
  {"done": true, "received": N}                last line, after --count messages or --timeout s
"""
import argparse
import base64
import json
import os
import sys
import time

import zmq


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("--subscribe", default="misp_json")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    user = os.environ.get("ZMQ_USERNAME", "")
    if user:
        sock.plain_username = user.encode()
        sock.plain_password = os.environ.get("ZMQ_PASSWORD", "").encode()
    sock.setsockopt(zmq.SUBSCRIBE, args.subscribe.encode())
    sock.connect(args.endpoint)
    emit({"ready": True, "libzmq": zmq.zmq_version()})

    received = 0
    deadline = time.monotonic() + args.timeout
    while received < args.count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if sock.poll(int(left * 1000) + 1, zmq.POLLIN):
            frames = sock.recv_multipart()
            received += 1
            emit({"frames": [base64.b64encode(f).decode() for f in frames]})
    emit({"done": True, "received": received})
    sock.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
