// The schedule: one entry per event waiting, ready or being curated. Triggers for an
// event coalesce into its entry (push debounce, at most one follow-up); the scheduler
// moves due entries to the ready queue; workers curate them (curate.go) and finish
// decides what happens next (retry with backoff, follow-up, or an Outcome). Functions
// that touch entries run with e.mu held.

package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
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

// entryState is where an event is in the engine.
type entryState uint8

const (
	stateWaiting entryState = iota // in delayed: debounce or retry backoff
	stateReady                     // in ready: waiting for a worker
	stateRunning                   // a worker curates it
)

// trigger is what asked for a curation.
type trigger struct {
	source   Source
	pulled   bool   // *_from_connected_server seen: the event is complete, curate now
	server   string // the local id of the server link a pull came through (its sharer)
	read     bool   // read the metadata whatever the hints say (a publish check)
	meta     *misp.EventMeta
	metaAt   time.Time // when meta was read (Hint.ReadAt)
	received time.Time // first message of this curation
	due      time.Time
}

// trigger merges t into the event's entry or creates one. When MaxPending events wait
// already it refuses the new one and returns the Outcome to report (without e.mu): a
// failure, which catch-up retries at its next pass.
func (e *Engine) trigger(uuid string, t trigger, now time.Time) *Outcome {
	en := e.entries[uuid]
	if en == nil {
		if len(e.entries) >= e.opts.MaxPending {
			e.met.drop(dropQueueFull, 1)
			if now.Sub(e.lastDrop) >= 10*time.Second {
				e.lastDrop = now
				e.log.Info("curation queue full: event refused, catch-up will retry it", "event", uuid, "maxPending", e.opts.MaxPending)
			}
			return &Outcome{Instance: e.opts.Instance, EventUUID: uuid, Source: t.source, Received: t.received, Due: now, At: now,
				Err: fmt.Errorf("curate event %s: %w (%d events waiting)", uuid, ErrQueueFull, e.opts.MaxPending)}
		}
		en = &entry{uuid: uuid, trigger: t, heapIdx: -1}
		e.entries[uuid] = en
		e.place(en, t.due, now)
		e.gauge()
		return nil
	}
	e.merge(en, t, now)
	return nil
}

// merge folds a trigger into the entry of its event.
func (e *Engine) merge(en *entry, t trigger, now time.Time) {
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
// first reception time stays. A publish check only adds its read: the curation keeps the
// source that asked for it first.
func (t *trigger) merge(u trigger) {
	t.read = t.read || u.read
	if u.server != "" {
		t.server = u.server
	}
	if u.pulled {
		t.pulled = true
		t.source = SourcePull
	} else if !t.pulled && t.source == SourcePush && u.source != SourcePush && u.source != SourceConfirm {
		t.source = u.source
	}
	if u.meta != nil {
		t.meta, t.metaAt = u.meta, u.metaAt
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
		forceRead := en.forceRead || t.read
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

// finish records an attempt (caller holds e.mu) and returns the outcome to report, if
// the curation is over.
func (e *Engine) finish(en *entry, t trigger, a attempt) *Outcome {
	now := e.clock.Now()
	if en.attempts == 0 {
		en.acc = Outcome{Received: t.received, Due: t.due}
	}
	en.attempts++
	acc := &en.acc
	acc.Calls += a.out.Calls
	acc.Tagged = acc.Tagged || a.out.Tagged
	acc.Published = acc.Published || a.out.Published
	acc.PublishQueued = acc.PublishQueued || a.out.PublishQueued
	acc.Republished = acc.Republished || a.out.Republished
	acc.PublishPending = a.out.PublishPending
	acc.RemovedIncomplete = acc.RemovedIncomplete || a.out.RemovedIncomplete
	acc.RemovedTags = append(acc.RemovedTags, a.out.RemovedTags...)
	acc.Policy, acc.OrgUUID, acc.Class, acc.Plan = a.out.Policy, a.out.OrgUUID, a.out.Class, a.out.Plan
	acc.SharerUUID, acc.Via = a.out.SharerUUID, a.out.Via
	acc.DryRun, acc.Skipped = a.out.DryRun, a.out.Skipped
	acc.AlreadyCurated = a.out.AlreadyCurated && !acc.Tagged && !acc.Published && !acc.PublishQueued &&
		!acc.PublishPending && len(acc.RemovedTags) == 0
	acc.Source = t.source

	if a.canceled {
		e.removeEntry(en)
		e.met.drop(dropShutdown, 1)
		return nil
	}
	if a.err != nil && a.retry && en.attempts < e.opts.MaxAttempts {
		en.forceRead = true
		if en.next != nil {
			en.trigger.merge(*en.next)
			en.next = nil
		}
		delay := backoff(e.opts.RetryBaseDelay, e.opts.RetryMaxDelay, en.attempts-1)
		e.met.retry()
		e.log.V(1).Info("curation failed, retrying", "event", en.uuid, "attempt", en.attempts, "delay", delay, "error", a.err.Error())
		en.state = stateWaiting
		e.place(en, now.Add(delay), now)
		return nil
	}

	out := *acc
	out.Instance, out.EventUUID, out.Attempts, out.At = e.opts.Instance, en.uuid, en.attempts, now
	if a.err != nil {
		out.Err = fmt.Errorf("curate event %s: %w", en.uuid, a.err)
	}
	switch {
	case a.state != nil && !out.DryRun:
		e.learnCurated(en.uuid, a.orgc, *a.state, out.Tagged || out.Published || out.PublishQueued || len(out.RemovedTags) > 0, now)
	case a.err != nil || out.Tagged || out.Published || out.PublishQueued || len(out.RemovedTags) > 0:
		// Failed for good, possibly after some writes (or a timeout whose write went
		// through): what the feed told before this curation no longer describes the
		// event, so the next curation (a follow-up, catch-up) reads it again.
		e.forgetState(en.uuid, now)
		e.wrote(en.uuid, now)
	}
	if en.next != nil {
		// Messages arrived while it ran: one follow-up curation.
		en.trigger, en.next = *en.next, nil
		en.attempts, en.forceRead, en.acc = 0, false, Outcome{}
		en.state = stateWaiting
		e.place(en, en.trigger.due, now)
	} else {
		e.removeEntry(en)
	}
	return &out
}

// report logs, counts and hands out a finished curation (without e.mu).
func (e *Engine) report(o Outcome) {
	e.met.outcome(o)
	changed := o.Tagged || o.Published || o.PublishQueued || len(o.RemovedTags) > 0
	if o.Err != nil || changed || e.log.V(1).Enabled() {
		kv := []any{"event", o.EventUUID, "org", o.OrgUUID, "policy", o.Policy, "source", o.Source, "calls", o.Calls}
		if o.Via == trust.ViaSharer {
			kv = append(kv, "sharer", o.SharerUUID)
		}
		switch {
		case errors.Is(o.Err, ErrQueueFull):
			// Logged by trigger, at most every 10 s: a flood must not flood the log too.
		case o.Err != nil:
			e.log.Error(o.Err, "curation failed; catch-up will try again", append(kv, "attempts", o.Attempts)...)
		case changed:
			kv = append(kv, "attached", o.Plan.Attach, "removed", o.RemovedTags, "published", o.Published)
			if o.PublishQueued || o.PublishPending {
				kv = append(kv, "publishQueued", o.PublishQueued, "publishPending", o.PublishPending, "republished", o.Republished)
			}
			e.log.Info("curated event", kv...)
		case o.Skipped != "":
			e.log.V(1).Info("event skipped", append(kv, "reason", o.Skipped)...)
		case o.PublishPending:
			e.log.V(1).Info("the publish MISP queued is not confirmed yet", kv...)
		case o.DryRun:
			// logged with the plan by curate
		default:
			e.log.V(1).Info("event needs nothing", append(kv, "trusted", o.Policy != "")...)
		}
	}
	if e.opts.OnOutcome != nil {
		e.opts.OnOutcome(o)
	}
}

// backoff is capped exponential backoff with full jitter: uniform in
// [base/2, min(max, base·2^n)] (half the ceiling at least, so a retry never comes at
// once: no hot loop).
func backoff(base, max time.Duration, n int) time.Duration {
	ceiling := base
	for i := 0; i < n && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max {
		ceiling = max
	}
	floor := ceiling / 2
	return floor + time.Duration(rand.Int64N(int64(ceiling-floor)+1))
}

// delayHeap orders waiting entries by due time.
type delayHeap []*entry

func (h delayHeap) Len() int { return len(h) }

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
