package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of Options.
const (
	DefaultConcurrency        = 16
	DefaultPushDebounce       = 5 * time.Second
	DefaultCoalesceWindow     = time.Second
	DefaultConfirmAfter       = 30 * time.Second
	DefaultConfirmMaxDelay    = 5 * time.Minute
	DefaultPublishFailedAfter = 5 * time.Minute
	DefaultPublishStuckAfter  = 5 * time.Minute
	DefaultHintTTL            = 2 * time.Minute
	DefaultMaxHints           = 50_000
	DefaultMaxPending         = 100_000
	DefaultMaxAttempts        = 5
	DefaultRetryBaseDelay     = 2 * time.Second
	DefaultRetryMaxDelay      = 2 * time.Minute
	DefaultCurationTimeout    = 2 * time.Minute
)

// Engine curates the events of one MISPInstance. Create it with New, start its workers
// with Run, and feed it with HandleMessage (ZeroMQ) and Enqueue (catch-up, re-curation).
// HandleMessage and Enqueue are safe for concurrent use and never block on MISP.
type Engine struct {
	opts   Options
	log    logr.Logger
	clock  Clock
	met    instMetrics
	dryRun atomic.Bool

	mu       sync.Mutex
	cond     *sync.Cond        // workers wait on it for ready entries
	entries  map[string]*entry // by event uuid: every event waiting, ready or running
	delayed  delayHeap         // waiting entries by due time
	ready    fifo              // entries due now, oldest first
	running  int               // entries being curated
	stopping bool              // Run's context ended
	wake     chan struct{}     // tells the scheduler that the earliest due time moved
	hints    *ttlCache[*hint]  // what the feed told about recent events, by uuid
	ids      map[string]string // local event id → uuid, for misp_json_tag (ids of hints only)
	pubs     *pubTracker       // publishes MISP queued and the engine has not confirmed yet (publish.go)
	lastDrop time.Time         // last "queue full" log line
}

// New checks the options, applies the defaults and returns an Engine. It panics when
// Index or MISP is nil (a programming error).
func New(opts Options) *Engine {
	if opts.Index == nil || opts.MISP == nil {
		panic("engine: Options.Index and Options.MISP are required")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	switch {
	case opts.PushDebounce == 0:
		opts.PushDebounce = DefaultPushDebounce
	case opts.PushDebounce < 0:
		opts.PushDebounce = 0
	}
	if opts.CoalesceWindow == 0 {
		opts.CoalesceWindow = DefaultCoalesceWindow
	}
	if opts.CoalesceWindow > opts.PushDebounce {
		opts.CoalesceWindow = opts.PushDebounce
	}
	setDefault(&opts.ConfirmAfter, DefaultConfirmAfter)
	setDefault(&opts.ConfirmMaxDelay, DefaultConfirmMaxDelay)
	setDefault(&opts.PublishFailedAfter, DefaultPublishFailedAfter)
	setDefault(&opts.PublishStuckAfter, DefaultPublishStuckAfter)
	if opts.ConfirmMaxDelay < opts.ConfirmAfter {
		opts.ConfirmMaxDelay = opts.ConfirmAfter
	}
	setDefault(&opts.HintTTL, DefaultHintTTL)
	setDefault(&opts.MaxHints, DefaultMaxHints)
	setDefault(&opts.MaxPending, DefaultMaxPending)
	setDefault(&opts.MaxAttempts, DefaultMaxAttempts)
	setDefault(&opts.RetryBaseDelay, DefaultRetryBaseDelay)
	setDefault(&opts.RetryMaxDelay, DefaultRetryMaxDelay)
	setDefault(&opts.CurationTimeout, DefaultCurationTimeout)
	if opts.RetryMaxDelay < opts.RetryBaseDelay {
		opts.RetryMaxDelay = opts.RetryBaseDelay
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	e := &Engine{
		opts:    opts,
		log:     log.WithValues("instance", opts.Instance),
		clock:   opts.Clock,
		met:     instMetrics{m: opts.Metrics, inst: opts.Instance},
		entries: map[string]*entry{},
		wake:    make(chan struct{}, 1),
		ids:     map[string]string{},
		pubs:    newPubTracker(),
	}
	e.hints = newTTLCache(opts.HintTTL, opts.MaxHints, e.forgetID)
	e.cond = sync.NewCond(&e.mu)
	e.dryRun.Store(opts.DryRun)
	e.met.init()
	return e
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Run starts Options.Concurrency workers, the scheduler and the publish checks, and
// blocks until ctx ends. Curations in flight are cancelled with ctx; events still waiting
// are dropped, counted and logged (catch-up finds them after a restart), and so are the
// unconfirmed publishes (their events hold catch-up's watermark). Run returns nil after
// ctx ends, and must not be called twice.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < e.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.worker(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.confirmLoop(ctx)
	}()
	e.schedule(ctx)

	e.mu.Lock()
	e.stopping = true
	e.cond.Broadcast()
	e.mu.Unlock()
	wg.Wait()

	e.mu.Lock()
	dropped := len(e.entries)
	e.entries = map[string]*entry{}
	e.delayed = nil
	e.ready = fifo{}
	e.met.queue(0, 0)
	e.mu.Unlock()
	e.met.drop(dropShutdown, dropped)
	if dropped > 0 {
		e.log.Info("curation engine stopped with events not curated; catch-up will find them", "events", dropped)
	}
	return nil
}

// SetDryRun switches dry-run mode for the curations that start from now on.
func (e *Engine) SetDryRun(on bool) { e.dryRun.Store(on) }

// DryRun reports whether the engine is in dry-run mode.
func (e *Engine) DryRun() bool { return e.dryRun.Load() }

// Pending is the number of events waiting (debounce, backoff, queue) or being curated.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.entries)
}
