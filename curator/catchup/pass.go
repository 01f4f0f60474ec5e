// One catch-up pass: search MISP from the watermark (by timestamp and by
// publish_timestamp), hand every event that needs curating to the engine, and move the
// watermark no further than the oldest event not yet settled. Re-curation after a
// trust change is a pass restricted to a few orgs and a look-back window.

package catchup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// pass is one catch-up pass.
func (r *Runner) pass(ctx context.Context) error {
	start := r.opts.Now()
	r.mu.Lock()
	r.lastStarted = start
	wm := r.wm
	since := wm.Add(-r.opts.SafetyMargin)
	if wm.IsZero() {
		since = start.Add(-r.opts.Lookback)
	}
	retry := r.retriesLocked(start)
	r.mu.Unlock()

	// An event found now is found again by any pass whose watermark is at most hold.
	hold := since.Add(r.opts.SafetyMargin)
	seen := map[string]bool{}
	scanned, enqueued := 0, 0
	for _, f := range r.opts.Fields {
		n, e, err := r.scan(ctx, Query{Field: f, Since: since}, func(m misp.EventMeta) bool {
			return r.consider(ctx, m, seen, hold, engine.SourceCatchUp)
		})
		scanned += n
		enqueued += e
		if err != nil {
			r.opts.Metrics.pass(r.opts.Instance, KindPass, err)
			return fmt.Errorf("catch-up of events changed since %s (by %s): %w", since.UTC().Format(time.RFC3339), f, err)
		}
	}
	for _, uuid := range retry {
		if seen[uuid] {
			continue // the scan found it again, with fresh metadata
		}
		// No hint: the metadata the engine read when it failed may be stale.
		r.opts.Engine.Enqueue(uuid, engine.Hint{Source: engine.SourceCatchUp})
		r.opts.Metrics.enqueue(r.opts.Instance, "retry")
	}
	end := r.opts.Now()
	r.mu.Lock()
	r.wm = start
	persist := start
	for _, u := range r.unsettled {
		if !u.hold.IsZero() && u.hold.Before(persist) {
			persist = u.hold
		}
	}
	held := len(r.unsettled)
	r.mu.Unlock()
	r.opts.Metrics.pass(r.opts.Instance, KindPass, nil)
	r.opts.Metrics.setLag(r.opts.Instance, end.Sub(persist).Seconds())
	r.opts.Metrics.setHeld(r.opts.Instance, held)
	r.log.V(1).Info("catch-up pass done", "since", since.UTC().Format(time.RFC3339), "scanned", scanned,
		"enqueued", enqueued, "retried", len(retry), "unsettled", held, "took", end.Sub(start).Round(time.Millisecond))
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(Progress{Watermark: persist, LastRun: end, EventsScanned: int64(scanned)})
	}
	return nil
}

// retriesLocked returns the failed events to enqueue again and forgets holds older than
// Lookback (a curation failing for a day is not worth rescanning a growing window for;
// the failures are in the policy status). Caller holds mu.
func (r *Runner) retriesLocked(now time.Time) []string {
	var out []string
	for uuid, u := range r.unsettled {
		if now.Sub(u.added) > r.opts.Lookback {
			r.log.Info("giving up on an event whose curation kept failing for longer than the look-back", "event", uuid)
			delete(r.unsettled, uuid)
			continue
		}
		if u.failed {
			u.failed = false
			out = append(out, uuid)
		}
	}
	sort.Strings(out)
	return out
}

// consider enqueues one search result if it is a synchronised event of a trusted org that
// is not yet curated. hold is the watermark the search scanned from (zero for
// re-curations, which hold nothing).
func (r *Runner) consider(ctx context.Context, m misp.EventMeta, seen map[string]bool, hold time.Time, src engine.Source) bool {
	if seen[m.UUID] {
		return false
	}
	seen[m.UUID] = true
	if !m.Locked {
		return false // created on this instance, not synchronised: never curated (engine doc)
	}
	// Only events whose plan is not empty go to the engine (the engine's own rule,
	// engine.PlanFor), so a pass over curated events costs no engine work and does not
	// inflate the alreadyCurated counters.
	p, ok := r.policyOf(ctx, m)
	if !ok || engine.PlanFor(p, m).Empty() {
		return false
	}
	r.mu.Lock()
	r.track(m.UUID, hold, r.opts.Now())
	r.opts.Metrics.setHeld(r.opts.Instance, len(r.unsettled))
	r.mu.Unlock()
	meta := m
	r.opts.Engine.Enqueue(m.UUID, engine.Hint{Source: src, Meta: &meta})
	kind := KindPass
	if src == engine.SourceRecuration {
		kind = KindRecuration
	}
	r.opts.Metrics.enqueue(r.opts.Instance, kind)
	return true
}

// policyOf is the policy of a search result: by its creator, and — while a policy has
// sharer rules and Sharers is set — by the owner org too, which names the partner of a
// pushed event. A pulled event is owned by its server link's org and no search column
// names the server, so catch-up matches pulls by creator only; the feed's
// *_from_connected_server is what matches them by sharer.
func (r *Runner) policyOf(ctx context.Context, m misp.EventMeta) (index.Policy, bool) {
	if r.opts.Sharers == nil || !r.opts.Index.HasSharers() {
		return r.opts.Index.Lookup(m.OrgcUUID)
	}
	sharer, _, _ := r.opts.Sharers.Sharer(ctx, m.OrgID, "")
	p, _, ok := r.opts.Index.LookupSource(trust.Source{Creator: m.OrgcUUID, Sharer: sharer})
	return p, ok
}

// scan pages through one search; visit returns whether it enqueued the event.
func (r *Runner) scan(ctx context.Context, q Query, visit func(misp.EventMeta) bool) (scanned, enqueued int, err error) {
	q.Limit = r.opts.PageSize
	for q.Page = 1; ; q.Page++ {
		if err := ctx.Err(); err != nil {
			return scanned, enqueued, err
		}
		res, err := r.opts.Searcher.Search(ctx, q)
		if err != nil {
			return scanned, enqueued, fmt.Errorf("page %d: %w", q.Page, err)
		}
		scanned += len(res.Events)
		r.opts.Metrics.scan(r.opts.Instance, len(res.Events))
		for _, m := range res.Events {
			if visit(m) {
				enqueued++
			}
		}
		switch {
		case len(res.Events) > q.Limit:
			// MISP ignored the paging and sent everything at once.
			return scanned, enqueued, nil
		case res.Total >= 0 && q.Page*q.Limit >= res.Total:
			return scanned, enqueued, nil
		case res.Total < 0 && len(res.Events) < q.Limit:
			// No X-Result-Count: a short page is the last. With a total, a short page can
			// come before the end (the client filters some rows out), so it is not used.
			return scanned, enqueued, nil
		}
	}
}

// runRecuration curates again the events of the organisations asked for by Recurate.
func (r *Runner) runRecuration(ctx context.Context) error {
	r.mu.Lock()
	orgs := make([]string, 0, len(r.recurate))
	for o := range r.recurate {
		orgs = append(orgs, o)
	}
	r.recurate = map[string]bool{}
	r.mu.Unlock()
	if len(orgs) == 0 {
		return nil
	}
	sort.Strings(orgs)
	since := r.opts.Now().Add(-r.opts.Lookback)
	seen := map[string]bool{}
	visit := func(m misp.EventMeta) bool { return r.consider(ctx, m, seen, time.Time{}, engine.SourceRecuration) }
	scanned, enqueued := 0, 0
	var err error
	if len(orgs) <= r.opts.MaxOrgQueries {
		for _, o := range orgs {
			for _, f := range r.opts.Fields {
				var n, e int
				n, e, err = r.scan(ctx, Query{Field: f, Since: since, OrgUUID: o}, visit)
				scanned, enqueued = scanned+n, enqueued+e
				if err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	} else {
		set := make(map[string]bool, len(orgs))
		for _, o := range orgs {
			set[o] = true
		}
		for _, f := range r.opts.Fields {
			var n, e int
			n, e, err = r.scan(ctx, Query{Field: f, Since: since}, func(m misp.EventMeta) bool {
				return set[m.OrgcUUID] && visit(m)
			})
			scanned, enqueued = scanned+n, enqueued+e
			if err != nil {
				break
			}
		}
	}
	r.opts.Metrics.pass(r.opts.Instance, KindRecuration, err)
	if err != nil {
		// Keep all of them for the retry: what was enqueued already is cheap to see twice.
		r.mu.Lock()
		for _, o := range orgs {
			r.recurate[o] = true
		}
		r.mu.Unlock()
		return fmt.Errorf("re-curation of %d organisation(s) since %s: %w", len(orgs), since.UTC().Format(time.RFC3339), err)
	}
	r.log.Info("re-curated the events of organisations whose trust changed", "orgs", len(orgs),
		"since", since.UTC().Format(time.RFC3339), "scanned", scanned, "enqueued", enqueued)
	return nil
}
