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
//
// # JSON: a scanner of its own, measured against libraries
//
// Parse reads payloads with its own validating scanner (scan.go): one pass,
// the few fields the curator needs decoded in place, the rest (a misp_json
// carries every attribute) skipped without building values. Issue 15 asked
// whether a library should do this instead, by one rule: replace the scanner
// if a library is within 2× of it on time and on memory for every frame
// class. The candidates do the same job, each giving Parse's Message and
// errors (parse_compare_*_test.go; FuzzParseCandidates):
//
//   - encoding/json: Unmarshal into small structs of raw values ("structs"),
//     and, because struct fields match keys case-insensitively ("event" would
//     fill Event), into map[string]raw per object ("exact", the faithful one);
//   - encoding/json/jsontext, the JSON v2 tokenizer (Go 1.26 builds it only
//     with GOEXPERIMENT=jsonv2; github.com/go-json-experiment/json v1.27.2 is
//     the same code as a module and measured the same), with pooled decoders
//     and with a new decoder per frame;
//   - github.com/valyala/fastjson v1.6.10: ValidateBytes (its Parse does not
//     check strings), then its tree, with pooled and with new parsers. It
//     differs from Parse: nesting over 300 is rejected, values have no
//     offsets, lone surrogate escapes are kept. Measured in a scratch copy, so
//     that go.mod does not carry it.
//
// Time: median of time(candidate) / time(Parse) over alternating short rounds
// (BenchmarkParseCandidatesRatio), low–high over 2–5 runs on a 2-core VM
// shared with other builds; Parse's own ns/op from BenchmarkParse at a quieter
// moment (under load it measured up to 3× these).
//
//	frame (bytes)                    Parse   jsontext  jsontext  enc/json  enc/json  fastjson  fastjson
//	                                 ns/op   pooled    new dec.  exact     structs   pooled    new
//	event_add_row (606)              1,260   1.7       1.9–2.0   16–28     10–11     1.9       5–7
//	event_edit_row_4_tags (1294)     2,590   1.7–1.8   1.8–1.9   18–35     12–22     1.8–1.9   4–6
//	add_from_connected_server (114)  197     1.8–2.0   2.4–2.8   8–18      5.7–10    2.0–2.2   4–6
//	tag_attached_to_event (307)      515     1.6–2.2   1.9–2.6   17–24     11–17     2.3–2.4   7–8
//	heartbeat (81)                   170     2.2       3.0–3.6   11–21     7–11      2.1–2.2   6–7
//	publish_3KiB (3420)              4,555   1.3       1.3–1.4   17–41     9–16      1.8–1.9   4–6
//	publish_10MiB                    8.1 ms  0.9–1.0   0.9       15–35     6–12      3.4–4.5   9–11
//
// Memory: B/op and allocs/op (BenchmarkParseCandidates; the same in every run).
//
//	frame                      Parse   jsontext  jsontext  enc/json    enc/json  fastjson        fastjson
//	                                   pooled    new dec.  exact       structs   pooled          new
//	event_add_row              112/4   112/4     544/9     5,384/93    1,352/26  112/5           8,520/25
//	event_edit_row_4_tags      552/14  520/14    1,016/21  12,800/248  4,832/85  408/12          17,768/64
//	add_from_connected_server  48/1    48/1      448/4     848/16      408/8     80/2            968/10
//	tag_attached_to_event      98/3    98/3      536/8     2,600/53    744/16    74/3            3,930/17
//	heartbeat                  48/1    48/1      448/4     744/14      328/8     56/2            816/9
//	publish_3KiB               472/12  456/12    952/19    14,263/227  2,696/51  377/10          39,712/84
//	publish_10MiB              472/12  468/12    952/19    14,248/227  2,696/51  ≤145 MB/108k ¹  145 MB/108k
//
// ¹ fastjson builds the whole tree: 130 MiB for the 10 MiB frame, which a
// pooled parser keeps (until a GC empties the pool; then the next frame
// allocates it again).
//
// jsontext comes closest: pooled, it allocates what Parse does and is as fast
// on the 10 MiB frame, but its cost per token makes the heartbeat 2.2× slower
// in every run, and pull notices and tag attachments up to 2.2×; a new
// decoder per frame costs ~400 B, 9× what Parse allocates for a heartbeat.
// encoding/json validates, then decodes (two scans), and allocates per value;
// under GOEXPERIMENT=jsonv2 it runs on the v2 engine and takes 2–12× the time
// and 2–27× the memory. fastjson materialises the tree. No candidate is within
// 2× on time and memory for every frame class, so the scanner stays. To rerun
// (the jsontext rows need the experiment until a Go release turns it on by
// default; the JSON v2 README names Go 1.27):
//
//	go test -run XXX -bench ParseCandidates ./curator/feed/
//	GOEXPERIMENT=jsonv2 go test -run XXX -bench ParseCandidates ./curator/feed/
package feed
