package misp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a settable clock for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// simServer is a discrete-event model of a MISP with workers request workers serving in
// arrival order, driven by a client that always has work (a backlog): as many requests as
// the limiter allows are in flight. It runs on simulated time, so it is exact and fast.
type simServer struct {
	t       *testing.T
	clk     *fakeClock
	l       *inflightLimiter
	workers int
	service func(now time.Time) time.Duration
	// overload answers an attempt with 503 instead of serving it when it returns true.
	overload func(now time.Time) bool
}

type simRequest struct {
	sent, end time.Time
}

// run simulates until the clock reaches end, returning the completed requests.
func (s *simServer) run(end time.Time) []simRequest {
	var out []simRequest
	type inService struct{ sent, end time.Time }
	var serving []inService
	var waiting []time.Time
	for s.clk.t.Before(end) {
		// Fill the limit.
		for s.l.inflightNow() < s.l.Limit() {
			if err := s.l.acquire(context.Background()); err != nil {
				s.t.Fatal(err)
			}
			if s.overload != nil && s.overload(s.clk.t) {
				s.l.release(outcomeOverload, time.Millisecond)
				continue
			}
			waiting = append(waiting, s.clk.t)
		}
		for len(serving) < s.workers && len(waiting) > 0 {
			serving = append(serving, inService{sent: waiting[0], end: s.clk.t.Add(s.service(s.clk.t))})
			waiting = waiting[1:]
		}
		if len(serving) == 0 {
			s.clk.t = s.clk.t.Add(time.Millisecond)
			continue
		}
		sort.Slice(serving, func(i, j int) bool { return serving[i].end.Before(serving[j].end) })
		next := serving[0]
		serving = serving[1:]
		s.clk.t = next.end
		s.l.release(outcomeOK, next.end.Sub(next.sent))
		out = append(out, simRequest{sent: next.sent, end: next.end})
	}
	return out
}

func (l *inflightLimiter) inflightNow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// jittered is a service time uniform in d·[0.8, 1.2], seeded.
func jittered(seed uint64, d func(time.Time) time.Duration) func(time.Time) time.Duration {
	rng := rand.New(rand.NewPCG(seed, 1))
	return func(now time.Time) time.Duration {
		return time.Duration(float64(d(now)) * (0.8 + 0.4*rng.Float64()))
	}
}

func constant(d time.Duration) func(time.Time) time.Duration {
	return func(time.Time) time.Duration { return d }
}

// stats of the requests completed in [from, to).
func between(reqs []simRequest, from, to time.Time) (perSecond float64, p99 time.Duration) {
	var lat []time.Duration
	for _, r := range reqs {
		if !r.end.Before(from) && r.end.Before(to) {
			lat = append(lat, r.end.Sub(r.sent))
		}
	}
	if len(lat) == 0 {
		return 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(len(lat)) / to.Sub(from).Seconds(), lat[len(lat)*99/100]
}

func TestLimiterFindsMISPCapacity(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		service time.Duration
	}{
		{"one worker at 70ms", 1, 70 * time.Millisecond},
		{"two workers at 70ms", 2, 70 * time.Millisecond},
		{"eight workers at 70ms", 8, 70 * time.Millisecond},
		{"eight workers at 300ms", 8, 300 * time.Millisecond},
		{"two workers at 2ms", 2, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_000_000, 0)}
			start := clk.t
			l := newInflightLimiter(DefaultInitialInFlight, DefaultMaxInFlight, clk.now, nil)
			s := &simServer{t: t, clk: clk, l: l, workers: tt.workers, service: jittered(1, constant(tt.service))}
			reqs := s.run(start.Add(60 * time.Second))
			capacity := float64(tt.workers) / tt.service.Seconds()
			got, p99 := between(reqs, start.Add(20*time.Second), start.Add(60*time.Second))
			if got < 0.9*capacity {
				t.Errorf("throughput %.1f/s, want ≥ 90%% of MISP's %.1f/s (limit %d)", got, capacity, l.Limit())
			}
			// A tight client keeping every worker busy sees about one service time; the
			// limiter may add a short queue (beta requests, and what limiterNoise hides)
			// but no more.
			maxP99 := time.Duration(float64(tt.service)*1.2*(1+(limiterBeta+2)/float64(tt.workers))) + 2*limiterNoise
			if p99 > maxP99 {
				t.Errorf("p99 latency %v, want ≤ %v (limit %d)", p99, maxP99, l.Limit())
			}
			maxLimit := tt.workers + int(limiterBeta) + 2 + int(float64(tt.workers)*limiterNoise.Seconds()/tt.service.Seconds())
			if lim := l.Limit(); lim < tt.workers || lim > maxLimit {
				t.Errorf("limit %d, want between the %d workers and %d", lim, tt.workers, maxLimit)
			}
		})
	}
}

func TestLimiterFollowsMISPWhenItSlowsDownAndRecovers(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	start := clk.t
	slow, fast := start.Add(30*time.Second), start.Add(90*time.Second)
	service := func(now time.Time) time.Duration {
		if !now.Before(slow) && now.Before(fast) {
			return 280 * time.Millisecond
		}
		return 70 * time.Millisecond
	}
	l := newInflightLimiter(DefaultInitialInFlight, DefaultMaxInFlight, clk.now, nil)
	s := &simServer{t: t, clk: clk, l: l, workers: 8, service: jittered(2, service)}
	reqs := s.run(start.Add(150 * time.Second))

	for _, c := range []struct {
		what     string
		from, to time.Time
		capacity float64
		service  time.Duration
	}{
		{"before", start.Add(15 * time.Second), slow, 8 / 0.070, 70 * time.Millisecond},
		{"slow, after 5s to adapt", slow.Add(5 * time.Second), fast, 8 / 0.280, 280 * time.Millisecond},
		{"fast again, after 10s", fast.Add(10 * time.Second), start.Add(150 * time.Second), 8 / 0.070, 70 * time.Millisecond},
	} {
		got, p99 := between(reqs, c.from, c.to)
		if got < 0.85*c.capacity {
			t.Errorf("%s: %.1f/s, want ≥ 85%% of %.1f/s", c.what, got, c.capacity)
		}
		if p99 > 2*c.service {
			t.Errorf("%s: p99 %v, want ≤ 2× the service time %v", c.what, p99, c.service)
		}
	}
	// While it adapts, latency stays far from any timeout: bounded by the queue the limit
	// allowed when MISP was fast (about 11 requests over 8 workers at 280ms).
	if got, p99 := between(reqs, slow, slow.Add(5*time.Second)); p99 > time.Second || got < 0.4*8/0.280 {
		t.Errorf("in the first 5s of the slowdown: %.1f/s, p99 %v; want ≥ 40%% of MISP's capacity and under 1s", got, p99)
	}
}

func TestLimiterBacksOffOnOverloadAndNeverBelowOne(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	var gauge []int
	l := newInflightLimiter(40, 64, clk.now, func(n int) { gauge = append(gauge, n) })
	want := []int{40}
	for lim := 40.0; lim > 1; {
		lim = max(1, float64(int(lim*limiterBackoff)))
		want = append(want, int(lim))
	}
	for i := 0; i < 20; i++ {
		if err := l.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(limiterMinWindow)
		l.release(outcomeOverload, time.Millisecond)
	}
	if l.Limit() != 1 {
		t.Errorf("limit after 20 overloaded windows = %d, want 1", l.Limit())
	}
	if len(gauge) != len(want) {
		t.Fatalf("gauge went %v, want %v", gauge, want)
	}
	for i := range want {
		if gauge[i] != want[i] {
			t.Fatalf("gauge went %v, want %v", gauge, want)
		}
	}
}

func TestLimiterIgnoresCanceledAttemptsAndUnusedLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newInflightLimiter(4, 64, clk.now, nil)
	// One request at a time, fast answers: the limit of 4 is never used, so it must not
	// grow (a quiet client must not come back to a busy MISP with a huge limit).
	for i := 0; i < 200; i++ {
		l.acquire(context.Background())
		clk.t = clk.t.Add(20 * time.Millisecond)
		l.release(outcomeOK, 20*time.Millisecond)
	}
	if l.Limit() != 4 {
		t.Errorf("limit %d after 200 sequential calls, want 4 (unused)", l.Limit())
	}
	for i := 0; i < 200; i++ {
		l.acquire(context.Background())
		clk.t = clk.t.Add(time.Second)
		l.release(outcomeIgnore, 30*time.Second)
	}
	if l.Limit() != 4 {
		t.Errorf("limit %d after canceled attempts, want 4", l.Limit())
	}
}

func TestLimiterQueuesInOrderAndCancels(t *testing.T) {
	l := newInflightLimiter(1, 1, time.Now, nil)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	var order []int
	got := make(chan int, 3)
	ctx, cancel := context.WithCancel(context.Background())
	canceled := make(chan error, 1)
	go func() { canceled <- l.acquire(ctx) }()
	waitFor(t, func() bool { return l.waiting() == 1 })
	for i := 1; i <= 2; i++ {
		go func() {
			if err := l.acquire(context.Background()); err == nil {
				got <- i
			}
		}()
		waitFor(t, func() bool { return l.waiting() == i+1 })
	}
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait returned %v", err)
	}
	l.release(outcomeIgnore, 0)
	order = append(order, <-got)
	l.release(outcomeIgnore, 0)
	order = append(order, <-got)
	if order[0] != 1 || order[1] != 2 {
		t.Errorf("slots granted in order %v, want [1 2]", order)
	}
	l.release(outcomeIgnore, 0)
	if l.inflightNow() != 0 {
		t.Errorf("%d in flight after every release", l.inflightNow())
	}
}

func (l *inflightLimiter) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
}

// A MISP answering 503 makes the client cut its limit, and the gauge shows it.
func TestClientLimitFollowsOverloadAnswers(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(2 * limiterMinWindow) // every answer closes a window
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	c, err := New(Options{URL: srv.URL, APIKey: testKey, MaxRetries: -1, InitialInFlight: 16, Instance: "ns/misp",
		Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 {
		return testutil.ToFloat64(c.metrics.limit.WithLabelValues("ns/misp"))
	}
	if gauge() != 16 {
		t.Fatalf("gauge %v at start, want 16", gauge())
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Version(context.Background()); err == nil {
			t.Fatal("a 503 answer gave no error")
		}
	}
	if got := c.inflight.Limit(); got != 4 || gauge() != 4 {
		t.Errorf("limit %d, gauge %v after three 503 windows, want 4 (16·0.7³, floored)", got, gauge())
	}
}

func TestClassifyAttempt(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	answer := func(st int) attemptResult { return attemptResult{resp: &response{status: st}} }
	tests := []struct {
		name string
		ctx  context.Context
		res  attemptResult
		want outcome
	}{
		{"200 is a round trip", context.Background(), answer(200), outcomeOK},
		{"404 is a round trip (MISP worked it out)", context.Background(), answer(404), outcomeOK},
		{"403 saved:false is a round trip", context.Background(), answer(403), outcomeOK},
		{"an oversized answer is a round trip", context.Background(), answer(-200), outcomeOK},
		{"429 is overload", context.Background(), answer(429), outcomeOverload},
		{"500 is overload", context.Background(), answer(500), outcomeOverload},
		{"503 from nginx is overload", context.Background(), answer(503), outcomeOverload},
		{"504 is overload", context.Background(), answer(504), outcomeOverload},
		{"a timeout or refused connection is overload", context.Background(), attemptResult{err: errors.New("dial tcp: connection refused")}, outcomeOverload},
		{"a request that cannot be built says nothing", context.Background(), attemptResult{err: permanentError{errors.New("bad")}}, outcomeIgnore},
		{"a canceled caller says nothing", canceled, answer(503), outcomeIgnore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyAttempt(tt.ctx, tt.res); got != tt.want {
				t.Errorf("classifyAttempt = %v, want %v", got, tt.want)
			}
		})
	}
}
