// One catch-up pass: search MISP from the watermark (by timestamp and by
// publish_timestamp), hand every event that needs curating to the engine, and move the
// watermark no further than the oldest event not yet settled. Re-curation after a
// trust change is a pass restricted to a few orgs and a look-back window.

package catchup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
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
	rescan := r.rescan
	if !rescan.IsZero() && rescan.Before(since) {
		since = rescan
	}
	r.rescan = time.Time{}
	r.skipped = 0
	retry := r.retriesLocked(start)
	r.mu.Unlock()

	// An event found now is found again by any pass whose watermark is at most hold.
	hold := since.Add(r.opts.SafetyMargin)
	seen := map[string]bool{}
	scanned, enqueued := 0, 0
	for _, f := range r.opts.Fields {
		n, e, err := r.scan(ctx, Query{Field: f, Since: since}, func(m misp.EventMeta, readAt time.Time) bool {
			return r.consider(ctx, m, readAt, seen, hold, engine.SourceCatchUp)
		})
		scanned += n
		enqueued += e
		if err != nil {
			r.mu.Lock()
			if !rescan.IsZero() && (r.rescan.IsZero() || rescan.Before(r.rescan)) {
				r.rescan = rescan // the next attempt rescans
			}
			r.mu.Unlock()
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
	skipped := r.skipped
	r.mu.Unlock()
	r.opts.Metrics.pass(r.opts.Instance, KindPass, nil)
	r.opts.Metrics.setLag(r.opts.Instance, end.Sub(persist).Seconds())
	r.opts.Metrics.setHeld(r.opts.Instance, held)
	r.log.V(1).Info("catch-up pass done", "since", since.UTC().Format(time.RFC3339), "scanned", scanned,
		"enqueued", enqueued, "retried", len(retry), "unsettled", held, "skippedRows", skipped, "took", end.Sub(start).Round(time.Millisecond))
	if !rescan.IsZero() {
		r.log.Info("rescanned the look-back window", "since", since.UTC().Format(time.RFC3339), "scanned", scanned, "enqueued", enqueued)
	}
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(Progress{Watermark: persist, LastRun: end, EventsScanned: int64(scanned), SkippedRows: skipped})
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
// is not yet curated. readAt is when the search was sent; hold is the watermark the search
// scanned from (zero for re-curations, which hold nothing).
func (r *Runner) consider(ctx context.Context, m misp.EventMeta, readAt time.Time, seen map[string]bool, hold time.Time, src engine.Source) bool {
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
	r.opts.Engine.Enqueue(m.UUID, engine.Hint{Source: src, Meta: &meta, ReadAt: readAt})
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
	match := engine.PolicyOf(ctx, r.opts.Index, r.opts.Sharers, m.OrgcUUID, m.OrgID, "")
	return match.Policy, match.Trusted
}

// scan pages through one search; visit returns whether it enqueued the event. The rows it
// could not read are recorded (skipRow) when the scan succeeds; a failed scan is redone
// by the next pass, rows included.
func (r *Runner) scan(ctx context.Context, q Query, visit func(m misp.EventMeta, readAt time.Time) bool) (scanned, enqueued int, err error) {
	sc := &scanner{r: r, visit: visit, budget: r.opts.MaxBadRows}
	q.Limit = r.opts.PageSize
	for q.Page = 1; ; q.Page++ {
		if err = ctx.Err(); err != nil {
			break
		}
		var more bool
		if more, err = sc.page(ctx, q); err != nil || !more {
			break
		}
	}
	if err == nil {
		err = sc.settleSuspects(ctx)
	}
	if err == nil {
		for _, s := range sc.skips {
			r.skipRow(s)
		}
	}
	return sc.scanned, sc.enqueued, err
}

// settleSuspects reads the single rows that failed once more, at the end of the scan: a
// row that fails again is skipped — when other reads of this scan succeeded. When none
// did, MISP itself is failing (an outage answering 500 to everything), and skipping would
// lose good events: the scan fails and the pass is retried.
func (sc *scanner) settleSuspects(ctx context.Context) error {
	for _, q := range sc.suspects {
		readAt := sc.r.opts.Now()
		res, err := sc.r.opts.Searcher.Search(ctx, q)
		switch {
		case err == nil:
			sc.successes++
			if _, err := sc.take(q, res, readAt); err != nil {
				return err
			}
		case !badPage(err):
			return fmt.Errorf("row %d: %w", (q.Page-1)*q.Limit+1, err)
		default:
			sc.skip(q, (q.Page-1)*q.Limit, "", err.Error())
		}
	}
	if len(sc.skips) > 0 && sc.successes == 0 {
		return fmt.Errorf("no page of the search could be read (MISP failing, not a damaged row?): %s", sc.skips[0].reason)
	}
	return nil
}

// scanner reads the pages of one search.
type scanner struct {
	r                 *Runner
	visit             func(m misp.EventMeta, readAt time.Time) bool
	scanned, enqueued int
	budget            int // rows MISP cannot serve that may still be skipped in this scan
	successes         int // searches that answered
	suspects          []Query
	skips             []skippedRow
}

// skippedRow is an index row a scan could not read.
type skippedRow struct {
	q      Query
	offset int    // in the query's results, 0-based
	id     string // the row's event id, when known
	reason string
}

func (sc *scanner) skip(q Query, offset int, id, reason string) {
	sc.skips = append(sc.skips, skippedRow{q: q, offset: offset, id: id, reason: reason})
}

// page reads one page and reports whether more pages follow. A page MISP cannot serve
// (badPage) is read again in smaller pages until the rows it cannot serve are found and
// skipped (isolate), so one damaged event never stops the pass.
func (sc *scanner) page(ctx context.Context, q Query) (more bool, err error) {
	readAt := sc.r.opts.Now()
	res, err := sc.r.opts.Searcher.Search(ctx, q)
	if err != nil {
		if !badPage(err) {
			return false, fmt.Errorf("page %d: %w", q.Page, err)
		}
		return sc.isolate(ctx, q, err)
	}
	sc.successes++
	rows := max(res.Rows, len(res.Events)+len(res.Skipped))
	sc.scanned += len(res.Events)
	sc.r.opts.Metrics.scan(sc.r.opts.Instance, len(res.Events))
	for _, s := range res.Skipped {
		sc.skip(q, (q.Page-1)*q.Limit+s.Index, s.ID, s.Reason)
	}
	for _, m := range res.Events {
		if sc.visit(m, readAt) {
			sc.enqueued++
		}
	}
	switch {
	case rows > q.Limit:
		// MISP ignored the paging and sent everything at once.
		return false, nil
	case res.Total >= 0:
		return q.Page*q.Limit < res.Total, nil
	default:
		// No X-Result-Count: a short page is the last. With a total, a short page can
		// come before the end (the client filters some rows out), so it is not used.
		return rows >= q.Limit, nil
	}
}

// isolate reads the rows of a failed page again in smaller pages (a divisor of its size,
// so the smaller pages cover exactly its rows), down to single rows. A single row that
// fails is a suspect, read again at the end of the scan (settleSuspects). More than
// MaxBadRows suspects in one scan mean MISP itself is failing, not a few rows: the scan
// fails (the pass is retried, the watermark stays). It reports whether rows may follow
// the failed page.
func (sc *scanner) isolate(ctx context.Context, q Query, pageErr error) (more bool, err error) {
	off := (q.Page - 1) * q.Limit
	if q.Limit == 1 {
		if len(sc.suspects) >= sc.budget {
			return false, fmt.Errorf("more than %d index rows MISP cannot serve in one search (MISP failing, not a damaged row?): %w",
				sc.budget, pageErr)
		}
		sc.suspects = append(sc.suspects, q)
		// Whether rows follow is unknown: the next single row says (an empty page ends it).
		return true, nil
	}
	sub := largestProperDivisor(q.Limit)
	sc.r.log.Info("an event index page failed; reading it again in smaller pages to find the rows MISP cannot serve",
		"by", q.Field, "page", q.Page, "limit", q.Limit, "subLimit", sub, "error", pageErr.Error())
	sq := q
	sq.Limit = sub
	for i := 0; i < q.Limit/sub; i++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		sq.Page = off/sub + 1 + i
		more, err = sc.page(ctx, sq)
		if err != nil || !more {
			return more, err
		}
	}
	return true, nil
}

// take processes a page read (at readAt) during an isolation.
func (sc *scanner) take(q Query, res misp.EventPage, readAt time.Time) (bool, error) {
	sc.scanned += len(res.Events)
	sc.r.opts.Metrics.scan(sc.r.opts.Instance, len(res.Events))
	for _, s := range res.Skipped {
		sc.skip(q, (q.Page-1)*q.Limit+s.Index, s.ID, s.Reason)
	}
	for _, m := range res.Events {
		if sc.visit(m, readAt) {
			sc.enqueued++
		}
	}
	rows := max(res.Rows, len(res.Events)+len(res.Skipped))
	if res.Total >= 0 {
		return q.Page*q.Limit < res.Total, nil
	}
	return rows >= q.Limit, nil
}

// badPage reports page failures a damaged row can cause: MISP's own internal error (500:
// an exception while rendering an event) or an answer the client cannot read. A proxy's
// 502/503/504, a 429 or a network error mean MISP is unavailable, and the pass is retried
// as a whole.
func badPage(err error) bool {
	var ae *misp.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status == http.StatusInternalServerError ||
		(errors.Is(ae.Kind, misp.ErrUnexpectedResponse) && ae.Status >= 200 && ae.Status < 300)
}

func largestProperDivisor(n int) int {
	for d := n / 2; d > 1; d-- {
		if n%d == 0 {
			return d
		}
	}
	return 1
}

// skipRow records an index row a complete scan could not read (metric, log line with the
// row's event id when known, the pass's count for the status).
func (r *Runner) skipRow(s skippedRow) {
	r.opts.Metrics.skipRow(r.opts.Instance)
	r.mu.Lock()
	r.skipped++
	r.mu.Unlock()
	kv := []any{"eventID", s.id, "position", s.offset + 1, "by", s.q.Field, "since", s.q.Since.UTC().Format(time.RFC3339), "reason", s.reason}
	if s.q.OrgUUID != "" {
		kv = append(kv, "org", s.q.OrgUUID)
	}
	r.log.Info("skipped an event index row catch-up cannot read; its event is not curated from this search", kv...)
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
	visit := func(m misp.EventMeta, readAt time.Time) bool {
		return r.consider(ctx, m, readAt, seen, time.Time{}, engine.SourceRecuration)
	}
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
			n, e, err = r.scan(ctx, Query{Field: f, Since: since}, func(m misp.EventMeta, readAt time.Time) bool {
				return set[m.OrgcUUID] && visit(m, readAt)
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
