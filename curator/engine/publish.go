// Publishes MISP queued and the engine has not confirmed yet. With MISP's background jobs
// on (the production setting) /events/publish answers "Job queued" (misp-api.md §2.5): a
// worker publishes the event later — or never: the job can fail, vanish (a worker killed,
// Redis flushed) or wait for stopped workers. A queued publish is therefore not a publish
// (design.md "Failure model"):
//
//   - it is recorded here, unconfirmed. The curation's Outcome says PublishQueued and
//     PublishPending, not Published: the event is not settled (catch-up holds its
//     watermark), and no curation publishes it again while the record lives;
//   - it is confirmed by a misp_json for the event that shows the state the curation left
//     (sent by the worker's Event::publish(): free), or else by a metadata read made after
//     MISP answered that shows the event published (a check, ConfirmAfter later, backing
//     off to ConfirmMaxDelay). That curation's Outcome says Published;
//   - it is sent again only after a confirmed failure: the event still reads as
//     unpublished PublishFailedAfter after a publish the engine queued LATER was
//     confirmed. A queue's jobs run in order, so the workers took ours before that one:
//     it failed or vanished. While nothing later is confirmed — workers down, or nothing
//     else published — the record waits and is reported (Unconfirmed: count, stuck,
//     oldest): sending again would publish twice once the workers are back;
//   - a publish whose outcome is unknown (a timeout, a 5xx after sending:
//     misp.OutcomeUnknown) is recorded the same way: MISP may have queued it. One that
//     most likely queued nothing — MISP's own 500 (an exception, thrown before the job is
//     queued at the end of the action) or a proxy's 502/503 (MISP not reached) — and is
//     the only unconfirmed publish left also counts as failed once it is
//     PublishFailedAfter old: on a quiet instance no later publish may ever come to prove
//     it. A 504 or a timeout (MISP was still working: the job most likely exists) never
//     does, and neither does any publish while others wait — they are what stopped
//     workers look like;
//
// Which records a check round reads: every due one that a confirmed later publish
// overtook (most likely published, else failed), and of the others only the oldest and
// the newest due one — if the newest is confirmed, everything before it is overtaken; if
// not, the workers have not reached it and reading the ones in between tells nothing
// more. Stopped workers cost two reads per round, not one per event.
//
// The records live in memory: a curator restarted while MISP's workers are down does not
// know the jobs its predecessor queued, and publishes those events again when catch-up
// finds them unpublished.

package engine

import (
	"container/list"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
)

// pubTracker holds the unconfirmed publishes of one engine (guarded by e.mu).
type pubTracker struct {
	recs  map[string]*pubRec // by event uuid
	order *list.List         // of *pubRec, in answer order
	seq   uint64             // orders publish calls and answers
}

// pubRec is one publish MISP queued (or may have).
type pubRec struct {
	uuid, policy string
	started      uint64    // tracker seq when the call started
	answered     uint64    // tracker seq when MISP answered
	sentAt       time.Time // when MISP answered
	overtaken    time.Time // when a publish started after this one's answer was confirmed
	nextCheck    time.Time
	checks       int
	checking     bool // a check curation is scheduled and has not started
	// feedConfirmed: a misp_json showing the state the curation left arrived after the
	// answer.
	feedConfirmed bool
	// attached and removed are the tags the curation changed: a misp_json with the
	// first and without the second was built after the curation.
	attached, removed []string
	// unknown: the call failed without saying whether MISP queued a job; likelyUnsent:
	// the failure was MISP's 500 or a proxy's 502/503, not a timeout.
	unknown, likelyUnsent bool
	el                    *list.Element
}

func newPubTracker() *pubTracker {
	return &pubTracker{recs: map[string]*pubRec{}, order: list.New()}
}

func (p *pubTracker) tick() uint64 {
	p.seq++
	return p.seq
}

// isQueued reports whether MISP's answer to a publish says a background job will do it.
func isQueued(message string) bool {
	return strings.Contains(strings.ToLower(message), "queued")
}

// recordPublish records a publish MISP answered just now (caller holds e.mu) and reports
// whether it replaces an unconfirmed one of the same event.
func (e *Engine) recordPublish(uuid, policy string, started uint64, attached, removed []string, err error, now time.Time) (replaced bool) {
	if old := e.pubs.recs[uuid]; old != nil {
		e.removePub(old)
		replaced = true
	}
	r := &pubRec{uuid: uuid, policy: policy, started: started, answered: e.pubs.tick(), sentAt: now,
		nextCheck: now.Add(e.opts.ConfirmAfter), attached: slices.Clone(attached), removed: slices.Clone(removed), unknown: err != nil}
	var ae *misp.APIError
	r.likelyUnsent = errors.As(err, &ae) && ae.Status >= 500 && ae.Status != http.StatusGatewayTimeout
	r.el = e.pubs.order.PushBack(r)
	e.pubs.recs[uuid] = r
	e.met.unconfirmed(len(e.pubs.recs))
	return replaced
}

// confirmPublish forgets a confirmed publish, and marks the publishes answered before it
// started as overtaken: the workers have taken their jobs (caller holds e.mu).
func (e *Engine) confirmPublish(r *pubRec, now time.Time) {
	if e.pubs.recs[r.uuid] != r {
		return
	}
	e.removePub(r)
	for el := e.pubs.order.Front(); el != nil; el = el.Next() {
		o := el.Value.(*pubRec)
		if o.answered >= r.started {
			break
		}
		if o.overtaken.IsZero() {
			o.overtaken = now
		}
	}
}

// dropPublish forgets the unconfirmed publish of an event that no longer needs it (deleted,
// no longer trusted to be published, published by a synchronous call). Caller holds e.mu.
func (e *Engine) dropPublish(uuid string) {
	if r := e.pubs.recs[uuid]; r != nil {
		e.removePub(r)
	}
}

func (e *Engine) removePub(r *pubRec) {
	e.pubs.order.Remove(r.el)
	delete(e.pubs.recs, r.uuid)
	e.met.unconfirmed(len(e.pubs.recs))
}

// failedJob reports a confirmed failure (caller holds e.mu): a later publish was confirmed
// long enough ago — or a call that most likely queued nothing is old enough and the only
// unconfirmed publish (see the file comment). The caller still needs a fresh read showing
// the event unpublished.
func (e *Engine) failedJob(r *pubRec, now time.Time) bool {
	if !r.overtaken.IsZero() && now.Sub(r.overtaken) >= e.opts.PublishFailedAfter {
		return true
	}
	return r.likelyUnsent && len(e.pubs.recs) == 1 && now.Sub(r.sentAt) >= e.opts.PublishFailedAfter
}

// feedConfirms handles a misp_json for an event with an unconfirmed publish (caller holds
// e.mu): when its tags show the state the publishing curation left, it was built after
// that curation — by our job, or a later publish — and confirms the publish. A misp_json
// of an earlier publish (a pull's, delivered late) lacks the tags the curation attached. A
// curation that changed no tag leaves nothing to tell the two apart: a read confirms it.
func (e *Engine) feedConfirms(uuid string, tags []string) bool {
	r := e.pubs.recs[uuid]
	if r == nil || len(r.attached)+len(r.removed) == 0 {
		return false
	}
	for _, want := range r.attached {
		if !containsFold(tags, want) {
			return false
		}
	}
	for _, gone := range r.removed {
		if containsFold(tags, gone) {
			return false
		}
	}
	r.feedConfirmed = true
	return true
}

// confirmLoop schedules the checks of unconfirmed publishes until ctx ends.
func (e *Engine) confirmLoop(ctx context.Context) {
	tick := min(max(e.opts.ConfirmAfter/4, 10*time.Millisecond), 5*time.Second)
	for {
		t := e.clock.NewTimer(tick)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		e.mu.Lock()
		var refused []Outcome
		if !e.stopping {
			refused = e.scheduleChecks(e.clock.Now())
		}
		e.mu.Unlock()
		for _, o := range refused {
			e.report(o)
		}
	}
}

// maxChecksPerRound bounds the checks one round asks for; the rest wait for the next.
const maxChecksPerRound = 256

// scheduleChecks asks for the check curations that are due (see the file comment) and
// returns the outcomes of those the queue refused. Caller holds e.mu.
func (e *Engine) scheduleChecks(now time.Time) []Outcome {
	var refused []Outcome
	var first, last *pubRec
	n := 0
	check := func(r *pubRec) {
		n++
		r.checks++
		delay := e.opts.ConfirmAfter << min(r.checks, 20)
		r.nextCheck = now.Add(min(delay, e.opts.ConfirmMaxDelay))
		r.checking = true
		if out := e.trigger(r.uuid, trigger{source: SourceConfirm, read: true, received: now, due: now}, now); out != nil {
			r.checking = false
			refused = append(refused, *out)
		}
	}
	for el := e.pubs.order.Front(); el != nil && n < maxChecksPerRound; el = el.Next() {
		r := el.Value.(*pubRec)
		if r.checking || r.nextCheck.After(now) {
			continue
		}
		if !r.overtaken.IsZero() {
			check(r)
			continue
		}
		if first == nil {
			first = r
		}
		last = r
	}
	if first != nil && n < maxChecksPerRound {
		check(first)
	}
	if last != nil && last != first && n < maxChecksPerRound {
		check(last)
	}
	return refused
}

// Unconfirmed summarises the publishes MISP queued that are not confirmed yet.
type Unconfirmed struct {
	Count int
	// Stuck are those older than Options.PublishStuckAfter.
	Stuck int
	// Oldest is when MISP answered the oldest one; zero when Count is 0.
	Oldest time.Time
	// ByPolicy counts them by winning policy key.
	ByPolicy map[string]int
}

// Unconfirmed reports the unconfirmed publishes now.
func (e *Engine) Unconfirmed() Unconfirmed {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	u := Unconfirmed{Count: len(e.pubs.recs), ByPolicy: map[string]int{}}
	for el := e.pubs.order.Front(); el != nil; el = el.Next() {
		r := el.Value.(*pubRec)
		if u.Oldest.IsZero() || r.sentAt.Before(u.Oldest) {
			u.Oldest = r.sentAt
		}
		if now.Sub(r.sentAt) >= e.opts.PublishStuckAfter {
			u.Stuck++
		}
		u.ByPolicy[r.policy]++
	}
	return u
}
