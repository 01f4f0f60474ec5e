// One curation attempt's REST steps: find the creator org and policy with as few
// reads as possible, plan (plan.go), then attach, remove and publish, and classify a
// failure as transient or final. Runs without e.mu, taking it only for the hints and the
// unconfirmed publishes (publish.go).

package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/misptrust/misp-trust-operator/curator/index"
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

// curate runs one attempt for an event and says whether a publish of ours is still
// unconfirmed after it.
func (e *Engine) curate(ctx context.Context, uuid string, t trigger, forceRead bool) attempt {
	a := e.curateOnce(ctx, uuid, t, forceRead)
	e.mu.Lock()
	a.out.PublishPending = e.pubs.recs[uuid] != nil
	e.mu.Unlock()
	return a
}

// curateOnce runs one attempt for an event: find its creator org and policy with as few
// reads as possible, plan, apply.
func (e *Engine) curateOnce(ctx context.Context, uuid string, t trigger, forceRead bool) attempt {
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

	// An unconfirmed publish of ours (publish.go): a check reads the event, and so does a
	// curation that may find the job failed; a misp_json that showed our state confirms
	// it without a read.
	now := e.clock.Now()
	e.mu.Lock()
	rec := e.pubs.recs[uuid]
	var feedOK, jobFailed bool
	if rec != nil {
		rec.checking = false
		feedOK = rec.feedConfirmed
		jobFailed = e.failedJob(rec, now)
	}
	e.mu.Unlock()
	switch {
	case feedOK:
		// The misp_json that confirmed it is newer than any search result.
		t.meta = nil
	case rec != nil && jobFailed:
		forceRead = true
	}

	// What we know without asking MISP: a search result given to Enqueue, else what the
	// feed said (the row message names the creator org; a misp_json after it carries
	// every tag and means published). A retry trusts neither: it re-derives everything.
	var st eventState
	known, locked := false, true
	var owner string // the owner org's local id (Event.org_id), "" if unknown
	if t.meta != nil && !t.metaAt.IsZero() {
		e.mu.Lock()
		if h, ok := e.hints.get(uuid, e.clock.Now()); ok && t.metaAt.Before(h.wrote) {
			// Read before our last change to the event (a search racing a curation):
			// it shows the event as it was, e.g. unpublished by our removal and not yet
			// published by the job we queued.
			t.meta = nil
		}
		e.mu.Unlock()
	}
	switch {
	case forceRead:
	case t.meta != nil:
		a.orgc, st, known, locked = t.meta.OrgcUUID, stateOf(*t.meta), true, t.meta.Locked
		owner = t.meta.OrgID
	default:
		e.mu.Lock()
		if h, ok := e.hints.get(uuid, e.clock.Now()); ok {
			a.orgc, owner = h.orgc, h.owner
			if h.known {
				st, known, locked = h.state, true, h.locked
			}
		}
		e.mu.Unlock()
	}
	// The sharer matters only while a policy has sharer rules; a pull names its server,
	// a pushed row its owner org, both resolved from memory (curator/sources).
	bySharer := e.opts.Sharers != nil && e.opts.Index.HasSharers()
	if a.orgc != "" && rec == nil && (!bySharer || owner != "" || t.server != "") {
		if _, _, trusted := e.lookup(ctx, &a, owner, t.server, bySharer); !trusted {
			// Untrusted creator and sharer named by the feed: no call at all (design.md §3).
			a.out.Class = untrustedClass(t.source)
			a.out.OrgUUID = a.orgc
			return a
		}
	}
	if rec != nil && known && st.Published && !feedOK {
		// Published, says a search or the feed — but perhaps from before our publish:
		// only a read made now confirms it.
		known = false
	}
	fresh := feedOK // the state shows what happened after MISP answered our publish
	if !known {
		meta, err := e.opts.MISP.EventMeta(callCtx(), uuid)
		a.out.Calls++
		if err != nil {
			return e.failed(ctx, a, "read metadata", err)
		}
		a.orgc, st, locked = meta.OrgcUUID, stateOf(meta), meta.Locked
		if meta.OrgID != "" {
			owner = meta.OrgID
		}
		fresh = true
	}
	a.out.OrgUUID = a.orgc
	pol, via, trusted := e.lookup(ctx, &a, owner, t.server, bySharer)
	if rec != nil && (!trusted || !pol.Publish || !locked) {
		// The trust changed meanwhile: the publish is no longer wanted, nothing to confirm.
		e.mu.Lock()
		e.dropPublish(uuid)
		e.mu.Unlock()
		rec = nil
	}
	if !trusted {
		a.out.Class = untrustedClass(t.source)
		a.state = &st
		return a
	}
	a.out.Via = via
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

	resend := false
	if rec != nil {
		switch {
		case st.Published && fresh:
			// The queued publish is confirmed: count it now.
			e.mu.Lock()
			e.confirmPublish(rec, now)
			e.mu.Unlock()
			a.out.Published = true
			rec = nil
		case !st.Published && fresh && jobFailed:
			// Still unpublished long after a later publish of ours was confirmed: the
			// workers took our job and it failed or vanished. Publish again.
			resend = true
		}
	}
	plan := makePlan(pol, st, rec != nil && !resend)
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
	published := false
	if plan.Publish || (plan.PublishIfUnpublished && unpublished) {
		// After the tags: removing a global tag unpublished the event (sync/api/59–60).
		e.mu.Lock()
		started := e.pubs.tick()
		e.mu.Unlock()
		msg, err := e.opts.MISP.Publish(callCtx(), uuid)
		a.out.Calls++
		switch {
		case err == nil && !isQueued(msg):
			// Published synchronously ("Event published without alerts").
			published, a.out.Published = true, true
			e.mu.Lock()
			e.dropPublish(uuid)
			e.mu.Unlock()
		case err == nil || misp.OutcomeUnknown(err):
			// "Job queued", or no answer: unconfirmed until a read or misp_json shows it
			// (publish.go). A retry after an unknown outcome reads the event and finds
			// this record, so it never publishes blindly a second time.
			e.mu.Lock()
			replaced := e.recordPublish(uuid, pol.Key, started, plan.Attach, removed, err, e.clock.Now())
			e.mu.Unlock()
			a.out.PublishQueued = true
			if replaced && resend {
				a.out.Republished = true
				e.met.resent()
				e.log.Info("a publish MISP queued evidently failed (a later one was confirmed, this event is still unpublished): published again",
					"event", uuid, "policy", pol.Key)
			}
			if err != nil {
				return e.failed(ctx, a, "publish", err)
			}
		default:
			return e.failed(ctx, a, "publish", err)
		}
	}
	after := st.after(plan.Attach, removed, unpublished, published)
	a.state = &after
	return a
}

// lookup finds the policy of the event with PolicyOf (by its creator alone unless
// bySharer) and records the sharer and the calls a table refresh made.
func (e *Engine) lookup(ctx context.Context, a *attempt, owner, server string, bySharer bool) (index.Policy, trust.Via, bool) {
	sharers := e.opts.Sharers
	if !bySharer {
		sharers = nil
	}
	m := PolicyOf(ctx, e.opts.Index, sharers, a.orgc, owner, server)
	a.out.Calls += m.Calls
	a.out.SharerUUID = m.SharerUUID
	return m.Policy, m.Via, m.Trusted
}

// Match is the policy PolicyOf found for an event.
type Match struct {
	Policy     index.Policy
	Via        trust.Via // which rule of Policy matched: creator or sharer
	SharerUUID string    // the sharer, when it was looked up and known
	Calls      int       // MISP calls a refresh of the sharers table made
	Trusted    bool      // a policy curates the event
}

// PolicyOf is the one rule that finds the policy of an event, for the engine and
// catch-up: by its creator alone, or — while a policy of idx has sharer rules and
// sharers is set — by trust.Match over the creator and the sharer (the partner that
// pushed it, named by its owner org id, or the remote org of the server it was pulled
// through). A sharer id missing from the table leaves the sharer unknown: the creator
// decides.
func PolicyOf(ctx context.Context, idx *index.Index, sharers Sharers, creator, owner, server string) Match {
	if sharers == nil || !idx.HasSharers() {
		pol, ok := idx.Lookup(creator)
		return Match{Policy: pol, Via: trust.ViaCreator, Trusted: ok}
	}
	sharer, _, calls := sharers.Sharer(ctx, owner, server)
	pol, via, ok := idx.LookupSource(trust.Source{Creator: creator, Sharer: sharer, Server: server})
	return Match{Policy: pol, Via: via, SharerUUID: sharer, Calls: calls, Trusted: ok}
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

func stateOf(m misp.EventMeta) eventState {
	return eventState{Tags: m.Tags, Published: m.Published}
}
