package misp

import (
	"context"
	"math"
	"sync"
	"time"
)

// Defaults of the adaptive concurrency limit (Options.MaxInFlight, Options.InitialInFlight).
const (
	// DefaultMaxInFlight caps the adaptive limit. A MISP's request workers (php-fpm's
	// pm.max_children) are rarely more than a few dozen; 64 in flight is well past the
	// capacity of any MISP we know of, so the cap only stops a runaway.
	DefaultMaxInFlight = 64
	// DefaultInitialInFlight is where the limit starts; slow start doubles it per window
	// until MISP shows queueing. One request alone measures MISP's unloaded round trip,
	// the base the queue estimate needs (starting at 2 on a one-worker MISP would take a
	// queued round trip for the base and overshoot).
	DefaultInitialInFlight = 1
)

// The controller's constants (measured with hack/bench -mode capacity; see its README
// section). A window is about three round trips; the limit moves once per window.
const (
	limiterMinWindow  = 50 * time.Millisecond
	limiterMaxWindow  = 2 * time.Second
	limiterMinSamples = 3
	// Vegas thresholds, in requests queued at MISP: grow while fewer than alpha wait on
	// average (MISP's workers may idle between two of our requests), shrink past beta.
	limiterAlpha = 0.5
	limiterBeta  = 2.0
	// limiterNoise is the part of a round trip above base that is not taken for a queue:
	// on a fast MISP (a few ms a call), or from a curator on a busy node, the client's own
	// scheduling and the network vary by that much, and reading it as queueing would hold
	// the limit far below what MISP serves. On a real MISP (20–300 ms a call) it lets at
	// most one more request wait.
	limiterNoise = 5 * time.Millisecond
	// limiterBackoff multiplies the limit after a window with an overload answer (429,
	// 5xx, a timeout or a refused connection): the loss signal of AIMD.
	limiterBackoff = 0.7
	// limiterProbeEvery is how often the limit drops to a quarter for one window to
	// measure MISP's round trip without our own queue in it (BBR's ProbeRTT): the base
	// follows MISP when it gets slower, and cannot drift up with our queue.
	limiterProbeEvery = 30 * time.Second
	// limiterProbeSoon brings the next probe forward after the limit shrank on latency:
	// MISP may have got slower rather than busier, and only a probe tells which.
	limiterProbeSoon = 3 * time.Second
)

// outcome classifies one attempt for the limiter.
type outcome int

const (
	outcomeOK       outcome = iota // an answer: its round trip counts
	outcomeOverload                // 429, 5xx, timeout, refused or reset connection
	outcomeIgnore                  // the caller gave up: says nothing about MISP
)

// inflightLimiter is a per-client adaptive concurrency limit: a semaphore whose size
// follows MISP's capacity. Vegas-style: with base the mean round trip of a MISP that is not
// queueing our requests and R the mean round trip of the last window, I·(1 − base/R) of
// the I requests in flight are waiting in MISP's queue rather than being served. The limit
// grows while that queue is under alpha and the limit was used (doubling at first: slow
// start), holds between alpha and beta, and shrinks past beta, so MISP's workers stay busy
// with a short queue in front of them. Overload answers cut it multiplicatively (AIMD's
// loss signal). Requests beyond the limit wait here, in order, instead of in MISP.
//
// base is measured, not guessed: a window whose mean is lower than base lowers it at once
// (MISP got faster), and a probe (limiterProbeEvery, and at the end of slow start) drops
// the limit to a quarter for one window and takes the mean round trip of the requests sent
// during it — our own queue has drained by then — as the new base (MISP got slower, or our
// earlier base had a queue in it). Means, not minimums: MISP's service times vary, and the
// fastest answer would make a normal spread look like a queue.
type inflightLimiter struct {
	mu       sync.Mutex
	now      func() time.Time
	min, max float64
	onChange func(limit int) // the gauge; called with mu held

	limit    float64
	inflight int
	waiters  []chan struct{} // FIFO; a closed channel is a granted slot

	base      time.Duration // 0 until the first window
	lastRTT   time.Duration // mean round trip of the last window
	slowStart bool          // double per window until the first sign of a queue
	probing   bool
	probeFrom time.Time // requests sent from then on count in the probe window
	saved     float64   // the limit before the probe
	nextProbe time.Time
	lastProbe time.Time // when the last probe ended

	win window
}

// window accumulates the samples between two updates of the limit.
type window struct {
	start       time.Time
	n           int
	sum         time.Duration
	inflightSum int // in flight at each sample's completion (itself included)
	maxInflight int
	overload    int
}

func newInflightLimiter(initial, maxLimit int, now func() time.Time, onChange func(int)) *inflightLimiter {
	if maxLimit < 1 {
		maxLimit = 1
	}
	initial = min(max(initial, 1), maxLimit)
	l := &inflightLimiter{now: now, min: 1, max: float64(maxLimit), limit: float64(initial), slowStart: true, onChange: onChange}
	l.win.start = now()
	l.nextProbe = l.win.start.Add(limiterProbeEvery)
	if onChange != nil {
		onChange(initial)
	}
	return l
}

// Limit is the current number of requests allowed in flight.
func (l *inflightLimiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// acquire waits for a slot; the caller must call release exactly once after a nil error.
func (l *inflightLimiter) acquire(ctx context.Context) error {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inflight < int(l.limit) {
		l.inflight++
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return context.Cause(ctx)
			}
		}
		// Granted while we were giving up: hand the slot on.
		l.inflight--
		l.grantLocked()
		return context.Cause(ctx)
	}
}

// release returns a slot and records how the attempt went and how long it took.
func (l *inflightLimiter) release(o outcome, rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recordLocked(o, rtt, l.now())
	l.inflight--
	l.grantLocked()
}

// grantLocked hands free slots to the oldest waiters.
func (l *inflightLimiter) grantLocked() {
	for len(l.waiters) > 0 && l.inflight < int(l.limit) {
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
		l.inflight++
	}
}

func (l *inflightLimiter) recordLocked(o outcome, rtt time.Duration, now time.Time) {
	w := &l.win
	switch {
	case o == outcomeIgnore:
	case o == outcomeOverload:
		w.overload++
	case l.probing && now.Add(-rtt).Before(l.probeFrom):
		// Sent before the probe's limit applied: it may have queued behind our own requests.
	default:
		w.n++
		w.sum += max(rtt, time.Microsecond)
		w.inflightSum += l.inflight
		w.maxInflight = max(w.maxInflight, l.inflight)
	}
	age := now.Sub(w.start)
	length := min(max(3*l.base, limiterMinWindow), limiterMaxWindow)
	if l.probing {
		length = 0 // a few answers to requests sent under the probe's limit are enough
	}
	switch {
	case w.overload > 0 && age >= limiterMinWindow:
	case w.n >= limiterMinSamples && age >= length:
	case age >= limiterMaxWindow && (w.n > 0 || w.overload > 0):
	default:
		return
	}
	l.updateLocked(now)
	l.win = window{start: now}
}

// updateLocked moves the limit at the end of a window.
func (l *inflightLimiter) updateLocked(now time.Time) {
	w := &l.win
	old := int(l.limit)
	switch {
	case w.overload > 0:
		if l.probing {
			l.probing, l.limit = false, l.saved
		}
		l.slowStart = false
		l.limit = max(l.min, math.Floor(l.limit*limiterBackoff))
	case w.n == 0:
	case l.probing:
		l.probing, l.limit = false, l.saved
		l.base = w.sum / time.Duration(w.n)
		l.nextProbe, l.lastProbe = now.Add(limiterProbeEvery), now
	default:
		r := w.sum / time.Duration(w.n)
		l.lastRTT = r
		if l.base == 0 || r < l.base {
			if r < l.base*4/5 {
				// MISP got faster: this window may still hold some of our queue, so
				// measure the new base properly soon.
				l.probeSoonLocked(now)
			}
			l.base = r
		}
		inflight := float64(w.inflightSum) / float64(w.n)
		queue := inflight * max(0, 1-float64(l.base+limiterNoise)/float64(r))
		used := w.maxInflight >= int(l.limit)
		switch {
		case queue < limiterAlpha && used:
			if l.slowStart {
				l.limit *= 2
			} else {
				l.limit++
			}
		case queue > limiterBeta:
			l.endSlowStartLocked(now)
			if r > 2*l.base && now.Sub(l.lastProbe) >= limiterProbeSoon {
				// The round trip doubled at least: our queue is that deep, or MISP got
				// slower. Probe before cutting, keeping the limit: cutting against a stale
				// base would starve a slower MISP for many windows. A probe that finds the
				// base unchanged lets the next windows cut as usual.
				l.nextProbe = now
				break
			}
			l.limit -= max(1, math.Floor((queue-limiterBeta)/2))
			l.probeSoonLocked(now)
		case queue >= limiterAlpha:
			l.endSlowStartLocked(now)
		}
		l.limit = min(max(l.limit, l.min), l.max)
		if !l.slowStart && !now.Before(l.nextProbe) && l.limit > l.min {
			l.probing, l.saved = true, l.limit
			l.limit = max(l.min, math.Floor(l.limit/4))
			l.probeFrom = now
		}
	}
	if n := int(l.limit); n != old {
		if l.onChange != nil {
			l.onChange(n)
		}
		l.grantLocked()
	}
}

// probeSoonLocked brings the next probe forward to limiterProbeSoon from now at most.
func (l *inflightLimiter) probeSoonLocked(now time.Time) {
	if soon := now.Add(limiterProbeSoon); soon.Before(l.nextProbe) {
		l.nextProbe = soon
	}
}

// endSlowStartLocked ends slow start and probes at once: the base measured so far may
// have had a queue in it (the initial limit can be more than a small MISP serves at once).
func (l *inflightLimiter) endSlowStartLocked(now time.Time) {
	if l.slowStart {
		l.slowStart = false
		l.nextProbe = now
	}
}

// limitedAttempt runs one attempt inside the concurrency limit and reports its outcome to
// the limiter. The error is only that of waiting for a slot (the caller's context ended).
func (c *Client) limitedAttempt(ctx context.Context, req request, payload []byte) (attemptResult, error) {
	if c.inflight == nil {
		return c.attempt(ctx, req, payload), nil
	}
	if err := c.inflight.acquire(ctx); err != nil {
		return attemptResult{}, err
	}
	start := time.Now()
	res := c.attempt(ctx, req, payload)
	c.inflight.release(classifyAttempt(ctx, res), time.Since(start))
	return res, nil
}

// classifyAttempt tells the limiter what an attempt says about MISP's load: 429 and 5xx
// answers (MISP's rate limit, php-fpm or the proxy in front of it giving up), attempt
// timeouts and failed connections are overload; an answer of any other status is a round
// trip; a canceled caller says nothing.
func classifyAttempt(ctx context.Context, res attemptResult) outcome {
	if ctx.Err() != nil {
		return outcomeIgnore
	}
	if res.err != nil {
		if permanent(res.err) {
			return outcomeIgnore
		}
		return outcomeOverload
	}
	st := res.resp.status
	if st < 0 {
		st = -st // an oversized answer: still a round trip
	}
	if st == 429 || st >= 500 {
		return outcomeOverload
	}
	return outcomeOK
}
