package zmqpub

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// testdata/heartbeats.jsonl holds every distinct misp_json_self frame of the
// real MISP 2.5.1 captures (/work/shared/misp/real/*/zmq/all_messages.jsonl):
// {"n_frames": 1, "raw": "<the exact frame>"}.
func TestHeartbeatFrameMatchesRealMISP(t *testing.T) {
	f, err := os.Open("testdata/heartbeats.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	statuses := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			NFrames int    `json:"n_frames"`
			Raw     string `json:"raw"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("fixture line %q: %v", sc.Text(), err)
		}
		topic, body, _ := strings.Cut(rec.Raw, " ")
		var hb struct {
			Status string `json:"status"`
			Uptime int64  `json:"uptime"`
		}
		if err := json.Unmarshal([]byte(body), &hb); err != nil || topic != heartbeatTopic || rec.NFrames != 1 {
			t.Fatalf("fixture %q is not a single-frame heartbeat: %v", rec.Raw, err)
		}
		statuses[hb.Status] = true
		if got := string(heartbeatFrame(hb.Uptime)); got != rec.Raw {
			t.Errorf("uptime %d:\n got %s\nwant %s", hb.Uptime, got, rec.Raw)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 5 {
		t.Fatalf("the fixtures cover %d of the 5 status strings", len(statuses))
	}
}

func TestHeartbeatFrameStatusIndex(t *testing.T) {
	tests := []struct {
		uptime int64
		want   string
	}{
		{0, "And when you're dead I will be still alive."},
		{9, "And when you're dead I will be still alive."},
		{10, "And believe me I am still alive."},
		{29, "I'm doing science and I'm still alive."},
		{30, "I feel FANTASTIC and I'm still alive."},
		{49, "While you're dying I'll be still alive."},
		{50, "And when you're dead I will be still alive."},
		{-5, "And when you're dead I will be still alive."}, // clock stepped back
	}
	for _, tt := range tests {
		var hb struct{ Status string }
		if err := json.Unmarshal(heartbeatFrame(tt.uptime)[len(heartbeatTopic)+1:], &hb); err != nil {
			t.Fatal(err)
		}
		if hb.Status != tt.want {
			t.Errorf("uptime %d: status %q, want %q", tt.uptime, hb.Status, tt.want)
		}
	}
}

// heartbeatIfIdle decides from the clock it is given, so the idleness rule
// is tested here without sleeping.
func TestHeartbeatOnlyAfterIdlePeriod(t *testing.T) {
	p, _ := newTestPublisher(t, Options{}, defaultLimits()) // loop off; we drive it
	const every = 10 * time.Second
	t0 := time.Now()
	p.mu.Lock()
	p.every, p.lastSend, p.started = every, t0, t0.Add(-234*time.Second)
	p.mu.Unlock()

	steps := []struct {
		name       string
		at         time.Duration // since t0
		publish    bool          // a Publish happens at this time instead
		silent     bool
		wantWait   time.Duration
		heartbeats uint64 // total after the step
	}{
		{name: "busy for 4 s: no heartbeat yet", at: 4 * time.Second, wantWait: 6 * time.Second},
		{name: "idle for 10 s: heartbeat", at: 10 * time.Second, wantWait: every, heartbeats: 1},
		{name: "idle 10 s more: next heartbeat", at: 20 * time.Second, wantWait: every, heartbeats: 2},
		{name: "a message", at: 25 * time.Second, publish: true, heartbeats: 2},
		{name: "postpones the heartbeat", at: 30 * time.Second, wantWait: 5 * time.Second, heartbeats: 2},
		{name: "until 10 s after it", at: 35 * time.Second, wantWait: every, heartbeats: 3},
		{name: "a silent publisher sends none", at: 45 * time.Second, silent: true, wantWait: every, heartbeats: 3},
	}
	for _, st := range steps {
		now := t0.Add(st.at)
		if st.publish {
			p.mu.Lock()
			p.lastSend = now // what Publish does, at a chosen time
			p.mu.Unlock()
			continue
		}
		p.SetSilent(st.silent)
		if got := p.heartbeatIfIdle(now); got != st.wantWait {
			t.Errorf("%s: next check in %v, want %v", st.name, got, st.wantWait)
		}
		if got := p.Stats().Heartbeats; got != st.heartbeats {
			t.Errorf("%s: %d heartbeats, want %d", st.name, got, st.heartbeats)
		}
	}
}

func TestHeartbeatOverTheWire(t *testing.T) {
	const every = 100 * time.Millisecond
	p, _ := newTestPublisher(t, Options{HeartbeatEvery: every}, defaultLimits())
	sub := mustDialSub(t, p.Endpoint(), nil, "misp_json_self", "misp_json_event")
	waitSubscribed(t, p, "misp_json_self", 1)

	m := sub.next(t)
	if len(m.Frames) != 1 || topicOf(m) != heartbeatTopic {
		t.Fatalf("got %q, want one misp_json_self frame", m.Frames)
	}
	var hb struct {
		Status string `json:"status"`
		Uptime int64  `json:"uptime"`
	}
	if err := json.Unmarshal(m.Frames[0][len(heartbeatTopic)+1:], &hb); err != nil {
		t.Fatalf("heartbeat payload %q: %v", m.Frames[0], err)
	}
	if hb.Uptime < 0 || hb.Uptime > 60 || hb.Status != heartbeatStatus((hb.Uptime/10)%5) {
		t.Fatalf("heartbeat %+v: implausible uptime or wrong status", hb)
	}

	// A message, then silence: the next heartbeat comes no sooner than one
	// period after the message (a lower bound holds on a loaded machine).
	if err := p.Publish("misp_json_event", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	if got := sub.nextSkipping(t, heartbeatTopic); topicOf(got) != "misp_json_event" {
		t.Fatalf("got %q", got.Frames[0])
	}
	sub.nextSkipping(t, "misp_json_event")
	if gap := time.Since(published); gap < every {
		t.Fatalf("heartbeat %v after a message, want at least %v of idleness first", gap, every)
	}
}

func TestHeartbeatSettings(t *testing.T) {
	t.Run("a short period heartbeats while idle", func(t *testing.T) {
		p, _ := newTestPublisher(t, Options{HeartbeatEvery: 20 * time.Millisecond}, defaultLimits())
		waitFor(t, "a heartbeat", func() bool { return p.Stats().Heartbeats > 0 })
	})
	t.Run("a negative period never heartbeats", func(t *testing.T) {
		p, _ := newTestPublisher(t, Options{HeartbeatEvery: -1}, defaultLimits())
		time.Sleep(300 * time.Millisecond)
		if n := p.Stats().Heartbeats; n != 0 {
			t.Fatalf("%d heartbeats sent", n)
		}
	})
	t.Run("zero means MISP's 10 s", func(t *testing.T) {
		p, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if p.every != 10*time.Second {
			t.Fatalf("default heartbeat period %v, want 10s", p.every)
		}
	})
}
