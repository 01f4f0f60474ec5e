package zmqpub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// eventually is the bound for conditions that must become true. It is
// generous on purpose: tests share a loaded 2-core machine.
const eventually = 15 * time.Second

// logBuffer collects a publisher's log lines; tests check them for secrets.
type logBuffer struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Log(line)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// newTestPublisher starts a publisher with test limits and closes it at the end.
func newTestPublisher(t *testing.T, opts Options, lim limits) (*Publisher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{t: t}
	if opts.Logf == nil {
		opts.Logf = logs.logf
	}
	if opts.HeartbeatEvery == 0 {
		opts.HeartbeatEvery = -1 // tests opt in to heartbeats
	}
	p, err := newWithLimits(opts, lim)
	if err != nil {
		t.Fatalf("new publisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, logs
}

// testSub is a zmq4 SUB whose messages are pumped into a channel, because
// zmq4's Recv has no timeout.
type testSub struct {
	sock zmq4.Socket
	msgs chan zmq4.Msg
	errs chan error
}

// dialSub connects a fresh zmq4 SUB (a fresh security value too: zmq4's PLAIN
// client forgets its credentials after one handshake, misp-api.md §1.3).
func dialSub(t *testing.T, endpoint string, sec zmq4.Security, prefixes ...string) (*testSub, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := []zmq4.Option{zmq4.WithDialerMaxRetries(2), zmq4.WithDialerRetry(50 * time.Millisecond)}
	if sec != nil {
		opts = append(opts, zmq4.WithSecurity(sec))
	}
	sock := zmq4.NewSub(ctx, opts...)
	if err := sock.Dial(endpoint); err != nil {
		cancel()
		_ = sock.Close()
		return nil, err
	}
	s := startTestSub(t, sock, cancel)
	for _, prefix := range prefixes {
		if err := sock.SetOption(zmq4.OptionSubscribe, prefix); err != nil {
			t.Fatalf("subscribe %q: %v", prefix, err)
		}
	}
	return s, nil
}

func startTestSub(t *testing.T, sock zmq4.Socket, cancel context.CancelFunc) *testSub {
	s := &testSub{sock: sock, msgs: make(chan zmq4.Msg, 4096), errs: make(chan error, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := sock.Recv()
			if err != nil {
				select {
				case s.errs <- err:
				default:
				}
				if errorsIsContextDone(err) {
					return
				}
				continue
			}
			s.msgs <- msg
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = sock.Close()
		<-done
	})
	return s
}

func errorsIsContextDone(err error) bool {
	return err == context.Canceled || err == context.DeadlineExceeded
}

func mustDialSub(t *testing.T, endpoint string, sec zmq4.Security, prefixes ...string) *testSub {
	t.Helper()
	s, err := dialSub(t, endpoint, sec, prefixes...)
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	return s
}

// next returns the next message, failing the test after the eventually bound.
func (s *testSub) next(t *testing.T) zmq4.Msg {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(eventually):
		t.Fatalf("no message within %v", eventually)
		return zmq4.Msg{}
	}
}

// nextSkipping returns the next message whose topic is not skipTopic.
func (s *testSub) nextSkipping(t *testing.T, skipTopic string) zmq4.Msg {
	t.Helper()
	for {
		m := s.next(t)
		if topicOf(m) != skipTopic {
			return m
		}
	}
}

// topicOf splits a MISP frame on its first space, as MISP's sub.py does.
func topicOf(m zmq4.Msg) string {
	if len(m.Frames) == 0 {
		return ""
	}
	topic, _, _ := strings.Cut(string(m.Frames[0]), " ")
	return topic
}

func waitSubscribed(t *testing.T, p *Publisher, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.WaitSubscribed(ctx, topic, n); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the eventually bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", eventually, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
