package catchup

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
)

// Defaults for zero Options fields.
const (
	DefaultInterval      = 5 * time.Minute
	DefaultJitter        = 0.1
	DefaultMinSpacing    = 10 * time.Second
	DefaultLookback      = 24 * time.Hour
	DefaultSafetyMargin  = 2 * time.Minute
	DefaultPageSize      = 500
	DefaultMaxOrgQueries = 5
	DefaultRetryBase     = 5 * time.Second
	DefaultMaxUnsettled  = 100000
	DefaultMaxBadRows    = 10
)

// Enqueuer is the part of the engine catch-up feeds; *engine.Engine satisfies it.
type Enqueuer interface {
	Enqueue(eventUUID string, hint engine.Hint)
}

// Options configure a Runner. Searcher, Index and Engine are required.
type Options struct {
	// Instance names the MISPInstance ("namespace/name") in logs and metrics.
	Instance string
	Searcher Searcher
	// Fields are the clocks each pass scans (default: timestamp only); the curator passes
	// MISPSearcher.Fields().
	Fields []TimeField
	Index  *index.Index
	Engine Enqueuer
	// Sharers, when set, finds the sharing organisation of pushed events from their owner
	// org id (policies with sharingOrganisations); the engine's table is meant.
	Sharers engine.Sharers

	// Interval between passes (default 5m), jittered by ±Jitter (default 0.1).
	Interval time.Duration
	Jitter   float64
	// MinSpacing: a Trigger less than this after the start of the previous pass waits
	// (default 10s), so a flapping feed does not turn into a flood of searches.
	MinSpacing time.Duration
	// Lookback bounds the first pass without a watermark and re-curations (default 24h).
	Lookback time.Duration
	// SafetyMargin is subtracted from the watermark (default 2m, see the package doc).
	SafetyMargin time.Duration
	// PageSize of the index searches (default 500).
	PageSize int
	// MaxOrgQueries: a re-curation of at most this many organisations searches them one by
	// one with MISP's org filter; more run one search filtered here (default 5).
	MaxOrgQueries int
	// RetryBase is the first wait after a failed pass (default 5s), doubled per failure
	// up to Interval.
	RetryBase time.Duration
	// MaxUnsettled bounds the events tracked between Enqueue and Settled (default 100,000).
	MaxUnsettled int
	// MaxBadRows bounds the index rows one search may skip because MISP cannot serve them
	// (default 10); more mean MISP itself is failing, and the pass fails instead.
	MaxBadRows int

	// Watermark returns the persisted watermark (zero: none); called once by Run, retried
	// until it succeeds.
	Watermark func(ctx context.Context) (time.Time, error)
	// OnProgress is called after every complete pass with what to persist.
	OnProgress func(Progress)

	Now     func() time.Time
	Rand    func() float64 // [0,1), for the jitter; default math/rand/v2
	Logger  logr.Logger
	Metrics *Metrics
}

// Progress is what a pass leaves for the status.
type Progress struct {
	// Watermark to persist: the start of the last complete pass, held back to the pass
	// that first saw an event whose curation has not succeeded yet.
	Watermark     time.Time
	LastRun       time.Time
	EventsScanned int64
	// SkippedRows are the index rows the pass could not read and skipped (logged with
	// their event ids).
	SkippedRows int64
}

// Runner is the catch-up of one MISPInstance. Create it with New and start it with Run;
// Trigger, Recurate and Settled are safe for concurrent use and never block.
type Runner struct {
	opts Options
	log  logr.Logger

	trigger chan struct{}
	wake    chan struct{}

	mu          sync.Mutex
	recurate    map[string]bool
	unsettled   map[string]*unsettled
	wm          time.Time // where the next pass scans from (before the margin)
	rescan      time.Time // Rescan: the next pass scans from here if it is earlier
	skipped     int64     // index rows skipped since the current pass started
	full        bool      // MaxUnsettled reached (logged once)
	lastStarted time.Time
}

// unsettled is an event handed to the engine (or failed in it) whose curation did not
// succeed yet.
type unsettled struct {
	hold   time.Time // the watermark the pass that found it scanned from; zero: holds nothing
	added  time.Time
	failed bool // the engine gave up on it: re-enqueue at the next pass
}

// New checks the options and returns a Runner.
func New(opts Options) (*Runner, error) {
	if opts.Searcher == nil || opts.Index == nil || opts.Engine == nil {
		return nil, errors.New("catchup: Options.Searcher, Index and Engine are required")
	}
	if len(opts.Fields) == 0 {
		opts.Fields = []TimeField{FieldTimestamp}
	}
	setDefault(&opts.Interval, DefaultInterval)
	setDefault(&opts.MinSpacing, DefaultMinSpacing)
	setDefault(&opts.Lookback, DefaultLookback)
	setDefault(&opts.SafetyMargin, DefaultSafetyMargin)
	setDefault(&opts.PageSize, DefaultPageSize)
	setDefault(&opts.MaxOrgQueries, DefaultMaxOrgQueries)
	setDefault(&opts.RetryBase, DefaultRetryBase)
	setDefault(&opts.MaxUnsettled, DefaultMaxUnsettled)
	setDefault(&opts.MaxBadRows, DefaultMaxBadRows)
	if opts.Jitter <= 0 || opts.Jitter >= 1 {
		opts.Jitter = DefaultJitter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Watermark == nil {
		opts.Watermark = func(context.Context) (time.Time, error) { return time.Time{}, nil }
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	opts.Metrics.init(opts.Instance)
	return &Runner{
		opts:      opts,
		log:       log.WithValues("instance", opts.Instance),
		trigger:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		recurate:  map[string]bool{},
		unsettled: map[string]*unsettled{},
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Trigger asks for a pass soon (after a ZeroMQ (re)connect: what was published while
// disconnected is lost).
func (r *Runner) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Rescan asks for one pass soon that scans the look-back window (from now − Lookback, or
// the watermark if that is earlier): after a dry run ends, the events that arrived during
// it were only logged, and the watermark moved past them.
func (r *Runner) Rescan() {
	since := r.opts.Now().Add(-r.opts.Lookback)
	r.mu.Lock()
	if r.rescan.IsZero() || since.Before(r.rescan) {
		r.rescan = since
	}
	r.mu.Unlock()
	r.Trigger()
}

// Recurate asks for the events of these organisations within Lookback to be curated
// again (index.Diff after a trust change). Requests are merged.
func (r *Runner) Recurate(orgs []string) {
	if len(orgs) == 0 {
		return
	}
	r.mu.Lock()
	for _, o := range orgs {
		r.recurate[o] = true
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Settled is told the end of every curation of the instance's engine (engine.Outcome):
// err is Outcome.Err. A success, or a failure that retrying cannot fix (the event is gone,
// a permission is missing), forgets the event; any other failure is retried at the next
// pass and holds the persisted watermark back.
func (r *Runner) Settled(eventUUID string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.unsettled[eventUUID]
	if err == nil || !retryable(err) {
		if u != nil {
			delete(r.unsettled, eventUUID)
		}
		r.opts.Metrics.setHeld(r.opts.Instance, len(r.unsettled))
		return
	}
	if u == nil {
		// A feed-started curation the engine gave up on: retry it from here. It holds the
		// watermark from where the next pass scans, so a restart still rescans its window.
		if !r.track(eventUUID, r.wm, r.opts.Now()) {
			return
		}
		u = r.unsettled[eventUUID]
	}
	u.failed = true
	r.opts.Metrics.setHeld(r.opts.Instance, len(r.unsettled))
}

// Pending is told that the engine finished a curation of the event without settling it:
// a publish MISP queued waits for its confirmation, which the engine checks and reports
// with a final outcome (Settled). Until then the event holds the persisted watermark like
// any unsettled event, and is not enqueued again as a failure.
func (r *Runner) Pending(eventUUID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.unsettled[eventUUID]
	if u == nil {
		if !r.track(eventUUID, r.wm, r.opts.Now()) {
			return
		}
		u = r.unsettled[eventUUID]
	}
	u.failed = false
	r.opts.Metrics.setHeld(r.opts.Instance, len(r.unsettled))
}

// retryable tells transient failures (MISP 5xx, 429, network, a refused key that a person
// will fix) from those a retry cannot change.
func retryable(err error) bool {
	for _, permanent := range []error{misp.ErrNotFound, misp.ErrForbidden, misp.ErrNotAllowed,
		misp.ErrValidation, misp.ErrInvalidArgument} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

// track records an unsettled event; false when the bound is reached. Caller holds mu.
func (r *Runner) track(uuid string, hold, now time.Time) bool {
	if u := r.unsettled[uuid]; u != nil {
		if !u.hold.IsZero() && (hold.IsZero() || hold.After(u.hold)) {
			return true // keep the earlier hold
		}
		u.hold = hold
		return true
	}
	if len(r.unsettled) >= r.opts.MaxUnsettled {
		if !r.full {
			r.full = true
			r.log.Info("too many events waiting for their curation: new ones are no longer tracked "+
				"(they are found again by the next pass while their change is inside its window)",
				"limit", r.opts.MaxUnsettled)
		}
		return false
	}
	r.unsettled[uuid] = &unsettled{hold: hold, added: now}
	return true
}

// Run runs passes until ctx ends; it returns nil then.
func (r *Runner) Run(ctx context.Context) error {
	wm, err := r.loadWatermark(ctx)
	if err != nil {
		return nil // ctx ended
	}
	r.mu.Lock()
	r.wm = wm
	r.mu.Unlock()

	timer := time.NewTimer(0) // the first pass at once
	defer timer.Stop()
	failures, recurationFailures := 0, 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			if err := r.runRecuration(ctx); err != nil && ctx.Err() == nil {
				recurationFailures++
				d := r.retryDelay(recurationFailures)
				r.log.Error(err, "re-curation search failed; retrying", "retryIn", d.Round(time.Second))
				r.afterFunc(ctx, d, func() {
					select {
					case r.wake <- struct{}{}:
					default:
					}
				})
			} else {
				recurationFailures = 0
			}
			continue
		case <-r.trigger:
			r.mu.Lock()
			wait := r.lastStarted.Add(r.opts.MinSpacing).Sub(r.opts.Now())
			r.mu.Unlock()
			if wait > 0 {
				// Coalesce: one pass at the end of the spacing covers this trigger.
				resetTimer(timer, wait)
				continue
			}
		case <-timer.C:
		}
		err := r.pass(ctx)
		var next time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			next = r.retryDelay(failures)
			r.log.Error(err, "catch-up pass failed; the watermark stays and the pass is retried", "retryIn", next.Round(time.Second))
		default:
			failures = 0
			next = r.jittered(r.opts.Interval)
		}
		resetTimer(timer, next)
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

func (r *Runner) afterFunc(ctx context.Context, d time.Duration, f func()) {
	t := time.AfterFunc(d, f)
	context.AfterFunc(ctx, func() { t.Stop() })
}

func (r *Runner) loadWatermark(ctx context.Context) (time.Time, error) {
	for attempt := 1; ; attempt++ {
		wm, err := r.opts.Watermark(ctx)
		if err == nil {
			return wm, nil
		}
		r.log.Error(err, "read the persisted catch-up watermark; retrying")
		t := time.NewTimer(r.retryDelay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Runner) retryDelay(failures int) time.Duration {
	d := r.opts.RetryBase
	for i := 1; i < failures && d < r.opts.Interval; i++ {
		d *= 2
	}
	return min(d, r.opts.Interval)
}

func (r *Runner) jittered(d time.Duration) time.Duration {
	f := 1 + r.opts.Jitter*(2*r.opts.Rand()-1)
	return time.Duration(float64(d) * f)
}
