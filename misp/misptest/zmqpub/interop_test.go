package zmqpub

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interop with a real libzmq SUB: Debian's python3-zmq (pyzmq 24.0.1,
// libzmq 4.3.4), the same stack as the real MISP captures. The team brief
// requires /usr/bin/python3: the pyenv python3 on PATH does not see it.
const systemPython = "/usr/bin/python3"

func requirePyzmq(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(systemPython, "-c", "import zmq").CombinedOutput(); err != nil {
		t.Skipf("skipping real-libzmq interop: `%s -c 'import zmq'` failed (%v: %s); install Debian's python3-zmq to run it",
			systemPython, err, bytes.TrimSpace(out))
	}
}

// pyLine is one JSON line written by testdata/libzmq_sub.py.
type pyLine struct {
	Ready    bool     `json:"ready"`
	Zmq      string   `json:"zmq"`
	Libzmq   string   `json:"libzmq"`
	Frames   [][]byte `json:"frames"` // base64 in JSON
	Monitor  string   `json:"monitor"`
	Value    int      `json:"value"`
	Done     bool     `json:"done"`
	Received int      `json:"received"`
}

type pySub struct {
	lines chan pyLine

	mu       sync.Mutex
	monitors []string
}

// startPySub runs the libzmq SUB against endpoint. Credentials go through the
// environment, never the command line.
func startPySub(t *testing.T, endpoint, user, pass string, args ...string) *pySub {
	t.Helper()
	cmd := exec.Command(systemPython, append([]string{"testdata/libzmq_sub.py", endpoint, "--count", "1000000", "--timeout", "120"}, args...)...)
	cmd.Env = []string{"ZMQ_USERNAME=" + user, "ZMQ_PASSWORD=" + pass}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", systemPython, err)
	}
	s := &pySub{lines: make(chan pyLine, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l pyLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("libzmq_sub.py wrote %q: %v", sc.Text(), err)
				continue
			}
			if l.Monitor != "" {
				s.mu.Lock()
				s.monitors = append(s.monitors, l.Monitor)
				s.mu.Unlock()
			}
			s.lines <- l
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("libzmq_sub.py stderr:\n%s", stderr.String())
		}
	})
	first := s.next(t)
	if !first.Ready {
		t.Fatalf("libzmq_sub.py did not start: %+v", first)
	}
	t.Logf("libzmq SUB: pyzmq %s, libzmq %s", first.Zmq, first.Libzmq)
	return s
}

// next returns the next line of any kind.
func (s *pySub) next(t *testing.T) pyLine {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("libzmq_sub.py exited early")
		}
		return l
	case <-time.After(eventually):
		t.Fatalf("no output from libzmq_sub.py within %v", eventually)
		return pyLine{}
	}
}

// nextMessage returns the next received message, skipping monitor events.
func (s *pySub) nextMessage(t *testing.T) pyLine {
	t.Helper()
	for {
		if l := s.next(t); l.Frames != nil {
			return l
		}
	}
}

func (s *pySub) sawMonitor(event string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.monitors, event)
}

func TestLibzmqSubscriberReceivesExactFrames(t *testing.T) {
	requirePyzmq(t)
	// A real frame from the captures (sync/zmq, pull of event e1) and others.
	msgs := []struct {
		topic   string
		payload []byte
	}{
		{"misp_json_event", []byte(`{"Event":"853475bb-cc6b-4e07-b345-ed9e47520557","Server":"1","action":"add_from_connected_server"}`)},
		{"misp_json_event", []byte(`{"Event":4711,"Server":"2","action":"add_from_connected_server"}`)},
		{"misp_json_tag", []byte(`{"Tag": {"name": "admiralty-scale:source-reliability=\"a\"", "local": true}, "action": "attached to event"}`)},
		{"misp_json", bytes.Repeat([]byte(`{"Attribute":[]}`), 5000)}, // 80 kB, a long frame
		{"misp_json_audit", []byte("\x00\xff binary \xc3\xa9")},
	}
	tests := []struct {
		name, user, pass string
	}{
		{"NULL", "", ""},
		{"PLAIN with the right credentials", "misp-zmq", "zmq s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPublisher(t, Options{User: tt.user, Password: tt.pass, HeartbeatEvery: 200 * time.Millisecond}, defaultLimits())
			sub := startPySub(t, p.Endpoint(), tt.user, tt.pass, "--subscribe", "misp_json")
			waitSubscribed(t, p, "misp_json", 1)
			for _, m := range msgs {
				if err := p.Publish(m.topic, m.payload); err != nil {
					t.Fatal(err)
				}
			}
			got, heartbeat := 0, false
			for got < len(msgs) || !heartbeat {
				l := sub.nextMessage(t)
				if len(l.Frames) != 1 {
					t.Fatalf("libzmq received %d frames, want 1", len(l.Frames))
				}
				if bytes.HasPrefix(l.Frames[0], []byte(heartbeatTopic+" ")) {
					var hb struct {
						Status string `json:"status"`
						Uptime int64  `json:"uptime"`
					}
					if err := json.Unmarshal(l.Frames[0][len(heartbeatTopic)+1:], &hb); err != nil || hb.Status != heartbeatStatus((hb.Uptime/10)%5) {
						t.Fatalf("heartbeat %q: %v", l.Frames[0], err)
					}
					heartbeat = true
					continue
				}
				if got == len(msgs) {
					t.Fatalf("unexpected extra message %.60q", l.Frames[0])
				}
				want := append([]byte(msgs[got].topic+" "), msgs[got].payload...)
				if !bytes.Equal(l.Frames[0], want) {
					t.Fatalf("message %d: libzmq got %d bytes %.60q, want %d bytes %.60q", got, len(l.Frames[0]), l.Frames[0], len(want), want)
				}
				got++
			}
			if st := p.Stats(); st.AuthFailures != 0 || st.HandshakeFailures != 0 {
				t.Fatalf("Stats = %+v, want no refused handshake", st)
			}
		})
	}
}

func TestLibzmqWrongCredentialsGetNothing(t *testing.T) {
	requirePyzmq(t)
	const user, pass = "misp-zmq", "zmq s3cret"
	// What a real libzmq 4.3.4 PUB with mispzmq.py's ZAP set-up
	// (ThreadAuthenticator, configure_plain, plain_server) does, measured
	// with pyzmq on both sides: a wrong username or password is refused
	// once with EVENT_HANDSHAKE_FAILED_AUTH and the SUB never tries again;
	// a NULL SUB fails with EVENT_HANDSHAKE_FAILED_PROTOCOL.
	tests := []struct {
		name, user, pass string
		wantEvent        string // libzmq socket monitor event
		auth             bool   // counted as AuthFailures (else HandshakeFailures)
	}{
		{"a wrong password", user, "wrong", "EVENT_HANDSHAKE_FAILED_AUTH", true},
		{"a wrong username", "admin", pass, "EVENT_HANDSHAKE_FAILED_AUTH", true},
		{"no credentials at all (NULL)", "", "", "EVENT_HANDSHAKE_FAILED_PROTOCOL", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, logs := newTestPublisher(t, Options{User: user, Password: pass, HeartbeatEvery: 20 * time.Millisecond}, defaultLimits())
			sub := startPySub(t, p.Endpoint(), tt.user, tt.pass)
			publish := func() {
				if err := p.Publish("misp_json_event", []byte(`{"n":1}`)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "libzmq to report "+tt.wantEvent, func() bool {
				publish()
				return sub.sawMonitor(tt.wantEvent)
			})
			// Keep publishing for ten libzmq reconnect intervals (100 ms).
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				publish()
				time.Sleep(10 * time.Millisecond)
			}
			for {
				select {
				case l := <-sub.lines:
					if l.Frames != nil {
						t.Fatalf("a refused subscriber received %q", l.Frames)
					}
					continue
				default:
				}
				break
			}
			sub.mu.Lock()
			t.Logf("libzmq monitor events: %v", sub.monitors)
			sub.mu.Unlock()
			st := p.Stats()
			refused := st.HandshakeFailures
			if tt.auth {
				refused = st.AuthFailures
			}
			if refused == 0 || st.Subscribers != 0 || st.Published == 0 || st.Heartbeats == 0 {
				t.Fatalf("Stats = %+v: want the refusal counted, messages and heartbeats sent, no subscriber", st)
			}
			if tt.auth && refused != 1 {
				// Our ERROR "400" must read as a final ZAP refusal: libzmq
				// retries after a mere disconnect, not after this.
				t.Fatalf("libzmq tried %d times; against a real ZAP server it gives up after one refusal", refused)
			}
			if strings.Contains(logs.String(), pass) || (tt.pass != "" && strings.Contains(logs.String(), tt.pass)) {
				t.Fatalf("a password appears in the logs:\n%s", logs)
			}
		})
	}
}

func TestLibzmqSubscriberReconnectsAfterRestart(t *testing.T) {
	requirePyzmq(t)
	tests := []struct{ name, user, pass string }{
		{"NULL", "", ""},
		{"PLAIN", "misp-zmq", "zmq s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPublisher(t, Options{User: tt.user, Password: tt.pass}, defaultLimits())
			sub := startPySub(t, p.Endpoint(), tt.user, tt.pass, "--subscribe", "misp_json_event")
			for _, m := range []string{"before restart", "after restart"} {
				waitSubscribed(t, p, "misp_json_event", 1)
				if err := p.Publish("misp_json_event", []byte(m)); err != nil {
					t.Fatal(err)
				}
				if got := string(sub.nextMessage(t).Frames[0]); got != "misp_json_event "+m {
					t.Fatalf("got %q, want %q", got, m)
				}
				if m == "before restart" {
					if err := p.Restart(); err != nil {
						t.Fatal(err)
					}
				}
			}
			// libzmq keeps its PLAIN credentials across reconnects (unlike
			// zmq4's client, see TestZmq4SubscriberAcrossRestart).
			if st := p.Stats(); st.AuthFailures != 0 || st.Restarts != 1 {
				t.Fatalf("Stats = %+v", st)
			}
			if !sub.sawMonitor("EVENT_DISCONNECTED") {
				t.Fatal("libzmq did not notice the restart")
			}
		})
	}
}

func TestLibzmqHeartbeatingSubscriberStaysConnected(t *testing.T) {
	requirePyzmq(t)
	// ZMQ_HEARTBEAT_IVL=100ms, TIMEOUT=500ms: libzmq drops the connection
	// if nothing, not even a PONG, comes back within 500 ms of a PING. zmq4's
	// own PUB socket never answers PING, so such a subscriber would flap.
	p, _ := newTestPublisher(t, Options{}, defaultLimits())
	sub := startPySub(t, p.Endpoint(), "", "", "--heartbeat-ivl", "100", "--heartbeat-timeout", "500")
	waitSubscribed(t, p, "misp_json", 1)
	if err := p.Publish("misp_json", []byte("1")); err != nil {
		t.Fatal(err)
	}
	sub.nextMessage(t)
	time.Sleep(2 * time.Second) // four heartbeat timeouts without any message
	if sub.sawMonitor("EVENT_DISCONNECTED") {
		t.Fatal("libzmq dropped the connection: PINGs were not answered")
	}
	if err := p.Publish("misp_json", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if got := string(sub.nextMessage(t).Frames[0]); got != "misp_json 2" {
		t.Fatalf("got %q", got)
	}
	if st := p.Stats(); st.Subscribers != 1 {
		t.Fatalf("Stats = %+v, want the same single subscriber", st)
	}
}
