#!/usr/bin/python3
"""Replays captured MISP ZeroMQ frames through a REAL libzmq PUB socket, for the curator's
interop tests.

The socket is bound the way MISP's mispzmq.py binds it (misp-api.md §1.3): with a username
configured, zmq.auth.thread.ThreadAuthenticator is started,
configure_plain(domain="*", passwords={user: password}) is called and socket.plain_server is
set before bind; each message is ONE frame "<topic> <json>" (§1.4), sent exactly as captured.

Run with /usr/bin/python3 (Debian python3-zmq, libzmq 4.3.4). The credentials come from the
environment (CURATOR_TEST_ZMQ_USER, CURATOR_TEST_ZMQ_PASSWORD), never the command line. On
start it prints "READY tcp://127.0.0.1:<port>"; then one command per stdin line, each
answered "OK":

  replay <path>   send every non-empty line of the file as one frame
  quit            close the socket and exit (also on end of stdin)
"""
import os
import sys

import zmq
import zmq.auth.thread


def main():
    user = os.environ.get("CURATOR_TEST_ZMQ_USER", "")
    password = os.environ.get("CURATOR_TEST_ZMQ_PASSWORD", "")
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    auth = None
    if user:
        auth = zmq.auth.thread.ThreadAuthenticator(context)
        auth.start()
        auth.configure_plain(domain="*", passwords={user: password})
        socket.plain_server = True
    socket.bind("tcp://127.0.0.1:*")
    print("READY " + socket.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "replay":
            with open(arg, "rb") as f:
                for frame in f.read().split(b"\n"):
                    if frame:
                        socket.send(frame)
        elif cmd == "quit":
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
