// Package feed is the curator's view of a MISP ZeroMQ feed: Parse turns one
// ZeroMQ frame into a typed Message, and a Subscriber keeps a SUB connection to
// MISP's publisher (mispzmq.py) alive and hands the messages the curation engine
// needs to it through a bounded queue.
//
// Facts about the wire format come from /work/shared/misp-api.md §1 and from the
// captures of a real MISP 2.5.1 in /work/shared/misp/real/{zmq,sync/zmq}; the
// frames the tests use are copied into testdata/frames.
//
// # Using it
//
//	sub, err := feed.New(feed.Options{
//		Instance: "misp/prod", Endpoint: "tcp://misp-zmq.misp.svc:50000",
//		User: user, Password: password, // from the Secret; empty for NULL
//		Logger: log, Metrics: metrics, // feed.NewMetrics(registry), shared
//		OnConnect: func(feed.State) { catchUp.Trigger() }, // must not block
//	})
//	go sub.Run(ctx)
//	for m := range sub.Messages() { ... } // KindEvent, KindPublish, KindEventTag
//	cond := sub.State().Summary()       // for the MISPInstance condition
//
// # ZeroMQ behaviour measured here (zmq4 v0.17.0 SUB against libzmq 4.3.4 / pyzmq 24)
//
//   - NULL and PLAIN subscriptions both receive (interop_test.go).
//   - Wrong PLAIN credentials: libzmq's ZAP refusal reaches zmq4 as a ZMTP ERROR
//     command that libzmq 4.3.4 sends malformed (bytes 5e 52 52 4f 52 03 34 30 30,
//     "^RROR" + "400"); zmq4's Dial then fails with "security/plain: could not
//     receive WELCOME from server: zmq4: could not unmarshal ZMTP recv cmd: zmq4:
//     invalid command name". A libzmq client would retry silently and receive
//     nothing. The Subscriber recognises the ERROR on the wire and reports
//     "the publisher refused the PLAIN credentials (ZMTP ERROR "400")".
//   - Mechanism mismatch (PLAIN subscriber on a NULL publisher or the reverse):
//     libzmq closes the TCP connection during the greeting (after 0 or 10 of its
//     64 bytes); zmq4 says "could not read ZMTP greeting: unexpected EOF".
//   - zmq4's own automatic reconnect (WithAutomaticReconnect(true)): after a
//     publisher restart under NULL it resumes only if the publisher is back
//     within its 10 × 250 ms dial retries; under PLAIN it gets io.EOF once and
//     then nothing at all — its plain.Security cleared the credentials after the
//     first handshake, the redial is refused and the error is swallowed. Hence
//     the Subscriber's own redial loop with a fresh socket and security object
//     per connection (automatic reconnect off, one dial try per attempt).
//     TestInteropZmq4BuiltinReconnect pins this; when the publisher stays down
//     longer than 2.5 s, zmq4 gives up under NULL too (measured by hand).
//   - zmq4's reader allocates whatever size a frame header announces and has no
//     size limit: the Subscriber dials through its own transport (transport.go)
//     that skips frames over MaxMessageSize on the wire, before zmq4 sees them.
//   - zmq4's handshake has no timeout; the transport sets one (HandshakeTimeout).
//   - zmq4 sends no ZMTP heartbeats; a dead peer is found by a Recv error or by
//     the silence watchdog (SilenceTimeout; MISP's misp_json_self heartbeat comes
//     after 10 s idle, misp-api.md §1.6), then the Subscriber redials.
package feed
