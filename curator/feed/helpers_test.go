package feed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// eventually bounds conditions that must become true. It is generous on
// purpose: tests share a loaded 2-core machine. Conditions are polled, never
// slept on.
const eventually = 20 * time.Second

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", eventually, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a logr sink that keeps every line (all verbosities), so tests
// can check what is logged, and that no secret is.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger(t *testing.T) logr.Logger {
	return funcr.New(func(prefix, args string) {
		line := prefix + " " + args
		b.mu.Lock()
		b.lines = append(b.lines, line)
		b.mu.Unlock()
		t.Log(line)
	}, funcr.Options{Verbosity: 10})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func (b *logBuffer) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// harness runs a Subscriber for one test.
type harness struct {
	t        *testing.T
	sub      *Subscriber
	reg      *prometheus.Registry
	logs     *logBuffer
	cancel   context.CancelFunc
	done     chan error
	mu       sync.Mutex
	connects []State // OnConnect calls
}

// startSubscriber fills in test defaults (short backoff, metrics, captured
// logs), starts Run and stops it at the end of the test.
func startSubscriber(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), logs: &logBuffer{}, done: make(chan error, 1)}
	if opts.Instance == "" {
		opts.Instance = "misp/test"
	}
	if opts.Backoff == (Backoff{}) {
		opts.Backoff = Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	opts.Metrics = NewMetrics(h.reg)
	opts.Logger = h.logs.logger(t)
	userHook := opts.OnConnect
	opts.OnConnect = func(st State) {
		h.mu.Lock()
		h.connects = append(h.connects, st)
		h.mu.Unlock()
		if userHook != nil {
			userHook(st)
		}
	}
	sub, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sub = sub
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- sub.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run returned %v", err)
		}
		h.done <- err // stop may be called twice
	case <-time.After(eventually):
		h.t.Errorf("Run did not return within %s of cancel", eventually)
	}
}

func (h *harness) onConnectCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.connects)
}

func (h *harness) waitConnects(n int) {
	h.t.Helper()
	waitUntil(h.t, fmt.Sprintf("%d connections (OnConnect calls)", n), func() bool {
		return h.onConnectCalls() >= n && h.sub.State().Phase == PhaseConnected
	})
}

// next returns the next queued message.
func (h *harness) next() Message {
	h.t.Helper()
	select {
	case m, ok := <-h.sub.Messages():
		if !ok {
			h.t.Fatal("Messages closed")
		}
		return m
	case <-time.After(eventually):
		h.t.Fatalf("no message within %s; state: %+v", eventually, h.sub.State())
	}
	return Message{}
}

// metric reads one counter or gauge of the test's registry.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	var c prometheus.Collector
	m := h.sub.opts.Metrics
	vecs := map[string]interface {
		prometheus.Collector
	}{
		"messages": m.messages, "parse_errors": m.parseErrors, "dropped": m.dropped,
		"reconnects": m.reconnects, "dial_failures": m.dialFailures, "connects": m.connects,
		"connected": m.connected, "queue_depth": m.queueDepth,
	}
	switch v := vecs[name].(type) {
	case *prometheus.CounterVec:
		c = v.WithLabelValues(append([]string{h.sub.opts.Instance}, labels...)...)
	case *prometheus.GaugeVec:
		c = v.WithLabelValues(append([]string{h.sub.opts.Instance}, labels...)...)
	default:
		h.t.Fatalf("unknown metric %q", name)
	}
	return testutil.ToFloat64(c)
}
