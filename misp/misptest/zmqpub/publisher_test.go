package zmqpub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/go-zeromq/zmq4/security/plain"
)

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
		wantEP  string // prefix of Endpoint when no error
	}{
		{name: "defaults bind loopback on a free port", opts: Options{}, wantEP: "tcp://127.0.0.1:"},
		{name: "an unspecified address is dialled on loopback", opts: Options{Addr: "0.0.0.0:0"}, wantEP: "tcp://127.0.0.1:"},
		{name: "PLAIN with both credentials", opts: Options{User: "misp", Password: "s3cret"}, wantEP: "tcp://127.0.0.1:"},
		{name: "a username without password is refused like mispzmq.py does", opts: Options{User: "misp"}, wantErr: "both a username and a password"},
		{name: "a password without username is refused", opts: Options{Password: "s3cret"}, wantErr: "both a username and a password"},
		{name: "credentials over 255 bytes do not fit a PLAIN HELLO", opts: Options{User: "u", Password: strings.Repeat("p", 256)}, wantErr: "255 bytes"},
		{name: "a malformed address is an error", opts: Options{Addr: "nonsense"}, wantErr: "bind address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.HeartbeatEvery = -1
			p, err := New(tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					_ = p.Close()
					t.Fatalf("New(%+v) succeeded, want error containing %q", tt.opts, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				if tt.opts.Password != "" && strings.Contains(err.Error(), tt.opts.Password) {
					t.Fatalf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer p.Close()
			ep := p.Endpoint()
			port, perr := strconv.Atoi(strings.TrimPrefix(ep, tt.wantEP))
			if !strings.HasPrefix(ep, tt.wantEP) || perr != nil || port <= 0 {
				t.Fatalf("Endpoint() = %q, want %s<port>", ep, tt.wantEP)
			}
		})
	}
}

func TestPublishSendsOneFrameTopicSpacePayload(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json_event", 1)

	big := bytes.Repeat([]byte{0, 0xff, ' ', 'x'}, 256<<10) // 1 MiB, binary, with spaces
	tests := []struct {
		name    string
		topic   string
		payload []byte
	}{
		{"a real pulled-event message", "misp_json_event", []byte(`{"Event":"5a3c2fcd-8328-42bb-a95e-4f4402de0b81","Server":"2","action":"add_from_connected_server"}`)},
		{"a payload with spaces stays one frame", "misp_json_tag", []byte(`{"Tag": {"name": "tlp:white"}, "action": "attached to event"}`)},
		{"an empty payload", "misp_json", nil},
		{"a payload over 255 bytes uses a long frame", "misp_json_audit", bytes.Repeat([]byte("a"), 300)},
		{"a 1 MiB binary payload", "misp_json_attribute", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Publish(tt.topic, tt.payload); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			m := sub.next(t)
			if len(m.Frames) != 1 {
				t.Fatalf("got %d frames, want exactly 1 (mispzmq.py sends single-part messages)", len(m.Frames))
			}
			want := append([]byte(tt.topic+" "), tt.payload...)
			if !bytes.Equal(m.Frames[0], want) {
				t.Fatalf("frame differs: got %d bytes %.80q, want %d bytes %.80q", len(m.Frames[0]), m.Frames[0], len(want), want)
			}
		})
	}
	if got := p.Stats().Published; got != uint64(len(tests)) {
		t.Errorf("Stats().Published = %d, want %d", got, len(tests))
	}
}

func TestPublishCopiesPayload(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json", 1)
	payload := []byte(`{"n":1}`)
	if err := p.Publish("misp_json", payload); err != nil {
		t.Fatal(err)
	}
	copy(payload, `{"n":2}`) // the caller reuses its buffer at once
	if got := string(sub.next(t).Frames[0]); got != `misp_json {"n":1}` {
		t.Fatalf("got %q: the publisher kept a reference to the caller's buffer", got)
	}
}

func TestTopicPrefixFiltering(t *testing.T) {
	published := []string{
		"misp_json", "misp_json_event", "misp_json_object", "misp_json_object_reference",
		"misp_json_tag", "misp_json_self", "other_topic",
	}
	type op struct {
		subscribe bool
		prefix    string
	}
	tests := []struct {
		name      string
		ops       []op
		waitTopic string // a topic the final subscriptions match
		sentinel  string // published last; must match the final subscriptions
		want      []string
	}{
		{"an empty subscription gets everything", []op{{true, ""}}, "misp_json", "misp_json",
			published},
		{"misp_json is a prefix of every MISP topic", []op{{true, "misp_json"}}, "misp_json", "misp_json",
			published[:6]},
		{"misp_json_object also matches misp_json_object_reference", []op{{true, "misp_json_object"}}, "misp_json_object", "misp_json_object",
			[]string{"misp_json_object", "misp_json_object_reference"}},
		{"a trailing space selects the exact topic", []op{{true, "misp_json_object "}}, "misp_json_object", "misp_json_object",
			[]string{"misp_json_object"}},
		{"the curator's subscription set", []op{{true, "misp_json_event"}, {true, "misp_json_self"}}, "misp_json_self", "misp_json_event",
			[]string{"misp_json_event", "misp_json_self"}},
		{"an unsubscribed prefix gets nothing more", []op{{true, "other_topic"}, {false, "other_topic"}, {true, "misp_json_tag"}}, "misp_json_tag", "misp_json_tag",
			[]string{"misp_json_tag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPublisher(t, Options{}, defaultLimits())
			sub := mustDialSub(t, p.Endpoint(), nil)
			for _, o := range tt.ops {
				name := zmq4.OptionSubscribe
				if !o.subscribe {
					name = zmq4.OptionUnsubscribe
				}
				if err := sub.sock.SetOption(name, o.prefix); err != nil {
					t.Fatal(err)
				}
			}
			// Subscriptions are processed in order, so once the last one is
			// in, the earlier (un)subscriptions are too.
			waitSubscribed(t, p, tt.waitTopic, 1)
			for i, topic := range published {
				if err := p.Publish(topic, []byte(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Publish(tt.sentinel, []byte("sentinel")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				m := sub.next(t)
				if strings.HasSuffix(string(m.Frames[0]), " sentinel") {
					break
				}
				got = append(got, topicOf(m))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("received topics %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOddFramesAreSentAsGiven(t *testing.T) {
	// Tests of the curator's input handling need malformed frames.
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json", 1)
	tests := []struct{ topic, payload, want string }{
		{"", `{"Event":"x"}`, ` {"Event":"x"}`},
		{"misp json", "{}", "misp json {}"},
		{"misp_json_event", "not json", "misp_json_event not json"},
		{"misp_json_event", "{\"Event\":", "misp_json_event {\"Event\":"},
		{"misp\x00json", "\xff\xfe", "misp\x00json \xff\xfe"},
	}
	for _, tt := range tests {
		if err := p.Publish(tt.topic, []byte(tt.payload)); err != nil {
			t.Fatalf("Publish(%q, %q): %v", tt.topic, tt.payload, err)
		}
		m := sub.next(t)
		if len(m.Frames) != 1 || string(m.Frames[0]) != tt.want {
			t.Fatalf("Publish(%q, %q) delivered %q, want one frame %q", tt.topic, tt.payload, m.Frames, tt.want)
		}
	}
}

func TestClosedPublisher(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Publish("misp_json", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := p.Restart(); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after Close = %v, want ErrClosed", err)
	}
	if err := p.WaitSubscribed(context.Background(), "misp_json", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitSubscribed after Close = %v, want ErrClosed", err)
	}
}

func TestCloseDisconnectsSubscribers(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json", 1)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sub.errs:
		t.Logf("zmq4 SUB saw: %v", err)
	case <-time.After(eventually):
		t.Fatal("the subscriber saw no error after Close: its connection is still open")
	}
}

func TestSubscriberThatLeavesIsForgotten(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	ctx, cancel := context.WithCancel(context.Background())
	sock := zmq4.NewSub(ctx)
	if err := sock.Dial(p.Endpoint()); err != nil {
		t.Fatal(err)
	}
	if err := sock.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, p, "misp_json", 1)
	cancel()
	_ = sock.Close()
	waitFor(t, "the publisher to drop the closed subscriber", func() bool { return p.Stats().Subscribers == 0 })
	for i := range 10 {
		if err := p.Publish("misp_json", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("Publish after the subscriber left: %v", err)
		}
	}
	if got := p.Stats().Published; got != 10 {
		t.Fatalf("Published = %d, want 10", got)
	}
}

func TestSilentPublisherSendsNothingButKeepsConnections(t *testing.T) {
	p, _ := newTestPublisher(t, Options{HeartbeatEvery: 20 * time.Millisecond}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json_event", 1)
	if err := p.Publish("misp_json_event", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if m := sub.nextSkipping(t, heartbeatTopic); string(m.Frames[0]) != "misp_json_event before" {
		t.Fatalf("got %q", m.Frames[0])
	}
	// A heartbeat is under way? Wait for one so we know the loop runs.
	waitFor(t, "a heartbeat before going silent", func() bool { return p.Stats().Heartbeats > 0 })

	p.SetSilent(true)
	hb := p.Stats().Heartbeats
	for i := range 5 {
		if err := p.Publish("misp_json_event", []byte(fmt.Sprint("silenced ", i))); err != nil {
			t.Fatalf("Publish while silent: %v", err)
		}
	}
	// Ten heartbeat periods with nothing published.
	time.Sleep(200 * time.Millisecond)
	st := p.Stats()
	if st.Heartbeats != hb {
		t.Errorf("Heartbeats went from %d to %d while silent", hb, st.Heartbeats)
	}
	if st.Silenced != 5 {
		t.Errorf("Silenced = %d, want 5", st.Silenced)
	}
	if st.Subscribers != 1 {
		t.Errorf("Subscribers = %d while silent, want 1 (a hung publisher keeps its TCP connections)", st.Subscribers)
	}

	p.SetSilent(false)
	if err := p.Publish("misp_json_event", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// Everything between "before" and "after" must have been swallowed, not
	// queued: the next event message is "after".
	if m := sub.nextSkipping(t, heartbeatTopic); string(m.Frames[0]) != "misp_json_event after" {
		t.Fatalf("first message after silence = %q, want the one published after it", m.Frames[0])
	}
}

func TestDropRateIsDeterministic(t *testing.T) {
	const n = 300
	run := func(t *testing.T, seed int64, rate float64) ([]int, Stats) {
		t.Helper()
		p, _ := newTestPublisher(t, Options{Seed: seed}, defaultLimits())
		sub := mustDialSub(t, p.Endpoint(), nil, "misp_json_event")
		waitSubscribed(t, p, "misp_json_event", 1)
		p.SetDropRate(rate)
		for i := range n {
			if err := p.Publish("misp_json_event", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		p.SetDropRate(0)
		if err := p.Publish("misp_json_event", []byte("sentinel")); err != nil {
			t.Fatal(err)
		}
		var got []int
		for {
			payload := strings.TrimPrefix(string(sub.next(t).Frames[0]), "misp_json_event ")
			if payload == "sentinel" {
				return got, p.Stats()
			}
			i, err := strconv.Atoi(payload)
			if err != nil {
				t.Fatalf("unexpected payload %q", payload)
			}
			got = append(got, i)
		}
	}
	predicted := func(seed int64, rate float64) []int {
		var kept []int
		for i := range n {
			if !dropped(seed, streamPublish, uint64(i), rate) {
				kept = append(kept, i)
			}
		}
		return kept
	}

	a, statsA := run(t, 42, 0.5)
	b, statsB := run(t, 42, 0.5)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different losses:\n%v\n%v", a, b)
	}
	if !slices.Equal(a, predicted(42, 0.5)) {
		t.Fatalf("received %v, want the seeded prediction %v", a, predicted(42, 0.5))
	}
	if statsA.Dropped != uint64(n-len(a)) || statsA.Published != uint64(len(a))+1 || statsB.Dropped != statsA.Dropped {
		t.Fatalf("stats %+v / %+v do not match %d received of %d", statsA, statsB, len(a), n)
	}
	if len(a) < n/4 || len(a) > 3*n/4 {
		t.Fatalf("kept %d of %d at rate 0.5", len(a), n)
	}
	c, _ := run(t, 7, 0.5)
	if slices.Equal(a, c) {
		t.Fatal("seeds 42 and 7 lost exactly the same messages")
	}
	if all, st := run(t, 42, 0); len(all) != n || st.Dropped != 0 {
		t.Fatalf("rate 0 kept %d of %d, dropped %d", len(all), n, st.Dropped)
	}
	if none, st := run(t, 42, 1); len(none) != 0 || st.Dropped != n {
		t.Fatalf("rate 1 kept %d, dropped %d", len(none), st.Dropped)
	}
}

func TestRestartRebindsTheSamePort(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		sec  func() zmq4.Security // fresh per connection
	}{
		{"NULL", Options{}, func() zmq4.Security { return null.Security() }},
		{"PLAIN", Options{User: "misp", Password: "zmq-s3cret"}, func() zmq4.Security { return plain.Security("misp", "zmq-s3cret") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPublisher(t, tt.opts, defaultLimits())
			endpoint := p.Endpoint()
			old := mustDialSub(t, endpoint, tt.sec(), "misp_json")
			waitSubscribed(t, p, "misp_json_event", 1)
			if err := p.Publish("misp_json_event", []byte("m1")); err != nil {
				t.Fatal(err)
			}
			if got := string(old.next(t).Frames[0]); got != "misp_json_event m1" {
				t.Fatalf("got %q", got)
			}

			if err := p.Restart(); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if p.Endpoint() != endpoint {
				t.Fatalf("Endpoint changed across Restart: %s → %s", endpoint, p.Endpoint())
			}
			select {
			case err := <-old.errs:
				t.Logf("the old connection ended: %v", err)
			case <-time.After(eventually):
				t.Fatal("the subscriber's connection survived Restart")
			}
			// Published while nobody is connected: lost, as with MISP.
			if err := p.Publish("misp_json_event", []byte("m2 (lost)")); err != nil {
				t.Fatal(err)
			}

			fresh := mustDialSub(t, endpoint, tt.sec(), "misp_json")
			waitSubscribed(t, p, "misp_json_event", 1)
			if err := p.Publish("misp_json_event", []byte("m3")); err != nil {
				t.Fatal(err)
			}
			if got := string(fresh.next(t).Frames[0]); got != "misp_json_event m3" {
				t.Fatalf("first message on the new connection = %q, want m3 (m2 was sent while nobody listened)", got)
			}
			st := p.Stats()
			if st.Restarts != 1 || st.Published != 3 || st.Subscribers != 1 {
				t.Fatalf("Stats = %+v, want 1 restart, 3 published, 1 subscriber", st)
			}
		})
	}
}

func TestRestartResetsHeartbeatUptime(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	p.mu.Lock()
	p.started = p.started.Add(-time.Hour) // as if up for an hour
	p.mu.Unlock()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	up := time.Since(p.started)
	p.mu.Unlock()
	if up > time.Minute {
		t.Fatalf("uptime origin is %v old after Restart, want it reset like a mispzmq reload", up)
	}
}

func TestPLAINCredentialsAreChecked(t *testing.T) {
	const user, pass = "misp-zmq", "correct horse battery"
	tests := []struct {
		name        string
		sec         zmq4.Security
		wantOK      bool
		wantAuthErr bool // counted in AuthFailures rather than HandshakeFailures
	}{
		{"the right username and password receive", plain.Security(user, pass), true, false},
		{"a wrong password is refused", plain.Security(user, "wrong password"), false, true},
		{"a wrong username is refused", plain.Security("someone", pass), false, true},
		{"empty credentials are refused", plain.Security("", ""), false, true},
		{"a NULL client is refused", null.Security(), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, logs := newTestPublisher(t, Options{User: user, Password: pass}, defaultLimits())
			sub, err := dialSub(t, p.Endpoint(), tt.sec, "")
			if !tt.wantOK {
				if err == nil {
					t.Fatal("dial succeeded, want the handshake refused")
				}
				t.Logf("zmq4 Dial error: %v", err)
				wantAuth, wantOther := uint64(0), uint64(1)
				if tt.wantAuthErr {
					wantAuth, wantOther = 1, 0
				}
				// The client can see the refusal before the server has counted it.
				waitFor(t, "the refusal to be counted", func() bool {
					st := p.Stats()
					return st.AuthFailures+st.HandshakeFailures > 0
				})
				st := p.Stats()
				if st.AuthFailures != wantAuth || st.HandshakeFailures != wantOther || st.Subscribers != 0 {
					t.Fatalf("Stats = %+v, want %d auth and %d other handshake failures, no subscriber", st, wantAuth, wantOther)
				}
				if strings.Contains(logs.String(), pass) || strings.Contains(logs.String(), "wrong password") {
					t.Fatalf("a password appears in the logs:\n%s", logs)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial with the right credentials: %v", err)
			}
			waitSubscribed(t, p, "misp_json_event", 1)
			if err := p.Publish("misp_json_event", []byte("{}")); err != nil {
				t.Fatal(err)
			}
			if got := string(sub.next(t).Frames[0]); got != "misp_json_event {}" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestPLAINClientOnNULLPublisherIsRefused(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	if _, err := dialSub(t, p.Endpoint(), plain.Security("u", "p"), ""); err == nil {
		t.Fatal("a PLAIN client completed a handshake with a NULL publisher")
	}
	waitFor(t, "the refusal to be counted", func() bool { return p.Stats().HandshakeFailures > 0 })
	if st := p.Stats(); st.HandshakeFailures != 1 || st.Subscribers != 0 {
		t.Fatalf("Stats = %+v, want one handshake failure", st)
	}
}

func TestStalledSubscriberDoesNotHoldUpOthers(t *testing.T) {
	lim := defaultLimits()
	lim.sendHWM = 50
	p, _ := newTestPublisher(t, Options{}, lim)

	// A peer that completes the handshake, subscribes to everything and then
	// never reads: its kernel buffers fill, then its queue.
	raw, err := net.Dial("tcp", strings.TrimPrefix(p.Endpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	stalled, err := zmq4.Open(raw, null.Security(), zmq4.Sub, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.SendMsg(zmq4.NewMsg([]byte{1})); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, p, "misp_json", 1)
	healthy := mustDialSub(t, p.Endpoint(), nil, "")
	waitSubscribed(t, p, "misp_json", 2)

	payload := bytes.Repeat([]byte("x"), 64<<10)
	const batches, perBatch = 30, 20 // 600 × 64 KiB ≈ 38 MiB, far beyond the stalled peer's buffers
	for b := range batches {
		for i := range perBatch {
			if err := p.Publish("misp_json", append([]byte(fmt.Sprintf("%05d ", b*perBatch+i)), payload...)); err != nil {
				t.Fatal(err)
			}
		}
		// Pace on the healthy subscriber so that its own queue never fills.
		for i := range perBatch {
			m := healthy.next(t)
			want := fmt.Sprintf("misp_json %05d ", b*perBatch+i)
			if !bytes.HasPrefix(m.Frames[0], []byte(want)) {
				t.Fatalf("healthy subscriber got %.30q, want %q", m.Frames[0], want)
			}
		}
	}
	st := p.Stats()
	if st.QueueDrops == 0 {
		t.Fatalf("Stats = %+v: no message was dropped for the stalled subscriber", st)
	}
	if st.Subscribers != 2 {
		t.Fatalf("Subscribers = %d: a slow subscriber loses messages but stays connected, as with libzmq", st.Subscribers)
	}
	t.Logf("stalled subscriber: %d frames dropped of %d", st.QueueDrops, batches*perBatch)

	_ = raw.Close()
	waitFor(t, "the stalled subscriber to be removed after it closed", func() bool { return p.Stats().Subscribers == 1 })
}

func TestAnswersZMTPPing(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	raw, err := net.Dial("tcp", strings.TrimPrefix(p.Endpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	zc, err := zmq4.Open(raw, null.Security(), zmq4.Sub, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// PING = TTL (2 bytes, tenths of a second) + context (RFC 37/ZMTP 3.1).
	if err := zc.SendCmd(zmq4.CmdPing, []byte{0, 30, 'c', 't', 'x'}); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(eventually))
	cmd, err := zc.RecvCmd()
	if err != nil {
		t.Fatalf("no answer to PING: %v", err)
	}
	if cmd.Name != zmq4.CmdPong || string(cmd.Body) != "ctx" {
		t.Fatalf("got %s %q, want PONG \"ctx\"", cmd.Name, cmd.Body)
	}
}

func TestWaitSubscribedHonoursItsContext(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := p.WaitSubscribed(ctx, "misp_json", 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSubscribed with nobody connected = %v, want a deadline error", err)
	}
}

func TestRestartWhenThePortWasTaken(t *testing.T) {
	lim := defaultLimits()
	lim.rebindFor = 100 * time.Millisecond
	p, _ := newTestPublisher(t, Options{}, lim)
	// Someone else holds the port the publisher must return to.
	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	p.bindAddr = squatter.Addr().String()

	if err := p.Restart(); err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("Restart onto a taken port = %v, want a bind error", err)
	}
	if err := p.Publish("misp_json", []byte("into the void")); err != nil {
		t.Fatalf("Publish while down: %v", err)
	}
	if st := p.Stats(); st.Subscribers != 0 || st.Published != 1 || st.Restarts != 1 {
		t.Fatalf("Stats while down = %+v", st)
	}

	_ = squatter.Close()
	if err := p.Restart(); err != nil {
		t.Fatalf("Restart once the port is free: %v", err)
	}
	sub := mustDialSub(t, "tcp://"+p.bindAddr, nil, "misp_json")
	waitSubscribed(t, p, "misp_json", 1)
	if err := p.Publish("misp_json", []byte("back")); err != nil {
		t.Fatal(err)
	}
	if got := string(sub.next(t).Frames[0]); got != "misp_json back" {
		t.Fatalf("got %q", got)
	}
}

func TestConcurrentUseAccountsForEveryPublish(t *testing.T) {
	p, _ := newTestPublisher(t, Options{HeartbeatEvery: 5 * time.Millisecond, Seed: 3}, defaultLimits())
	var wg sync.WaitGroup
	var calls atomic.Uint64
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := p.Publish("misp_json_event", []byte("{}")); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			p.SetSilent(i%3 == 0)
			p.SetDropRate(float64(i%4) / 4)
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() {
		for range 3 {
			if _, err := dialSub(t, p.Endpoint(), nil, "misp_json"); err != nil {
				t.Logf("dial during restarts: %v", err) // may hit a restart
			}
			if err := p.Restart(); err != nil {
				t.Errorf("Restart: %v", err)
			}
		}
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if got := st.Published + st.Silenced + st.Dropped - dropsOfHeartbeats(p); got != calls.Load() {
		t.Fatalf("Published %d + Silenced %d + Dropped (of Publish) = %d, want the %d Publish calls", st.Published, st.Silenced, got, calls.Load())
	}
	if st.Restarts != 3 {
		t.Fatalf("Restarts = %d, want 3", st.Restarts)
	}
}

// dropsOfHeartbeats is how many of Stats.Dropped were heartbeats.
func dropsOfHeartbeats(p *Publisher) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nHeartbeat - p.stats.Heartbeats
}
