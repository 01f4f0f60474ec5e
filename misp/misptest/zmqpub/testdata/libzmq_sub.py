#!/usr/bin/python3
"""A real-libzmq SUB (pyzmq) for the zmqpub interop tests.

Run by interop_test.go with /usr/bin/python3 (Debian python3-zmq). It connects
to the endpoint given as argument, subscribes, and writes one JSON object per
line on stdout:

  {"ready": true, "zmq": "<pyzmq>", "libzmq": "<libzmq>"}   once, after connect()
  {"frames": ["<base64>", ...]}                              per message received
  {"monitor": "<EVENT_NAME>", "value": <int>}                per socket monitor event
  {"done": true, "received": N, "reason": "count"|"timeout"}  last line

It exits after --count messages or after --timeout seconds. PLAIN credentials
come from the environment (ZMQ_USERNAME, ZMQ_PASSWORD) so that they do not
show in the process list.
"""
import argparse
import base64
import json
import os
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("--subscribe", action="append", default=[],
                    help="subscription prefix (repeatable; default: everything)")
    ap.add_argument("--count", type=int, default=1, help="exit after this many messages")
    ap.add_argument("--timeout", type=float, default=20.0, help="exit after this many seconds")
    ap.add_argument("--heartbeat-ivl", type=int, default=0, help="ZMQ_HEARTBEAT_IVL in ms (0: off)")
    ap.add_argument("--heartbeat-timeout", type=int, default=0,
                    help="ZMQ_HEARTBEAT_TIMEOUT in ms (0: libzmq's default, the interval)")
    args = ap.parse_args()

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    user = os.environ.get("ZMQ_USERNAME", "")
    if user:
        # What a MISP ZeroMQ client does (misp-api.md §1.3).
        sock.plain_username = user.encode()
        sock.plain_password = os.environ.get("ZMQ_PASSWORD", "").encode()
    if args.heartbeat_ivl > 0:
        sock.setsockopt(zmq.HEARTBEAT_IVL, args.heartbeat_ivl)
        if args.heartbeat_timeout > 0:
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, args.heartbeat_timeout)
    monitor = sock.get_monitor_socket()
    for prefix in args.subscribe or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(args.endpoint)
    emit({"ready": True, "zmq": zmq.__version__, "libzmq": zmq.zmq_version()})

    names = {getattr(zmq, n): n for n in dir(zmq) if n.startswith("EVENT_")}
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    received = 0
    reason = "timeout"
    deadline = time.monotonic() + args.timeout
    while received < args.count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        events = dict(poller.poll(int(left * 1000) + 1))
        if monitor in events:
            ev = recv_monitor_message(monitor)
            emit({"monitor": names.get(ev["event"], str(ev["event"])), "value": ev["value"]})
        if sock in events:
            frames = sock.recv_multipart()
            received += 1
            emit({"frames": [base64.b64encode(f).decode() for f in frames]})
    if received >= args.count:
        reason = "count"
    emit({"done": True, "received": received, "reason": reason})
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)
    ctx.term()


if __name__ == "__main__":
    main()
