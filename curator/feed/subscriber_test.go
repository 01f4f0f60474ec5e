package feed

import (
	"context"
	"errors"
	"math"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/misp/misptest/zmqpub"
)

// newPublisher starts the project's MISP-like ZeroMQ PUB double (zmqpub: zmq4
// handshake and framing, PLAIN credentials checked like mispzmq.py's ZAP
// authenticator, restart on the same port, silent mode).
func newPublisher(t *testing.T, opts zmqpub.Options) *zmqpub.Publisher {
	t.Helper()
	if opts.HeartbeatEvery == 0 {
		opts.HeartbeatEvery = -1 // tests opt in to heartbeats
	}
	opts.Logf = t.Logf
	p, err := zmqpub.New(opts)
	if err != nil {
		t.Fatalf("start publisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func waitSubscribed(t *testing.T, p *zmqpub.Publisher, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.WaitSubscribed(ctx, topic, 1); err != nil {
		t.Fatalf("no subscriber for %s: %v (publisher stats %+v)", topic, err, p.Stats())
	}
}

// publishFrame sends a captured "<topic> <payload>" frame.
func publishFrame(t *testing.T, p *zmqpub.Publisher, frame []byte) {
	t.Helper()
	topic, payload, _ := strings.Cut(string(frame), " ")
	if err := p.Publish(topic, []byte(payload)); err != nil {
		t.Fatal(err)
	}
}

func TestSubscriberDeliversWhatTheEngineNeeds(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint()})
	waitSubscribed(t, p, "misp_json_audit") // the default "misp_json" prefix matches every topic

	// The pull-new sequence of one event (sync/README.md), with the ignored
	// topics and a heartbeat in between.
	seq := []string{"event_add_pulled_row", "tag_attached_to_event_global", "attribute_add", "audit",
		"publish_pulled_local_tags", "self_heartbeat", "tag_add", "event_add_from_server_uuid"}
	for _, name := range seq {
		publishFrame(t, p, readFrame(t, name))
	}
	wantKinds := []struct {
		kind   Kind
		action Action
	}{
		{KindEvent, ActionAdd}, {KindEventTag, ActionTagAttachedToEvent}, {KindPublish, ""},
		{KindEvent, ActionAddFromConnectedServer},
	}
	for i, w := range wantKinds {
		m := h.next()
		if m.Kind != w.kind || m.Action != w.action {
			t.Fatalf("message %d: got %s %q, want %s %q", i, m.Kind, m.Action, w.kind, w.action)
		}
	}
	waitUntil(t, "all frames counted", func() bool { return h.sub.State().Messages == uint64(len(seq)) })
	st := h.sub.State()
	if st.Delivered != 4 || st.Dropped != 0 || st.ParseErrors != 0 {
		t.Errorf("state counters: %+v", st)
	}
	if st.LastHeartbeat.IsZero() || st.LastMessage.Before(st.LastHeartbeat) {
		t.Errorf("heartbeat/last message times not recorded: %+v", st)
	}
	if got := h.metric("messages", "misp_json_audit"); got != 1 {
		t.Errorf("messages_total{topic=misp_json_audit} = %v, want 1", got)
	}
	if got := h.metric("messages", "misp_json_tag"); got != 2 {
		t.Errorf("messages_total{topic=misp_json_tag} = %v, want 2", got)
	}
	if got := h.metric("connected"); got != 1 {
		t.Errorf("connected = %v, want 1", got)
	}
	if h.onConnectCalls() != 1 {
		t.Errorf("OnConnect called %d times, want 1", h.onConnectCalls())
	}
	if sum := st.Summary(); !strings.Contains(sum, "NULL handshake ok") || !strings.HasSuffix(sum, ", receiving") {
		t.Errorf("summary %q", sum)
	}
}

func TestSubscriberTopicFilter(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), Topics: []string{"misp_json_event"}})
	waitSubscribed(t, p, "misp_json_event")
	publishFrame(t, p, readFrame(t, "tag_attached_to_event_local")) // not subscribed
	publishFrame(t, p, readFrame(t, "publish_local"))               // "misp_json" is not a prefix match of misp_json_event
	publishFrame(t, p, readFrame(t, "event_edit_from_server_uuid"))
	if m := h.next(); m.Action != ActionEditFromConnectedServer {
		t.Fatalf("got %+v, want the edit_from_connected_server message", m)
	}
	if st := h.sub.State(); st.Messages != 1 {
		t.Errorf("%d frames received, want 1: the publisher filters by prefix", st.Messages)
	}
}

func TestSubscriberQueueFullDropsAndCounts(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), QueueSize: 2})
	waitSubscribed(t, p, "misp_json_event")
	frame := readFrame(t, "event_add_from_server_uuid")
	for range 10 { // nobody reads the queue meanwhile
		publishFrame(t, p, frame)
	}
	waitUntil(t, "10 frames received", func() bool { return h.sub.State().Messages == 10 })
	st := h.sub.State()
	if st.Delivered != 2 || st.Dropped != 8 {
		t.Fatalf("delivered %d dropped %d, want 2 and 8", st.Delivered, st.Dropped)
	}
	if got := h.metric("dropped", DropQueueFull); got != 8 {
		t.Errorf("dropped_total{reason=queue_full} = %v, want 8", got)
	}
	if got := h.metric("queue_depth"); got != 2 {
		t.Errorf("queue_depth = %v, want 2", got)
	}
	if n := h.logs.count("queue full"); n != 1 {
		t.Errorf("queue-full logged %d times, want once:\n%s", n, h.logs)
	}
	// The socket reader never blocked: the queue drains and later messages flow.
	h.next()
	h.next()
	publishFrame(t, p, readFrame(t, "event_edit_from_server_uuid"))
	if m := h.next(); m.Action != ActionEditFromConnectedServer {
		t.Fatalf("after draining: %+v", m)
	}
}

func TestSubscriberDropsOversizeFrames(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), MaxMessageSize: 4096})
	waitSubscribed(t, p, "misp_json")
	big := bigPublishFrame(t, 64<<10)
	publishFrame(t, p, big)
	publishFrame(t, p, big)
	publishFrame(t, p, readFrame(t, "event_add_from_server_uuid"))
	if m := h.next(); m.Action != ActionAddFromConnectedServer {
		t.Fatalf("got %+v", m)
	}
	if got := h.metric("dropped", DropTooLarge); got != 2 {
		t.Errorf("dropped_total{reason=too_large} = %v, want 2", got)
	}
	st := h.sub.State()
	if st.Dropped != 2 || st.Messages != 3 || st.Connects != 1 {
		t.Errorf("state %+v: want 2 dropped of 3 on one connection", st)
	}
	if n := h.logs.count("over the size limit"); n != 1 {
		t.Errorf("oversize logged %d times, want once", n)
	}
}

func TestSubscriberSkipsMalformedFramesAndLogsEachKindOnce(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint()})
	waitSubscribed(t, p, "misp_json")
	bad := []struct{ topic, payload string }{
		{"misp_json_event", `{"Event":"not-a-uuid","action":"add_from_connected_server"}`},
		{"misp_json_event", `{"Event":"also-bad","action":"add_from_connected_server"}`},
		{"misp_json_event", `{"Event":`},
		{"misp_json_eventx", `{}`},
		{"misp_json_nospace", ``}, // zmqpub sends "misp_json_nospace " — an unknown topic
	}
	for _, b := range bad {
		if err := p.Publish(b.topic, []byte(b.payload)); err != nil {
			t.Fatal(err)
		}
	}
	publishFrame(t, p, readFrame(t, "event_add_from_server_uuid"))
	if m := h.next(); m.Action != ActionAddFromConnectedServer {
		t.Fatalf("got %+v", m)
	}
	if got := h.metric("parse_errors", string(KindBadUUID)); got != 2 {
		t.Errorf("parse_errors{kind=bad_uuid} = %v, want 2", got)
	}
	if got := h.metric("parse_errors", string(KindInvalidJSON)); got != 1 {
		t.Errorf("parse_errors{kind=invalid_json} = %v, want 1", got)
	}
	if got := h.metric("parse_errors", string(KindUnknownTopic)); got != 2 {
		t.Errorf("parse_errors{kind=unknown_topic} = %v, want 2", got)
	}
	if got := h.metric("messages", "unknown"); got != 2 {
		t.Errorf("messages_total{topic=unknown} = %v, want 2", got)
	}
	if n := h.logs.count("kind\"=\"bad_uuid\""); n != 1 {
		t.Errorf("bad_uuid logged %d times, want 1:\n%s", n, h.logs)
	}
	if st := h.sub.State(); st.ParseErrors != 5 || st.Connects != 1 {
		t.Errorf("state %+v", st)
	}
}

func TestSubscriberSilenceWatchdogRedials(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), SilenceTimeout: 300 * time.Millisecond})
	h.waitConnects(1)
	// Nothing is published: the watchdog must give the connection up and redial.
	h.waitConnects(3)
	if got := h.metric("reconnects", ReconnectSilence); got < 2 {
		t.Errorf("reconnects_total{reason=silence} = %v, want >= 2", got)
	}
	if st := h.sub.State(); st.Reconnects < 2 {
		t.Errorf("State.Reconnects = %d", st.Reconnects)
	}
	// Still a working subscription after the redials.
	waitSubscribed(t, p, "misp_json_event")
	publishFrame(t, p, readFrame(t, "event_add_from_server_uuid"))
	if m := h.next(); m.Kind != KindEvent {
		t.Fatalf("got %+v", m)
	}
}

func TestSubscriberMessagesKeepTheConnectionAlive(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{HeartbeatEvery: 50 * time.Millisecond})
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), SilenceTimeout: 1500 * time.Millisecond})
	h.waitConnects(1)
	waitUntil(t, "heartbeats for 2.5 silence timeouts", func() bool {
		st := h.sub.State()
		return !st.LastHeartbeat.IsZero() && time.Since(st.ConnectedSince) > 3750*time.Millisecond
	})
	if st := h.sub.State(); st.Reconnects != 0 || st.Connects != 1 {
		t.Fatalf("a publisher sending heartbeats was dropped: %+v", st)
	}
}

func TestSubscriberSilentPublisherIsRedialled(t *testing.T) {
	// A hung mispzmq.py: TCP stays up, nothing comes (zmqpub.SetSilent).
	p := newPublisher(t, zmqpub.Options{HeartbeatEvery: 50 * time.Millisecond})
	var mu sync.Mutex
	var failures []Failure
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), SilenceTimeout: 500 * time.Millisecond,
		OnStateChange: func(st State) {
			mu.Lock()
			failures = append(failures, st.Failure)
			mu.Unlock()
		}})
	waitUntil(t, "a heartbeat", func() bool { return !h.sub.State().LastHeartbeat.IsZero() })
	p.SetSilent(true)
	waitUntil(t, "a silence redial", func() bool { return h.metric("reconnects", ReconnectSilence) >= 1 })
	mu.Lock()
	if !slices.Contains(failures, FailureSilence) {
		t.Errorf("no state change with Failure %q: %v", FailureSilence, failures)
	}
	mu.Unlock()
	p.SetSilent(false)
	h.waitConnects(2)
	if !strings.Contains(h.logs.String(), "nothing received for 500ms") {
		t.Errorf("silence redial not logged:\n%s", h.logs)
	}
}

func TestSubscriberRedialsAfterPublisherRestart(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts zmqpub.Options
	}{
		{"NULL", zmqpub.Options{}},
		// zmqpub checks PLAIN credentials: the redial only succeeds with a fresh
		// security object (zmq4's forgets them after one handshake).
		{"PLAIN", zmqpub.Options{User: "misp", Password: "zmq-s3cret"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPublisher(t, tt.opts)
			h := startSubscriber(t, Options{Endpoint: p.Endpoint(), User: tt.opts.User, Password: tt.opts.Password})
			h.waitConnects(1)
			for i := range 3 {
				if err := p.Restart(); err != nil {
					t.Fatal(err)
				}
				h.waitConnects(i + 2)
				waitSubscribed(t, p, "misp_json_event")
				publishFrame(t, p, readFrame(t, "event_edit_from_server_uuid"))
				if m := h.next(); m.Action != ActionEditFromConnectedServer {
					t.Fatalf("after restart %d: %+v", i+1, m)
				}
			}
			if got := h.metric("reconnects", ReconnectRecvError); got != 3 {
				t.Errorf("reconnects_total{reason=recv_error} = %v, want 3", got)
			}
			if got := h.metric("connects"); got != 4 {
				t.Errorf("connects_total = %v, want 4", got)
			}
			if st := h.sub.State(); st.Reconnects != 3 || st.LastError != "" || st.Failure != FailureNone {
				t.Errorf("state %+v", st)
			}
		})
	}
}

func TestSubscriberHandshakeFailuresAreExplained(t *testing.T) {
	const password = "zmq-s3cret-password"
	tests := []struct {
		name      string
		pub       zmqpub.Options
		user, pw  string
		wantError string
	}{
		{"wrong password", zmqpub.Options{User: "misp", Password: password}, "misp", "wrong-" + password,
			`the publisher refused the PLAIN credentials (ZMTP ERROR "400")`},
		{"wrong user", zmqpub.Options{User: "misp", Password: password}, "nobody", password,
			`the publisher refused the PLAIN credentials`},
		{"credentials for a NULL publisher", zmqpub.Options{}, "misp", password,
			`the publisher uses the NULL mechanism, this subscription PLAIN`},
		{"no credentials for a PLAIN publisher", zmqpub.Options{User: "misp", Password: password}, "", "",
			`the publisher uses the PLAIN mechanism, this subscription NULL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPublisher(t, tt.pub)
			h := startSubscriber(t, Options{Endpoint: p.Endpoint(), User: tt.user, Password: tt.pw})
			waitUntil(t, "3 failed handshakes", func() bool { return h.metric("dial_failures", StageHandshake) >= 3 })
			st := h.sub.State()
			if st.Phase != PhaseRetrying || st.Failure != FailureHandshake || !strings.Contains(st.LastError, tt.wantError) {
				t.Fatalf("state %+v\nwant phase retrying and error containing %q", st, tt.wantError)
			}
			if st.Connects != 0 || st.ConsecutiveFailures < 3 || h.onConnectCalls() != 0 {
				t.Errorf("state %+v, OnConnect calls %d", st, h.onConnectCalls())
			}
			if sum := st.Summary(); !strings.Contains(sum, "not connected") || !strings.Contains(sum, tt.wantError) {
				t.Errorf("summary %q", sum)
			}
			// One Info line per distinct error, repeats at V(1).
			if n := h.logs.count(`"level"=0 "msg"="ZeroMQ subscription down`); n != 1 {
				t.Errorf("%d Info lines for a repeating error, want 1:\n%s", n, h.logs)
			}
			for _, secret := range []string{password, "wrong-" + password} {
				if strings.Contains(h.logs.String(), secret) || strings.Contains(st.LastError, secret) ||
					strings.Contains(st.Summary(), secret) {
					t.Errorf("credentials leaked")
				}
			}
		})
	}
}

func TestSubscriberConnectRefusedKeepsRetrying(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	h := startSubscriber(t, Options{Endpoint: "tcp://" + addr})
	waitUntil(t, "5 failed connects", func() bool { return h.metric("dial_failures", StageConnect) >= 5 })
	st := h.sub.State()
	if st.Phase != PhaseRetrying || st.Failure != FailureConnect || !strings.Contains(st.LastError, "TCP connect: connection refused") {
		t.Fatalf("state %+v", st)
	}
	if h.metric("dial_failures", StageHandshake) != 0 || h.metric("connected") != 0 {
		t.Errorf("a refused TCP connect counted as a handshake failure or a connection")
	}
}

func TestSubscriberRunStopsCleanly(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	var changes []Phase
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), OnStateChange: func(st State) { changes = append(changes, st.Phase) }})
	h.waitConnects(1)
	h.stop()
	if _, ok := <-h.sub.Messages(); ok {
		t.Fatal("Messages still open after Run returned")
	}
	if st := h.sub.State(); st.Phase != PhaseStopped {
		t.Errorf("phase %s after Run returned", st.Phase)
	}
	want := []Phase{PhaseConnecting, PhaseConnected, PhaseStopped}
	if strings.Join(phasesToStrings(changes), ",") != strings.Join(phasesToStrings(want), ",") {
		t.Errorf("state changes %v, want %v", changes, want)
	}
	if err := h.sub.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
	waitUntil(t, "the publisher to see the subscriber leave", func() bool { return p.Stats().Subscribers == 0 })
}

func phasesToStrings(ps []Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func TestSubscriberStopsDuringAHandshakeAtOnce(t *testing.T) {
	// A peer that accepts TCP and never speaks: Run must still return promptly
	// on cancel, without waiting for the handshake timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	h := startSubscriber(t, Options{Endpoint: "tcp://" + ln.Addr().String(), HandshakeTimeout: time.Hour})
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(eventually):
		t.Fatal("no connection")
	}
	start := time.Now()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(eventually):
		t.Fatal("Run hung in the handshake")
	}
	t.Logf("Run returned %s after cancel", time.Since(start))
}

func TestSubscriberHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accept and say nothing
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	h := startSubscriber(t, Options{Endpoint: "tcp://" + ln.Addr().String(), HandshakeTimeout: 200 * time.Millisecond})
	waitUntil(t, "2 handshake failures", func() bool { return h.metric("dial_failures", StageHandshake) >= 2 })
	if st := h.sub.State(); !strings.Contains(st.LastError, "no ZMTP handshake within 200ms") {
		t.Fatalf("state %+v", st)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"empty endpoint", Options{}, "want tcp://host:port"},
		{"not tcp", Options{Endpoint: "ipc:///tmp/x"}, "want tcp://host:port"},
		{"no port", Options{Endpoint: "tcp://misp"}, "want tcp://host:port"},
		{"userinfo", Options{Endpoint: "tcp://user:pw@misp:50000"}, "want tcp://host:port"},
		{"user without password", Options{Endpoint: "tcp://misp:50000", User: "u"}, "username without a password"},
		{"password without user", Options{Endpoint: "tcp://misp:50000", Password: "pw-s3cret"}, "password without a username"},
		{"password too long for PLAIN", Options{Endpoint: "tcp://misp:50000", User: "u", Password: strings.Repeat("p", 256)}, "255 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.opts.Password != "" && strings.Contains(err.Error(), tt.opts.Password) {
				t.Error("password in the error")
			}
		})
	}
	s, err := New(Options{Endpoint: "tcp://[::1]:50000", User: "u", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	if o.Password == "pw" || o.QueueSize != DefaultQueueSize || o.SilenceTimeout != DefaultSilenceTimeout ||
		len(o.Topics) != 1 || o.Topics[0] != "misp_json" || o.Backoff.Max != DefaultBackoffMax {
		t.Errorf("effective options %+v", o)
	}
	if st := s.State(); st.Phase != PhaseStarting || st.Mechanism != "PLAIN" {
		t.Errorf("initial state %+v", st)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 1 * time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{64, 500 * time.Millisecond, time.Second},
		{math.MaxInt, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		lo := b.delay(tt.attempt, func() float64 { return 0 })
		hi := b.delay(tt.attempt, func() float64 { return 0.999999 })
		if lo != tt.min || hi < tt.max-time.Millisecond || hi >= tt.max {
			t.Errorf("attempt %d: delays [%s, %s], want [%s, %s)", tt.attempt, lo, hi, tt.min, tt.max)
		}
	}
}

func TestSubscriberLeaksNoGoroutinesAcrossRedials(t *testing.T) {
	p := newPublisher(t, zmqpub.Options{})
	before := runtime.NumGoroutine()
	h := startSubscriber(t, Options{Endpoint: p.Endpoint(), SilenceTimeout: 100 * time.Millisecond})
	h.waitConnects(10) // 9 sockets closed by the watchdog
	h.stop()
	waitUntil(t, "the goroutines of closed sockets to end", func() bool { return runtime.NumGoroutine() <= before })
}
