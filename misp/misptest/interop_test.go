package misptest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// requirePyZMQ skips when Debian's python3-zmq is missing (CI installs it, so there the
// interop tests run).
func requirePyZMQ(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import zmq").Run(); err != nil {
		t.Skipf("real-libzmq interop needs /usr/bin/python3 with python3-zmq (import zmq failed: %v)", err)
	}
}

// pySub is a running testdata/zmq_sub.py.
type pySub struct {
	cmd   *exec.Cmd
	lines chan map[string]any
}

func startPySub(t *testing.T, endpoint, user, password string, count int, timeout time.Duration) *pySub {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "testdata/zmq_sub.py", endpoint,
		"--count", strconv.Itoa(count), "--timeout", strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64))
	cmd.Env = append(os.Environ(), "ZMQ_USERNAME="+user, "ZMQ_PASSWORD="+password)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start SUB: %v", err)
	}
	p := &pySub{cmd: cmd, lines: make(chan map[string]any, 1000)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines <- m
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	select {
	case m := <-p.lines:
		if m["ready"] != true {
			t.Fatalf("SUB did not start: %v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SUB did not start")
	}
	return p
}

// frames collects the messages until the script ends.
func (p *pySub) frames(t *testing.T) [][][]byte {
	t.Helper()
	var out [][][]byte
	for m := range p.lines {
		if m["done"] == true {
			break
		}
		var msg [][]byte
		for _, f := range m["frames"].([]any) {
			b, err := base64.StdEncoding.DecodeString(f.(string))
			if err != nil {
				t.Fatal(err)
			}
			msg = append(msg, b)
		}
		out = append(out, msg)
	}
	return out
}

// syncSequence simulates the captured pull of three events and a push (sync/zmq/34, 92).
func syncSequence(s *Server) {
	high := s.AddOrg(partnerHigh.Name, partnerHigh.UUID)
	s.SimulatePull(Event{UUID: e3, Orgc: partnerSub, Published: true, Attributes: 2, Tags: syncTags[:2]})
	s.SimulatePull(Event{UUID: e2, Orgc: high, Published: true, Attributes: 2, Tags: syncTags[:2]})
	s.SimulatePullByID(Event{UUID: e1, Orgc: high, Published: true, Attributes: 3, Tags: syncTags}, 1)
	s.SimulatePush(Event{UUID: e6, Orgc: high, Published: true, Attributes: 2, Tags: syncTags})
}

func TestInteropWithLibzmq(t *testing.T) {
	requirePyZMQ(t)
	for _, tc := range []struct {
		name, user, password string
	}{
		{"NULL mechanism", "", ""},
		{"PLAIN authentication", "misp-sub", "s3cret-Zmq-pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{ZMQ: true, ZMQUser: tc.user, ZMQPassword: tc.password, HeartbeatEvery: -1})
			ref := NewServer(Options{})
			syncSequence(ref) // the same calls on a double without ZeroMQ: the expected frames
			want := ref.Published()
			ref.Close()

			sub := startPySub(t, s.ZMQEndpoint(), tc.user, tc.password, len(want), 60*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.WaitZMQSubscribers(ctx, "misp_json_event", 1); err != nil {
				t.Fatal(err)
			}
			syncSequence(s)
			got := sub.frames(t)
			if len(got) != len(want) {
				t.Fatalf("received %d messages, want %d", len(got), len(want))
			}
			sent := s.Published()
			for i := range want {
				if len(got[i]) != 1 {
					t.Fatalf("message %d has %d frames, MISP sends one", i, len(got[i]))
				}
				if string(got[i][0]) != string(sent[i].Frame()) {
					t.Errorf("message %d\n got %s\nwant %s", i, got[i][0], sent[i].Frame())
				}
				if sent[i].Topic != want[i].Topic {
					t.Errorf("message %d topic %s, want %s", i, sent[i].Topic, want[i].Topic)
				}
			}
		})
	}
	t.Run("PLAIN with a wrong password receives nothing", func(t *testing.T) {
		s := newTestServer(t, Options{ZMQ: true, ZMQUser: "misp-sub", ZMQPassword: "right", HeartbeatEvery: -1})
		sub := startPySub(t, s.ZMQEndpoint(), "misp-sub", "wrong", 1, 3*time.Second)
		eventually(t, "a refused handshake", func() bool { return s.ZMQStats().AuthFailures > 0 })
		syncSequence(s)
		if got := sub.frames(t); len(got) != 0 {
			t.Errorf("received %d messages with a wrong password", len(got))
		}
	})
}

func TestInteropPublisherRestart(t *testing.T) {
	requirePyZMQ(t)
	s := newTestServer(t, Options{ZMQ: true, ZMQUser: "misp-sub", ZMQPassword: "pw", HeartbeatEvery: -1})
	endpoint := s.ZMQEndpoint()
	sub := startPySub(t, endpoint, "misp-sub", "pw", 1, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitZMQSubscribers(ctx, "misp_json_event", 1); err != nil {
		t.Fatal(err)
	}
	s.RestartPublisher()
	if s.ZMQEndpoint() != endpoint || s.ZMQStats().Restarts != 1 {
		t.Fatalf("endpoint %s after restart, restarts %d", s.ZMQEndpoint(), s.ZMQStats().Restarts)
	}
	// libzmq reconnects and subscribes again by itself.
	if err := s.WaitZMQSubscribers(ctx, "misp_json_event", 1); err != nil {
		t.Fatal(err)
	}
	s.SimulatePull(Event{Orgc: s.AddOrg("P", ""), Published: true})
	got := sub.frames(t)
	if len(got) != 1 || string(got[0][0]) != string(s.Published()[0].Frame()) {
		t.Fatalf("after restart received %q", got)
	}
}

func TestPublisherSilentAndDropRate(t *testing.T) {
	s := newTestServer(t, Options{ZMQ: true, HeartbeatEvery: -1})
	p := s.AddOrg("P", "")
	s.SetPublisherSilent(true)
	s.SimulatePull(Event{Orgc: p, Published: true})
	if st := s.ZMQStats(); st.Silenced != 3 || st.Published != 0 {
		t.Errorf("silent: %+v", st)
	}
	s.SetPublisherSilent(false)
	s.SetZMQDropRate(1)
	s.SimulatePull(Event{Orgc: p, Published: true})
	if st := s.ZMQStats(); st.Dropped != 3 {
		t.Errorf("drop rate 1: %+v", st)
	}
	s.SetZMQDropRate(0)
	s.SimulatePull(Event{Orgc: p, Published: true})
	if st := s.ZMQStats(); st.Published != 3 {
		t.Errorf("back to normal: %+v", st)
	}
	// The in-process log keeps what the double meant to send.
	if n := len(s.Published()); n != 9 {
		t.Errorf("%d messages logged, want 9", n)
	}
}
