// Package zmqpub is the ZeroMQ PUB side of the in-process MISP double: it
// behaves like MISP's mispzmq.py publisher (misp-api.md §1), as seen by a
// subscriber on the wire.
//
// What it reproduces:
//   - one single-part frame per message, "<topic> <payload>" (§1.4), sent as
//     given (odd frames are allowed, for tests of malformed input);
//   - byte-prefix subscription filtering per subscriber, as libzmq does;
//   - the misp_json_self heartbeat after HeartbeatEvery of idleness, with
//     mispzmq.py's exact bytes (§1.6; checked against the real captures);
//   - optional ZMTP-PLAIN with the credentials actually checked, like
//     mispzmq.py's ZAP authenticator (§1.3). A refusal is the exact ERROR
//     frame a libzmq 4.3.4 PLAIN server sends (see zapRefusal), so clients
//     fail as they would against a real MISP;
//   - a restart on the same port (subscribers must reconnect; messages sent
//     meanwhile are lost, §1.1 and §1.6 "reload"); the uptime restarts at 0;
//   - failure modes for tests: a silent (hung) publisher whose TCP stays up,
//     and a seeded, deterministic message loss rate.
//
// The ZMTP greeting, security handshake and framing are zmq4's (zmq4.Open,
// Conn.SendMsg). The fan-out is ours: zmq4's PUB socket writes to every peer
// from one goroutine without deadlines, so one subscriber that stops reading
// stops delivery to all, while its queue grows without bound. Measured with
// zmq4 v0.17.0: a healthy subscriber got 59 of 2000 64 KiB messages in 5 s.
// Here each subscriber has a queue of 1000 frames (libzmq's default SNDHWM)
// and loses only its own messages when it is full (Stats.QueueDrops).
// Handshakes run concurrently, under a deadline, with a frame size limit,
// and ZMTP 3.1 PINGs are answered (zmq4's PUB does none of these).
//
// # Client behaviour measured against this double
//
// zmq4 v0.17.0 SUB (the first two points are pinned by
// TestZmq4SubscriberAcrossRestart, the others were measured once):
//   - After Restart under NULL with WithAutomaticReconnect(true), Recv returns
//     io.EOF once; zmq4 redials, resends its subscriptions, and messages flow
//     again.
//   - After Restart under PLAIN, Recv returns io.EOF once. The redial reuses
//     the plain.Security value, which set its credentials to nil after the
//     first handshake, so it sends empty ones. They are refused (as by a real
//     ZAP server), and zmq4 gives up silently: no further error, message or
//     attempt.
//   - Without WithAutomaticReconnect, Recv returns io.EOF once, then blocks
//     forever, under either mechanism.
//   - When the publisher is down for longer than zmq4's dial retries (10 ×
//     250 ms), the io.EOF itself surfaces only when the retries are exhausted
//     (measured at +2.5 s), because zmq4 redials inside its reader before
//     reporting the error.
//   - A refused PLAIN handshake fails Dial with "zmq4: invalid command name":
//     zmq4 cannot parse libzmq's ERROR frame.
//
// libzmq 4.3.4 SUB (pyzmq 24.0.1; the interop tests):
//   - Frames arrive byte for byte, as single parts, under NULL and PLAIN.
//   - After Restart it reconnects by itself and keeps its PLAIN credentials.
//   - A wrong username or password is refused once, with
//     EVENT_HANDSHAKE_FAILED_AUTH, and libzmq does not try again: the socket
//     stays silent forever. A real libzmq PUB set up like mispzmq.py (pyzmq
//     ThreadAuthenticator, configure_plain, plain_server) gives the same
//     result. This contradicts misp-api.md §1.3, which says
//     libzmq keeps retrying.
//   - A NULL SUB on a PLAIN publisher fails with
//     EVENT_HANDSHAKE_FAILED_PROTOCOL. The real server lets it retry once
//     first; the double does not.
package zmqpub
