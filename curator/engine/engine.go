package engine

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/misptrust/misp-trust-operator/curator/feed"
)

// Engine curates the events of one MISPInstance. Create it with New, start its workers
// with Run, and feed it with HandleMessage (ZeroMQ) and Enqueue (catch-up, re-curation).
// HandleMessage and Enqueue are safe for concurrent use and never block on MISP.
type Engine struct {
	opts   Options
	dryRun atomic.Bool
}

// New checks the options, applies the defaults and returns an Engine. It panics when
// Index or MISP is nil (a programming error).
func New(opts Options) *Engine {
	if opts.Index == nil || opts.MISP == nil {
		panic("engine: Options.Index and Options.MISP are required")
	}
	e := &Engine{opts: opts}
	e.dryRun.Store(opts.DryRun)
	return e
}

// Run starts Options.Concurrency workers and the scheduler and blocks until ctx ends.
// Curations in flight are cancelled with ctx; events still waiting are dropped (catch-up
// finds them after a restart). It returns nil after ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	<-ctx.Done()
	return errors.New("engine: not implemented yet")
}

// HandleMessage takes one parsed ZeroMQ message of this instance. It only updates
// in-memory state and schedules curations; it never calls MISP and never blocks on a
// curation.
func (e *Engine) HandleMessage(m feed.Message) {}

// Enqueue asks for a curation of an event (catch-up, re-curation), coalesced with any
// pending one for the same event. A hint carrying Meta saves the metadata read.
func (e *Engine) Enqueue(eventUUID string, hint Hint) {}

// SetDryRun switches dry-run mode for the curations that start from now on.
func (e *Engine) SetDryRun(on bool) { e.dryRun.Store(on) }

// Pending is the number of events waiting (debounce, backoff, queue) or being curated.
func (e *Engine) Pending() int { return 0 }
