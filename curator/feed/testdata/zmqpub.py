#!/usr/bin/python3
"""A MISP-like ZeroMQ publisher for the feed package's interop tests.

It binds a libzmq PUB socket exactly the way MISP's mispzmq.py does
(misp-api.md §1.3): when a username is configured it starts
zmq.auth.thread.ThreadAuthenticator, calls
configure_plain(domain="*", passwords={user: password}) and sets
socket.plain_server = True before bind; otherwise the NULL mechanism is used.
Every message is ONE frame "<topic> <json>" (misp-api.md §1.4).

Run with /usr/bin/python3 (Debian python3-zmq, libzmq 4.3.4). Driven by the Go
test over stdin, one command per line, each acknowledged with "OK" on stdout:

  pub <frame>           publish the rest of the line as one frame
  pubfile <path>        publish the bytes of a file as one frame
  pubsize <n>           publish one frame "misp_json_audit <n-16 bytes of padding>" of exactly n bytes
  stream <ms> <topic>   publish "<topic> {"status": "stream", "seq": N}" every <ms> ms
                        (the topic should be misp_json_self); "stream 0 x" stops it
  quit                  close the socket and exit

The credentials come from the environment (FEED_TEST_ZMQ_USER,
FEED_TEST_ZMQ_PASSWORD) so they never show on a command line. On start it prints
"READY tcp://127.0.0.1:<port>".
"""
import argparse
import json
import os
import select
import sys
import time

import zmq
import zmq.auth.thread


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = ap.parse_args()

    user = os.environ.get("FEED_TEST_ZMQ_USER", "")
    password = os.environ.get("FEED_TEST_ZMQ_PASSWORD", "")

    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    auth = None
    if user:
        if not password:
            raise SystemExit("password required when a username is set (as mispzmq.py)")
        auth = zmq.auth.thread.ThreadAuthenticator(context)
        auth.start()
        auth.configure_plain(domain="*", passwords={user: password})
        socket.plain_server = True

    # The port may still be held briefly by the previous publisher of a restart
    # test; libzmq sets SO_REUSEADDR, so only a real owner makes this fail.
    deadline = time.monotonic() + 10
    while True:
        try:
            if args.port:
                socket.bind("tcp://127.0.0.1:%d" % args.port)
            else:
                socket.bind("tcp://127.0.0.1:*")
            break
        except zmq.ZMQError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    print("READY " + endpoint, flush=True)

    stream_every = 0.0
    stream_topic = "misp_json_self"
    next_stream = 0.0
    seq = 0
    stdin = sys.stdin.buffer
    while True:
        timeout = None
        if stream_every:
            timeout = max(0.0, next_stream - time.monotonic())
        ready, _, _ = select.select([stdin], [], [], timeout)
        if stream_every and time.monotonic() >= next_stream:
            seq += 1
            payload = json.dumps({"status": "stream", "seq": seq})
            socket.send((stream_topic + " " + payload).encode())
            next_stream = time.monotonic() + stream_every
        if not ready:
            continue
        line = stdin.readline()
        if not line:  # the test closed stdin: exit like "quit"
            break
        line = line.rstrip(b"\n")
        cmd, _, rest = line.partition(b" ")
        if cmd == b"pub":
            socket.send(rest)
        elif cmd == b"pubfile":
            with open(rest.decode(), "rb") as f:
                socket.send(f.read())
        elif cmd == b"pubsize":
            n = int(rest)
            prefix = b"misp_json_audit "
            socket.send(prefix + b"x" * (n - len(prefix)))
        elif cmd == b"stream":
            ms, _, topic = rest.partition(b" ")
            stream_every = int(ms) / 1000.0
            stream_topic = topic.decode() or "misp_json_self"
            next_stream = time.monotonic()
        elif cmd == b"quit":
            break
        else:
            print("ERR unknown command", flush=True)
            continue
        print("OK", flush=True)

    socket.close(linger=0)
    if auth is not None:
        auth.stop()
    context.term()


if __name__ == "__main__":
    main()
