package engine

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/misp"
)

// Defaults of Options.
const (
	DefaultConcurrency      = 4
	DefaultPushDebounce     = 5 * time.Second
	DefaultCoalesceWindow   = time.Second
	DefaultPublishMemoryTTL = 10 * time.Minute
	DefaultHintTTL          = 2 * time.Minute
	DefaultMaxHints         = 50_000
	DefaultMaxPending       = 100_000
	DefaultMaxAttempts      = 5
	DefaultRetryBaseDelay   = 2 * time.Second
	DefaultRetryMaxDelay    = 2 * time.Minute
	DefaultCurationTimeout  = 2 * time.Minute
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
	pubs     *ttlCache[int64]  // events this engine published recently → the version (event timestamp) it curated
	lastDrop time.Time         // last "queue full" log line
}

// entryState is where an event is in the engine.
type entryState uint8

const (
	stateWaiting entryState = iota // in delayed: debounce or retry backoff
	stateReady                     // in ready: waiting for a worker
	stateRunning                   // a worker curates it
)

// entry is one event the engine will curate (or is curating).
type entry struct {
	uuid      string
	state     entryState
	due       time.Time // when it becomes ready (stateWaiting)
	heapIdx   int
	trigger   trigger
	attempts  int
	forceRead bool     // a previous attempt failed: re-derive everything from MISP
	acc       Outcome  // accumulated over the attempts of this curation
	next      *trigger // what arrived while it was running: one follow-up curation
}

// trigger is what asked for a curation.
type trigger struct {
	source   Source
	pulled   bool // *_from_connected_server seen: the event is complete, curate now
	meta     *misp.EventMeta
	received time.Time // first message of this curation
	due      time.Time
}

// hint is what the feed told about an event.
type hint struct {
	eventID string
	orgc    string
	// known: state below is the event's state after its last row message, learnt from a
	// misp_json (full event, every tag with its locality) or from our own curation; no
	// tag change was announced since.
	known  bool
	locked bool  // the event came by synchronisation (row or misp_json said locked:true)
	ts     int64 // event timestamp of the last row or misp_json: identifies the version
	// curated: state is what our own curation of version ts left.
	curated bool
	state   eventState
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
	setDefault(&opts.PublishMemoryTTL, DefaultPublishMemoryTTL)
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
		pubs:    newTTLCache[int64](opts.PublishMemoryTTL, opts.MaxHints, nil),
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

// Run starts Options.Concurrency workers and the scheduler and blocks until ctx ends.
// Curations in flight are cancelled with ctx; events still waiting are dropped, counted
// and logged (catch-up finds them after a restart). Run returns nil after ctx ends, and
// must not be called twice.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < e.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.worker(ctx)
		}()
	}
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

// Pending is the number of events waiting (debounce, backoff, queue) or being curated.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.entries)
}

// HandleMessage takes one parsed ZeroMQ message of this instance. It only updates
// in-memory state and schedules curations; it never calls MISP and never waits for a
// curation. How each message is used: see the package documentation and classify.
func (e *Engine) HandleMessage(m feed.Message) {
	now := e.clock.Now()
	class := classify(m)
	e.met.message(class)
	switch class {
	case msgPulled:
		e.mu.Lock()
		e.trigger(m.EventUUID, trigger{source: SourcePull, pulled: true, received: now, due: now}, now)
		e.mu.Unlock()
	case msgPulledByID:
		// A pull by the partner's numeric id (sync/zmq/45, 48): the id is useless here.
		// The row message of the same pull named the event and its debounce curates it;
		// catch-up is the safety net.
		e.log.V(1).Info("pulled event announced by the partner's numeric id; curated after the debounce of its row message", "remoteEventID", m.RemoteEventID)
	case msgSyncedRow:
		e.mu.Lock()
		e.learnRow(m, now)
		e.trigger(m.EventUUID, trigger{source: SourcePush, received: now, due: now.Add(e.opts.PushDebounce)}, now)
		e.mu.Unlock()
	case msgDelete:
		e.mu.Lock()
		e.forgetLocked(m.EventUUID)
		if en := e.entries[m.EventUUID]; en != nil && en.state != stateRunning {
			e.removeEntry(en)
			e.met.drop(dropDeleted, 1)
		}
		e.mu.Unlock()
	case msgPublish:
		e.mu.Lock()
		e.learnPublish(m, now)
		// misp_json is the last message of a published push (sync README "push-new"):
		// the event is complete, but a pull still sends *_from_connected_server after it,
		// so wait CoalesceWindow rather than the whole debounce.
		if en := e.entries[m.EventUUID]; en != nil && en.state == stateWaiting && !en.trigger.pulled &&
			en.attempts == 0 && e.opts.CoalesceWindow >= 0 {
			if due := now.Add(e.opts.CoalesceWindow); due.Before(en.due) {
				e.setDue(en, due)
			}
		}
		e.mu.Unlock()
	case msgTag:
		e.mu.Lock()
		e.learnTag(m, now)
		e.mu.Unlock()
	}
}

// classify says what a message means to the engine (misp-api.md §1.7–1.10):
//
//   - msgPulled: add|edit_from_connected_server with the event UUID — the pull of the
//     event is complete, curate now;
//   - msgPulledByID: the same with the partner's numeric id — useless locally;
//   - msgSyncedRow: an add|edit row with locked:true — a pushed event, or the first
//     message of a pull; names the creator org;
//   - msgLocalRow: an add|edit row with locked:false — created here, never curated;
//   - msgDelete: the event was deleted;
//   - msgPublish: misp_json — a hint (tags, published), never a curation by itself;
//   - msgTag: a tag attached to / detached from an event — a hint;
//   - msgInvalid: an event message without the UUID it needs;
//   - msgOther: everything else (attributes, heartbeats, audit, …).
func classify(m feed.Message) string {
	switch m.Kind {
	case feed.KindEvent:
		switch {
		case m.Action.FromConnectedServer():
			switch {
			case m.EventUUID != "":
				return msgPulled
			case m.RemoteEventID != "":
				return msgPulledByID
			}
			return msgInvalid
		case m.Action == feed.ActionAdd || m.Action == feed.ActionEdit:
			switch {
			case !m.HasRow || m.EventUUID == "":
				return msgInvalid
			case m.Locked:
				return msgSyncedRow
			}
			return msgLocalRow
		case m.Action == feed.ActionDelete:
			if m.EventUUID == "" {
				return msgInvalid
			}
			return msgDelete
		}
		return msgOther
	case feed.KindPublish:
		if m.EventUUID == "" {
			return msgInvalid
		}
		return msgPublish
	case feed.KindEventTag:
		if m.EventID == "" {
			return msgInvalid
		}
		return msgTag
	}
	return msgOther
}

// Enqueue asks for a curation of an event (catch-up, re-curation), coalesced with any
// pending one for the same event. A hint carrying Meta saves the metadata read.
func (e *Engine) Enqueue(eventUUID string, h Hint) {
	eventUUID = strings.ToLower(strings.TrimSpace(eventUUID))
	if len(eventUUID) != 36 {
		e.log.Info("ignoring a curation request without a valid event UUID", "event", eventUUID)
		return
	}
	if h.Source == "" {
		h.Source = SourceCatchUp
	}
	now := e.clock.Now()
	e.mu.Lock()
	e.trigger(eventUUID, trigger{source: h.Source, meta: h.Meta, received: now, due: now}, now)
	e.mu.Unlock()
}

// ---- scheduling (callers hold e.mu) ----

// trigger merges t into the event's entry or creates one.
func (e *Engine) trigger(uuid string, t trigger, now time.Time) {
	en := e.entries[uuid]
	if en == nil {
		if len(e.entries) >= e.opts.MaxPending {
			e.met.drop(dropQueueFull, 1)
			if now.Sub(e.lastDrop) >= 10*time.Second {
				e.lastDrop = now
				e.log.Info("curation queue full: event dropped, catch-up will find it", "event", uuid, "maxPending", e.opts.MaxPending)
			}
			return
		}
		en = &entry{uuid: uuid, trigger: t, heapIdx: -1}
		e.entries[uuid] = en
		e.place(en, t.due, now)
		e.gauge()
		return
	}
	e.met.coalesce()
	switch en.state {
	case stateRunning:
		// One follow-up at most, carrying the strongest trigger seen meanwhile. Metadata
		// given with it (Hint.Meta) was read before the running curation finished, so it
		// may miss that curation's writes: the follow-up plans from the state the
		// curation leaves (learnCurated) or reads it again, never from this (it would
		// attach, remove and publish a second time).
		t.meta = nil
		if en.next == nil {
			cp := t
			en.next = &cp
			return
		}
		en.next.merge(t)
	case stateReady:
		en.trigger.merge(t)
	case stateWaiting:
		if en.attempts > 0 {
			en.trigger.merge(t)
			return // in retry backoff: new messages never shorten it (no hot loop)
		}
		// A push debounce (or the coalesce window after misp_json) is pending: the event
		// may still lack the tags and attributes saved after its row message (sync README
		// "push-new"). Only a completed pull curates it now; a catch-up or re-curation
		// request joins the debounce, and metadata it read meanwhile may be just as
		// incomplete, so the curation uses the feed's hints or reads the event itself.
		if !t.pulled {
			t.meta = nil
		}
		en.trigger.merge(t)
		switch {
		case t.pulled:
			e.place(en, now, now) // the pull is complete: now
		case t.source == SourcePush:
			e.setDue(en, t.due) // another row message: the debounce starts again
		}
	}
}

// merge folds a later trigger into t: a pull wins over a push, metadata is kept, the
// first reception time stays.
func (t *trigger) merge(u trigger) {
	if u.pulled {
		t.pulled = true
		t.source = SourcePull
	} else if !t.pulled && t.source == SourcePush && u.source != SourcePush {
		t.source = u.source
	}
	if u.meta != nil {
		t.meta = u.meta
	}
	if u.due.After(t.due) && !t.pulled {
		t.due = u.due
	}
}

// place puts en in the ready queue when due, else in the delay heap.
func (e *Engine) place(en *entry, due, now time.Time) {
	if en.state == stateWaiting && en.heapIdx >= 0 {
		heap.Remove(&e.delayed, en.heapIdx)
	}
	en.due = due
	if !due.After(now) {
		en.state = stateReady
		en.trigger.due = now
		e.ready.push(en)
		e.cond.Signal()
		return
	}
	en.state = stateWaiting
	heap.Push(&e.delayed, en)
	if e.delayed[0] == en {
		e.poke()
	}
}

// setDue moves a waiting entry to a new due time.
func (e *Engine) setDue(en *entry, due time.Time) {
	en.due = due
	heap.Fix(&e.delayed, en.heapIdx)
	e.poke()
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) removeEntry(en *entry) {
	switch en.state {
	case stateWaiting:
		if en.heapIdx >= 0 {
			heap.Remove(&e.delayed, en.heapIdx)
		}
	case stateReady:
		e.ready.remove(en)
	}
	delete(e.entries, en.uuid)
	e.gauge()
}

func (e *Engine) gauge() { e.met.queue(len(e.entries), e.running) }

// schedule moves due entries to the ready queue until ctx ends.
func (e *Engine) schedule(ctx context.Context) {
	for {
		e.mu.Lock()
		now := e.clock.Now()
		for len(e.delayed) > 0 && !e.delayed[0].due.After(now) {
			en := heap.Pop(&e.delayed).(*entry)
			en.state = stateReady
			en.trigger.due = now
			e.ready.push(en)
			e.cond.Signal()
		}
		var wait time.Duration = -1
		if len(e.delayed) > 0 {
			wait = e.delayed[0].due.Sub(now)
		}
		e.mu.Unlock()

		var timer Timer
		var fire <-chan time.Time
		if wait >= 0 {
			timer = e.clock.NewTimer(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-e.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// worker curates ready entries until the engine stops.
func (e *Engine) worker(ctx context.Context) {
	for {
		e.mu.Lock()
		for e.ready.len() == 0 && !e.stopping {
			e.cond.Wait()
		}
		if e.stopping {
			e.mu.Unlock()
			return
		}
		en := e.ready.pop()
		en.state = stateRunning
		e.running++
		e.gauge()
		t := en.trigger
		en.trigger.meta = nil // used once: a retry reads again
		forceRead := en.forceRead
		e.mu.Unlock()

		res := e.curate(ctx, en.uuid, t, forceRead)

		e.mu.Lock()
		e.running--
		out := e.finish(en, t, res)
		e.gauge()
		e.mu.Unlock()
		if out != nil {
			e.report(*out)
		}
	}
}

// delayHeap orders waiting entries by due time.
type delayHeap []*entry

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *delayHeap) Push(x any) {
	en := x.(*entry)
	en.heapIdx = len(*h)
	*h = append(*h, en)
}
func (h *delayHeap) Pop() any {
	old := *h
	n := len(old)
	en := old[n-1]
	old[n-1] = nil
	en.heapIdx = -1
	*h = old[:n-1]
	return en
}

// fifo is the ready queue. Popping from the front of a plain slice would shrink its
// capacity and reallocate on every push; the head index avoids that.
type fifo struct {
	items []*entry
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(en *entry) { q.items = append(q.items, en) }

func (q *fifo) pop() *entry {
	en := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 1024 && 2*q.head >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return en
}

// remove takes en out of the queue (rare: a delete message for a queued event).
func (q *fifo) remove(en *entry) {
	for i := q.head; i < len(q.items); i++ {
		if q.items[i] == en {
			copy(q.items[i:], q.items[i+1:])
			q.items[len(q.items)-1] = nil
			q.items = q.items[:len(q.items)-1]
			return
		}
	}
}
