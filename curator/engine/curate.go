package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// attempt is the result of one curation attempt.
type attempt struct {
	out      Outcome     // this attempt's part: calls, flags, policy, plan
	err      error       // failure (wrapped)
	retry    bool        // err is transient: try again after a backoff
	canceled bool        // the engine is stopping
	state    *eventState // the event's state after a successful attempt (for the hints)
	orgc     string
}

// curate runs one attempt for an event: find its creator org and policy with as few
// reads as possible, plan, apply.
func (e *Engine) curate(ctx context.Context, uuid string, t trigger, forceRead bool) attempt {
	var a attempt
	if ctx.Err() != nil {
		a.canceled = true
		return a
	}
	// One deadline for every MISP call of the attempt, made at the first call (most
	// untrusted events make none).
	var cctx context.Context
	cancel := context.CancelFunc(func() {})
	defer func() { cancel() }()
	callCtx := func() context.Context {
		if cctx == nil {
			cctx, cancel = context.WithTimeout(ctx, e.opts.CurationTimeout)
		}
		return cctx
	}

	// What we know without asking MISP: a search result given to Enqueue, else what the
	// feed said (the row message names the creator org; a misp_json after it carries
	// every tag and means published). A retry trusts neither: it re-derives everything.
	var st eventState
	known, locked := false, true
	var version int64 // the event timestamp of the version curated, 0 if unknown
	switch {
	case forceRead:
	case t.meta != nil:
		a.orgc, st, known, locked, version = t.meta.OrgcUUID, stateOf(*t.meta), true, t.meta.Locked, unix(t.meta.Timestamp)
	default:
		e.mu.Lock()
		if h, ok := e.hints.get(uuid, e.clock.Now()); ok {
			a.orgc, version = h.orgc, h.ts
			if h.known {
				st, known, locked = h.state, true, h.locked
			}
		}
		e.mu.Unlock()
	}
	if a.orgc != "" {
		if _, trusted := e.opts.Index.Lookup(a.orgc); !trusted {
			// Untrusted creator named by the feed: no call at all (design.md §3).
			a.out.Class = untrustedClass(t.source)
			a.out.OrgUUID = a.orgc
			return a
		}
	}
	if !known {
		meta, err := e.opts.MISP.EventMeta(callCtx(), uuid)
		a.out.Calls++
		if err != nil {
			return e.failed(ctx, a, "read metadata", err)
		}
		a.orgc, st, locked, version = meta.OrgcUUID, stateOf(meta), meta.Locked, unix(meta.Timestamp)
	}
	a.out.OrgUUID = a.orgc
	pol, trusted := e.opts.Index.Lookup(a.orgc)
	if !trusted {
		a.out.Class = untrustedClass(t.source)
		a.state = &st
		return a
	}
	a.out.Policy = pol.Key
	a.out.Class = ClassTagOnly
	if pol.Publish {
		a.out.Class = ClassTagPublish
	}
	if !locked {
		// Created on this instance (catch-up or a stale hint): only synchronised events
		// are curated.
		a.out.Skipped = "local event"
		return a
	}

	e.mu.Lock()
	_, recent := e.pubs.get(uuid, e.clock.Now())
	e.mu.Unlock()
	plan := makePlan(pol, st, recent)
	a.out.Plan = plan
	if plan.Empty() {
		a.out.AlreadyCurated = true
		a.state = &st
		return a
	}
	if e.dryRun.Load() {
		a.out.DryRun = true
		e.log.Info("dry run: would curate event", "event", uuid, "org", a.orgc, "policy", pol.Key, "attach", plan.Attach, "remove", plan.Remove,
			"publish", plan.Publish, "publishIfUnpublished", plan.PublishIfUnpublished)
		return a
	}

	if len(plan.Attach) > 0 {
		// One call for every missing tag, all local: a global tag would unpublish the
		// event and tell partners our trust judgement (design.md "Failure model").
		err := e.opts.MISP.AttachTags(callCtx(), uuid, plan.Attach, true)
		a.out.Calls++
		if err != nil {
			return e.failed(ctx, a, fmt.Sprintf("attach local tags %q", plan.Attach), err)
		}
		a.out.Tagged = true
	}
	unpublished := false
	var removed []string
	for _, tag := range plan.Remove {
		err := e.opts.MISP.RemoveTag(callCtx(), uuid, tag)
		a.out.Calls++
		switch {
		case err == nil:
			unpublished = unpublished || st.removalUnpublishes(tag)
			a.out.RemovedTags = append(a.out.RemovedTags, tag)
			if strings.EqualFold(tag, trust.TagWorkflowIncomplete) {
				a.out.RemovedIncomplete = true
			}
		case errors.Is(err, misp.ErrNotFound):
			// Not attached (any more): nothing removed, nothing unpublished (misp-api.md §2.4).
		default:
			return e.failed(ctx, a, fmt.Sprintf("remove tag %q", tag), err)
		}
		removed = append(removed, tag)
	}
	if plan.Publish || (plan.PublishIfUnpublished && unpublished) {
		// After the tags: removing a global tag unpublished the event (sync/api/59–60).
		_, err := e.opts.MISP.Publish(callCtx(), uuid)
		a.out.Calls++
		if err != nil {
			return e.failed(ctx, a, "publish", err)
		}
		a.out.Published = true
		e.mu.Lock()
		e.pubs.put(uuid, version, e.clock.Now())
		e.mu.Unlock()
	}
	after := st.after(plan.Attach, removed, unpublished, a.out.Published || (recent && !unpublished))
	a.state = &after
	return a
}

// failed classifies an error of one step.
func (e *Engine) failed(ctx context.Context, a attempt, step string, err error) attempt {
	if ctx.Err() != nil {
		a.canceled = true
		return a
	}
	if errors.Is(err, misp.ErrNotFound) {
		// The event is gone (deleted) or invisible to the key: nothing to curate.
		a.out.Skipped = "event not found"
		return a
	}
	a.err = fmt.Errorf("%s: %w", step, err)
	a.retry = transient(err)
	return a
}

// transient reports errors another attempt may fix: MISP 5xx, 429, unusable answers
// (a proxy's error page), network errors and timeouts. 4xx answers (permissions, bad
// key, validation) need a person and are not retried.
func transient(err error) bool {
	var ae *misp.APIError
	if errors.As(err, &ae) {
		return errors.Is(ae.Kind, misp.ErrServer) || errors.Is(ae.Kind, misp.ErrRateLimited) ||
			errors.Is(ae.Kind, misp.ErrUnexpectedResponse)
	}
	return !errors.Is(err, misp.ErrInvalidArgument)
}

func untrustedClass(s Source) Class {
	switch s {
	case SourcePull:
		return ClassUntrustedPulled
	case SourcePush:
		return ClassUntrustedPushed
	}
	return ClassUntrusted
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func stateOf(m misp.EventMeta) eventState {
	return eventState{Tags: m.Tags, Published: m.Published}
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
	acc.RemovedIncomplete = acc.RemovedIncomplete || a.out.RemovedIncomplete
	acc.RemovedTags = append(acc.RemovedTags, a.out.RemovedTags...)
	acc.Policy, acc.OrgUUID, acc.Class, acc.Plan = a.out.Policy, a.out.OrgUUID, a.out.Class, a.out.Plan
	acc.DryRun, acc.Skipped = a.out.DryRun, a.out.Skipped
	acc.AlreadyCurated = a.out.AlreadyCurated && !acc.Tagged && !acc.Published && len(acc.RemovedTags) == 0
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
		e.learnCurated(en.uuid, a.orgc, *a.state, now)
	case a.err != nil || out.Tagged || out.Published || len(out.RemovedTags) > 0:
		// Failed for good, possibly after some writes (or a timeout whose write went
		// through): what the feed told before this curation no longer describes the
		// event, so the next curation (a follow-up, catch-up) reads it again.
		e.forgetState(en.uuid, now)
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
	changed := o.Tagged || o.Published || len(o.RemovedTags) > 0
	if o.Err != nil || changed || e.log.V(1).Enabled() {
		kv := []any{"event", o.EventUUID, "org", o.OrgUUID, "policy", o.Policy, "source", o.Source, "calls", o.Calls}
		switch {
		case o.Err != nil:
			e.log.Error(o.Err, "curation failed; catch-up will try again", append(kv, "attempts", o.Attempts)...)
		case changed:
			e.log.Info("curated event", append(kv, "attached", o.Plan.Attach, "removed", o.RemovedTags, "published", o.Published)...)
		case o.Skipped != "":
			e.log.V(1).Info("event skipped", append(kv, "reason", o.Skipped)...)
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

// ---- what the feed tells (callers hold e.mu) ----

func (e *Engine) putHint(uuid string, h *hint, now time.Time) {
	if h.eventID != "" {
		e.ids[h.eventID] = uuid
	}
	e.hints.put(uuid, h, now)
}

// forgetID drops the id → uuid entry of a hint that is gone (caller holds e.mu).
func (e *Engine) forgetID(uuid string, h *hint) {
	if h.eventID != "" && e.ids[h.eventID] == uuid {
		delete(e.ids, h.eventID)
	}
}

// learnRow: a row message (locked) starts a new version of the event: its creator org is
// known, its tags are not (they are saved after the row, sync README "pull-new"), and a
// publish we remember for an older version no longer says anything about it. A row with
// the timestamp of the version we already know is a duplicate and changes nothing.
func (e *Engine) learnRow(m feed.Message, now time.Time) {
	old, had := e.hints.get(m.EventUUID, now)
	if had && m.Timestamp != 0 && old.ts == m.Timestamp && (m.OrgcUUID == "" || m.OrgcUUID == old.orgc) &&
		(!old.known || old.state.Published == m.Published) {
		e.putHint(m.EventUUID, old, now)
		return
	}
	h := &hint{eventID: m.EventID, orgc: m.OrgcUUID, locked: true, ts: m.Timestamp}
	if had {
		if h.eventID == "" {
			h.eventID = old.eventID
		}
		if h.orgc == "" {
			h.orgc = old.orgc
		}
	}
	e.putHint(m.EventUUID, h, now)
	if ts, ok := e.pubs.get(m.EventUUID, now); ok && (ts == 0 || ts != m.Timestamp) {
		e.pubs.delete(m.EventUUID)
	}
}

// learnPublish: misp_json carries the full event once its tags and attributes are saved,
// every tag with its locality (misp-api.md §1.9), and is sent by Event::publish(), so
// the event is published right after — even when the payload says published:false (a
// local publish sends the flag as loaded before the save, sync README "Other surprises").
func (e *Engine) learnPublish(m feed.Message, now time.Time) {
	old, had := e.hints.get(m.EventUUID, now)
	if had && old.curated && m.Timestamp != 0 && m.Timestamp <= old.ts {
		// Sent for the version we have curated since (a lagging feed delivers a pull's
		// misp_json after our curation): it describes the event before our changes.
		return
	}
	h := &hint{eventID: m.EventID, orgc: m.OrgcUUID, known: true, locked: m.Locked, ts: m.Timestamp,
		state: eventState{Published: true, Tags: make([]misp.Tag, 0, len(m.Tags))}}
	for _, t := range m.Tags {
		h.state.Tags = append(h.state.Tags, misp.Tag{Name: t.Name, Local: t.Local})
	}
	if had {
		if h.eventID == "" {
			h.eventID = old.eventID
		}
		if h.orgc == "" {
			h.orgc = old.orgc
		}
	}
	e.putHint(m.EventUUID, h, now)
}

// learnTag: an event tag attached or detached after what we know. A local attach is
// applied; anything else may have unpublished the event (global tags do; a detach does
// not say which kind it was), so the state must be read again.
func (e *Engine) learnTag(m feed.Message, now time.Time) {
	uuid := e.ids[m.EventID]
	if uuid == "" {
		return
	}
	old, ok := e.hints.get(uuid, now)
	if !ok || !old.known {
		return
	}
	h := *old
	if m.Action == feed.ActionTagAttachedToEvent && m.TagLocal {
		if !h.state.has(m.TagName) {
			h.state.Tags = append(slices.Clip(h.state.Tags), misp.Tag{Name: m.TagName, Local: true})
		}
	} else {
		h.known = false
	}
	e.putHint(uuid, &h, now)
}

// learnCurated: after a curation the engine knows the event's state.
func (e *Engine) learnCurated(uuid, orgc string, st eventState, now time.Time) {
	h := &hint{orgc: orgc, known: true, locked: true, curated: true, state: st}
	if old, ok := e.hints.get(uuid, now); ok {
		h.eventID, h.ts = old.eventID, old.ts
		if h.orgc == "" {
			h.orgc = old.orgc
		}
	}
	e.putHint(uuid, h, now)
}

// forgetState keeps what a hint says about the event's creator org but no longer claims
// to know its tags and published flag.
func (e *Engine) forgetState(uuid string, now time.Time) {
	old, ok := e.hints.get(uuid, now)
	if !ok || !old.known {
		return
	}
	h := *old
	h.known, h.curated, h.state = false, false, eventState{}
	e.putHint(uuid, &h, now)
}

func (e *Engine) forgetLocked(uuid string) {
	if h, ok := e.hints.delete(uuid); ok {
		e.forgetID(uuid, h)
	}
	e.pubs.delete(uuid)
}
