package catchup

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const (
	highOrg      = "1521ae8b-48de-4766-8b2a-fdecef763fa8" // PARTNER-HIGH of the captures
	mediumOrg    = "5cf66e53-b5f8-43e7-be9a-49880a3b4631"
	untrustedOrg = "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19"
)

var (
	tagA = trust.SourceReliabilityTag("a")
	tagC = trust.SourceReliabilityTag("c")
)

// clock is a settable time source shared by the double and the runner, so event
// timestamps and watermarks are on one timeline.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// recorder is the engine side of the tests: it records what catch-up hands over.
type recorder struct {
	mu    sync.Mutex
	calls []enqueued
	// settle, when set, reports every enqueued event as curated at once (an engine that
	// finishes immediately).
	settle func(uuid string)
}

type enqueued struct {
	uuid string
	hint engine.Hint
}

func (r *recorder) Enqueue(uuid string, h engine.Hint) {
	r.mu.Lock()
	r.calls = append(r.calls, enqueued{uuid, h})
	settle := r.settle
	r.mu.Unlock()
	if settle != nil {
		settle(uuid)
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) take() []enqueued {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func uuids(es []enqueued) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.uuid)
	}
	sort.Strings(out)
	return out
}

type harness struct {
	t        *testing.T
	clk      *clock
	misp     *misptest.Server
	client   *misp.Client
	idx      *index.Index
	rec      *recorder
	runner   *Runner
	progress chan Progress
	cancel   context.CancelFunc
	done     chan struct{}
}

func policyObj(name, grade string, publish bool, orgs ...string) *v1alpha1.OrgTrustPolicy {
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: name},
		Spec: v1alpha1.OrgTrustPolicySpec{SourceReliability: grade, Publish: publish}}
	for _, o := range orgs {
		p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o})
	}
	return p
}

func build(policies ...*v1alpha1.OrgTrustPolicy) *index.Snapshot {
	return index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org {
		orgs, _, _ := trust.EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return "", false, nil })
		return orgs
	})
}

func newHarness(t *testing.T, mutate func(*Options)) *harness {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	srv := misptest.NewServer(misptest.Options{Now: clk.Now})
	t.Cleanup(srv.Close)
	c, err := misp.New(misp.Options{URL: srv.URL(), APIKey: srv.AdminKey(), QPS: -1, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: clk, misp: srv, client: c, idx: &index.Index{}, rec: &recorder{}, progress: make(chan Progress, 16)}
	h.idx.Store(build(policyObj("high", "a", true, highOrg), policyObj("medium", "c", false, mediumOrg)))
	opts := Options{
		Instance: "sec/misp", Searcher: MISPSearcher{Client: c}, Index: h.idx, Engine: h.rec,
		Interval: time.Hour, MinSpacing: time.Nanosecond, PageSize: 3, Now: clk.Now,
		Rand:       func() float64 { return 0.5 },
		OnProgress: func(p Progress) { h.progress <- p },
	}
	if mutate != nil {
		mutate(&opts)
	}
	h.runner, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { defer close(h.done); _ = h.runner.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// nextPass waits for the next complete pass.
func (h *harness) nextPass() Progress {
	h.t.Helper()
	select {
	case p := <-h.progress:
		return p
	case <-time.After(30 * time.Second):
		h.t.Fatal("no catch-up pass completed within 30s")
	}
	return Progress{}
}

// event adds a synchronised event created by org, changed ago before the clock's now.
func (h *harness) event(org string, ago time.Duration, published bool, tags ...misptest.EventTag) string {
	e := h.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: org}, Locked: true, Published: published,
		Timestamp: h.clk.Now().Add(-ago), Attributes: 1, Tags: tags})
	return e.UUID
}

func TestFirstPassLooksBackAndEnqueuesOnlyTrustedUncuratedEvents(t *testing.T) {
	h := newHarness(t, nil)
	want := []string{
		h.event(highOrg, time.Hour, true),                                               // high, not tagged
		h.event(highOrg, 2*time.Hour, true, misptest.EventTag{Name: tagA, Local: true}), // tagged, not complete
		h.event(mediumOrg, 23*time.Hour, false),                                         // medium, inside the look-back
		h.event(highOrg, 3*time.Hour, true, misptest.EventTag{Name: tagA, Local: true}, // curated but the partner's
			misptest.EventTag{Name: trust.TagWorkflowComplete, Local: true}, misptest.EventTag{Name: trust.TagWorkflowIncomplete}), // incomplete came back
	}
	h.event(untrustedOrg, time.Hour, true)                                           // untrusted
	h.event(mediumOrg, 25*time.Hour, false)                                          // outside the look-back
	h.event(mediumOrg, time.Hour, false, misptest.EventTag{Name: tagC, Local: true}) // already curated
	h.event(highOrg, time.Hour, true, misptest.EventTag{Name: tagA, Local: true},
		misptest.EventTag{Name: trust.TagWorkflowComplete, Local: true}) // already curated and published
	local := h.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: highOrg}, Published: true, Attributes: 1}) // not synchronised
	_ = local

	h.start()
	p := h.nextPass()
	got := h.rec.take()
	sort.Strings(want)
	if fmt.Sprint(uuids(got)) != fmt.Sprint(want) {
		t.Fatalf("enqueued %v, want %v", uuids(got), want)
	}
	for _, e := range got {
		if e.hint.Source != engine.SourceCatchUp || e.hint.Meta == nil || e.hint.Meta.UUID != e.uuid {
			t.Errorf("event %s enqueued with hint %+v, want the catch-up source and its metadata", e.uuid, e.hint)
		}
	}
	if p.EventsScanned != 8 {
		t.Errorf("EventsScanned = %d, want the 8 events changed within 24h", p.EventsScanned)
	}
	// Nothing settled yet: the watermark stays where this pass scanned from (+ the margin
	// the next pass subtracts), so a restart scans this window again.
	if want := h.clk.Now().Add(-DefaultLookback + DefaultSafetyMargin); !p.Watermark.Equal(want) {
		t.Errorf("watermark %s, want %s while the engine has not settled the events", p.Watermark, want)
	}
}

func TestPassesResumeFromTheWatermarkMinusTheSafetyMargin(t *testing.T) {
	wm := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	h := newHarness(t, func(o *Options) {
		o.Watermark = func(context.Context) (time.Time, error) { return wm, nil }
		o.SafetyMargin = 2 * time.Minute
	})
	inMargin := h.event(highOrg, time.Hour+time.Minute, true) // 10:59, inside the 2 min margin
	h.event(highOrg, time.Hour+3*time.Minute, true)           // 10:57, before it: seen by an earlier pass
	h.start()
	h.nextPass()
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint([]string{inMargin}) {
		t.Fatalf("enqueued %v, want only the event inside watermark-margin", got)
	}
	var body map[string]any
	for _, r := range h.misp.Requests() {
		if r.Route == "/events/index" {
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if body["timestamp"] != fmt.Sprint(wm.Add(-2*time.Minute).Unix()) {
		t.Errorf("index search filtered on timestamp %v, want watermark-margin %d", body["timestamp"], wm.Add(-2*time.Minute).Unix())
	}
	if _, ok := body["org"]; ok {
		t.Errorf("a pass must not use MISP's org filter (one unknown org empties the whole answer): %v", body)
	}
}

func TestPagingReadsEveryPage(t *testing.T) {
	h := newHarness(t, nil) // PageSize 3
	var want []string
	for i := range 10 {
		want = append(want, h.event(mediumOrg, time.Duration(i+1)*time.Minute, false))
	}
	h.start()
	p := h.nextPass()
	sort.Strings(want)
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("enqueued %d events, want all 10", len(got))
	}
	if p.EventsScanned != 10 || h.misp.Calls("/events/index") != 4 {
		t.Errorf("scanned %d in %d calls, want 10 in 4 pages of 3", p.EventsScanned, h.misp.Calls("/events/index"))
	}
}

func TestTriggerRunsAPassThatFindsNewEvents(t *testing.T) {
	h := newHarness(t, nil)
	h.rec.settle = func(uuid string) { h.runner.Settled(uuid, nil) }
	h.start()
	h.nextPass()
	h.clk.Advance(time.Minute)
	ev := h.event(highOrg, 0, true)
	h.runner.Trigger()
	p := h.nextPass()
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint([]string{ev}) {
		t.Fatalf("after a trigger enqueued %v, want the new event", got)
	}
	if !p.Watermark.Equal(h.clk.Now()) {
		t.Errorf("watermark %s, want %s", p.Watermark, h.clk.Now())
	}
}

func TestTriggersWithinMinSpacingCoalesce(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MinSpacing = 300 * time.Millisecond; o.Now = time.Now })
	h.start()
	h.nextPass()
	for range 5 {
		h.runner.Trigger()
	}
	h.nextPass()
	select {
	case <-h.progress:
		t.Fatal("five triggers within the spacing ran more than one pass")
	case <-time.After(time.Second):
	}
}

func TestFailedPassKeepsTheWatermarkAndIsRetried(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RetryBase = 50 * time.Millisecond })
	h.misp.SetFault("/events/index", misptest.Fault{ErrorStatus: 500})
	ev := h.event(highOrg, time.Minute, true)
	h.start()
	deadline := time.Now().Add(20 * time.Second)
	for h.misp.Calls("/events/index") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a failed pass was not retried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case p := <-h.progress:
		t.Fatalf("a failed pass reported progress %+v", p)
	default:
	}
	h.misp.SetFault("/events/index", misptest.Fault{})
	h.nextPass()
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint([]string{ev}) {
		t.Fatalf("after MISP recovered enqueued %v, want %s", got, ev)
	}
}

func TestUnsettledEventsHoldTheWatermarkAndFailuresAreRetried(t *testing.T) {
	h := newHarness(t, nil)
	first := h.clk.Now()
	// Ten minutes old: outside the next passes' window (watermark − 2 min), so only the
	// retry brings it back.
	ev := h.event(highOrg, 10*time.Minute, true)
	h.start()
	h.nextPass()
	h.rec.take()

	// The engine has not finished the event: the next pass persists the first pass's hold.
	h.clk.Advance(10 * time.Minute)
	h.runner.Trigger()
	p := h.nextPass()
	// The first pass scanned from first-Lookback: persisting first-Lookback+margin makes a
	// restarted curator scan that window again.
	if want := first.Add(-DefaultLookback + DefaultSafetyMargin); !p.Watermark.Equal(want) {
		t.Fatalf("watermark %s, want it held at the first pass's scan start + margin %s", p.Watermark, want)
	}

	// A transient failure: the event comes back at the next pass, without a stale hint.
	h.runner.Settled(ev, fmt.Errorf("publish: %w", misp.ErrServer))
	h.clk.Advance(time.Minute)
	h.runner.Trigger()
	h.nextPass()
	got := h.rec.take()
	if len(got) != 1 || got[0].uuid != ev || got[0].hint.Meta != nil {
		t.Fatalf("retry enqueued %+v, want %s once without metadata", got, ev)
	}

	// Success releases the hold.
	h.runner.Settled(ev, nil)
	h.clk.Advance(time.Minute)
	h.runner.Trigger()
	p = h.nextPass()
	if !p.Watermark.Equal(h.clk.Now()) {
		t.Fatalf("watermark %s, want the pass start %s once the event settled", p.Watermark, h.clk.Now())
	}
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	for _, kind := range []error{misp.ErrForbidden, misp.ErrNotAllowed, misp.ErrNotFound, misp.ErrValidation} {
		t.Run(kind.Error(), func(t *testing.T) {
			h := newHarness(t, nil)
			ev := h.event(highOrg, 10*time.Minute, true)
			h.start()
			h.nextPass()
			h.rec.take()
			h.runner.Settled(ev, fmt.Errorf("curate %s: %w", ev, kind))
			h.clk.Advance(time.Minute)
			h.runner.Trigger()
			p := h.nextPass()
			if got := h.rec.take(); len(got) != 0 {
				t.Fatalf("enqueued %+v after a failure retrying cannot fix", got)
			}
			if !p.Watermark.Equal(h.clk.Now()) {
				t.Errorf("watermark %s held back by a permanently failed event", p.Watermark)
			}
		})
	}
}

func TestFeedCurationsTheEngineGaveUpOnAreRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	h.nextPass()
	h.runner.Settled("0b6f4c44-6e43-4f0e-9a1c-8d2b6b0e0a11", fmt.Errorf("timeout: %w", context.DeadlineExceeded))
	h.runner.Trigger()
	h.nextPass()
	got := h.rec.take()
	if len(got) != 1 || got[0].uuid != "0b6f4c44-6e43-4f0e-9a1c-8d2b6b0e0a11" {
		t.Fatalf("enqueued %+v, want the failed feed event", got)
	}
}

func TestRecurationOfFewOrgsQueriesThemOneByOne(t *testing.T) {
	h := newHarness(t, nil)
	old := h.event(mediumOrg, 20*time.Hour, false, misptest.EventTag{Name: tagC, Local: true})
	h.event(mediumOrg, 30*time.Hour, false, misptest.EventTag{Name: tagC, Local: true}) // beyond the look-back
	h.event(highOrg, time.Hour, true, misptest.EventTag{Name: tagA, Local: true},
		misptest.EventTag{Name: trust.TagWorkflowComplete, Local: true})
	h.start()
	h.nextPass()
	h.rec.take()
	h.misp.ResetStats()

	// medium is promoted to a publishing "a": its curated event needs the new state.
	prev := h.idx.Swap(build(policyObj("high", "a", true, highOrg, mediumOrg)))
	orgs := index.Diff(prev, h.idx.Load())
	h.runner.Recurate(orgs)
	waitFor(t, "re-curation", func() bool { return h.rec.count() > 0 })
	got := h.rec.take()
	if len(got) != 1 || got[0].uuid != old || got[0].hint.Source != engine.SourceRecuration || got[0].hint.Meta == nil {
		t.Fatalf("re-curation enqueued %+v, want %s with its metadata", got, old)
	}
	for _, r := range h.misp.Requests() {
		if r.Route == "/events/index" && !strings.Contains(r.Body, mediumOrg) {
			t.Errorf("re-curation of one org searched without its org filter: %s", r.Body)
		}
	}
}

func TestRecurationOfManyOrgsScansOnceAndFiltersHere(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxOrgQueries = 1 })
	a := h.event(mediumOrg, 2*time.Hour, false, misptest.EventTag{Name: tagC, Local: true})
	b := h.event(untrustedOrg, 3*time.Hour, true)
	h.event(highOrg, time.Hour, true) // unchanged trust: not part of this re-curation
	h.start()
	h.nextPass()
	h.rec.take()
	h.misp.ResetStats()
	prev := h.idx.Swap(build(policyObj("high", "a", true, highOrg), policyObj("medium", "b", false, mediumOrg, untrustedOrg)))
	h.runner.Recurate(index.Diff(prev, h.idx.Load()))
	waitFor(t, "re-curation", func() bool { return h.rec.count() >= 2 })
	want := []string{a, b}
	sort.Strings(want)
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("re-curation enqueued %v, want %v", got, want)
	}
	for _, r := range h.misp.Requests() {
		if strings.Contains(r.Body, `"org"`) {
			t.Errorf("a re-curation of many orgs used MISP's org filter: %s", r.Body)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestALatePullIsFoundOnlyByItsPublishTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []TimeField
		found  bool
	}{
		{"a timestamp scan alone misses it", []TimeField{FieldTimestamp}, false},
		{"timestamp and publish_timestamp find it once", []TimeField{FieldTimestamp, FieldPublishTimestamp}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h *harness
			h = newHarness(t, func(o *Options) {
				o.Fields = tc.fields
				o.Watermark = func(context.Context) (time.Time, error) { return h.clk.Now().Add(-10 * time.Minute), nil }
			})
			// Edited by the partner three hours ago, pulled (and so published here) just now:
			// the event keeps the partner's timestamp (sync/README, sync/api/51).
			now := h.clk.Now()
			late := h.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: highOrg}, Locked: true, Published: true,
				Timestamp: now.Add(-3 * time.Hour), PublishTimestamp: now, Attributes: 1})
			recent := h.event(highOrg, time.Minute, true) // found by both clocks: enqueued once
			h.start()
			h.nextPass()
			want := []string{recent}
			if tc.found {
				want = append(want, late.UUID)
			}
			sort.Strings(want)
			if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("enqueued %v, want %v", got, want)
			}
		})
	}
}

// TestDamagedIndexRowsNeverStopCatchUp: a row MISP cannot render (its page answers 500)
// and a row without a uuid used to fail their pages and so every pass, for good: the
// watermark froze and later pages were never read. The damaged rows are found by reading
// the page again in smaller pages, skipped and recorded; every other event is enqueued
// and the watermark moves.
func TestDamagedIndexRowsNeverStopCatchUp(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(o *Options) { o.Metrics = NewMetrics(reg) })
	var all []string
	for i := range 8 {
		all = append(all, h.event(highOrg, time.Duration(60-i)*time.Minute, true))
	}
	h.misp.SetIndexRowFault(all[1], misptest.RowBreaksPage)  // page 1 of 3 rows answers 500
	h.misp.SetIndexRowFault(all[5], misptest.RowWithoutUUID) // page 2: one row without uuid
	h.rec.settle = func(uuid string) { h.runner.Settled(uuid, nil) }
	start := h.clk.Now()
	h.start()
	p := h.nextPass()
	want := []string{all[0], all[2], all[3], all[4], all[6], all[7]}
	sort.Strings(want)
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("enqueued %v, want every event but the two damaged ones %v", got, want)
	}
	if !p.Watermark.Equal(start) || p.SkippedRows != 2 {
		t.Fatalf("progress %+v, want the watermark at the pass start %s and 2 skipped rows", p, start)
	}
	if got := testutil.ToFloat64(NewMetrics(reg).skipped.WithLabelValues("sec/misp")); got != 2 {
		t.Errorf("skipped rows metric %v, want 2", got)
	}
}

// TestAnOutageAnswering500IsNotMistakenForDamagedRows: when every read fails, nothing is
// skipped: the pass fails, the watermark stays, and the events are found once MISP is back.
func TestAnOutageAnswering500IsNotMistakenForDamagedRows(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(o *Options) { o.RetryBase = 20 * time.Millisecond; o.Metrics = NewMetrics(reg) })
	ev := h.event(highOrg, time.Minute, true)
	h.misp.SetFault("/events/index", misptest.Fault{ErrorStatus: 500})
	h.start()
	failed := NewMetrics(reg).passes.WithLabelValues("sec/misp", KindPass, resultError)
	waitFor(t, "failed passes", func() bool { return testutil.ToFloat64(failed) >= 3 })
	select {
	case p := <-h.progress:
		t.Fatalf("a pass completed during the outage: %+v", p)
	default:
	}
	h.misp.SetFault("/events/index", misptest.Fault{})
	p := h.nextPass()
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint([]string{ev}) || p.SkippedRows != 0 {
		t.Fatalf("after the outage enqueued %v, skipped %d; want %s and none", got, p.SkippedRows, ev)
	}
}

func TestPendingEventsHoldTheWatermarkAndAreNotRetried(t *testing.T) {
	h := newHarness(t, nil)
	ev := h.event(highOrg, 10*time.Minute, true) // outside the window of the passes after the first
	h.start()
	h.nextPass()
	h.rec.take()
	// The engine queued a publish and waits for MISP to confirm it.
	h.runner.Pending(ev)
	h.clk.Advance(10 * time.Minute)
	h.runner.Trigger()
	p := h.nextPass()
	if got := h.rec.take(); len(got) != 0 {
		t.Fatalf("a pending event was enqueued again: %+v", got)
	}
	if p.Watermark.Equal(h.clk.Now()) {
		t.Fatalf("watermark %s moved past a pending event", p.Watermark)
	}
	h.runner.Settled(ev, nil) // confirmed
	h.clk.Advance(time.Minute)
	h.runner.Trigger()
	if p := h.nextPass(); !p.Watermark.Equal(h.clk.Now()) {
		t.Fatalf("watermark %s, want %s once the publish is confirmed", p.Watermark, h.clk.Now())
	}
}

func TestRescanCoversTheLookBackOnce(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Watermark = func(context.Context) (time.Time, error) { return time.Date(2026, 11, 26, 11, 59, 0, 0, time.UTC), nil }
	})
	h.rec.settle = func(uuid string) { h.runner.Settled(uuid, nil) }
	old := h.event(highOrg, 3*time.Hour, true) // arrived during a dry run: behind the watermark
	h.start()
	h.nextPass()
	if got := h.rec.take(); len(got) != 0 {
		t.Fatalf("the pass from the watermark enqueued %+v", got)
	}
	h.clk.Advance(time.Minute)
	h.runner.Rescan()
	h.nextPass()
	if got := uuids(h.rec.take()); fmt.Sprint(got) != fmt.Sprint([]string{old}) {
		t.Fatalf("the rescan enqueued %v, want %s", got, old)
	}
	h.clk.Advance(time.Minute)
	h.runner.Trigger()
	h.nextPass()
	if got := h.rec.take(); len(got) != 0 {
		t.Fatalf("the pass after the rescan enqueued %+v: the rescan must happen once", got)
	}
}

// TestEventsTheEngineRefusesAreRetriedAtTheNextPass (defect 2): an event the engine
// refused (its queue full) used to end without an outcome, so catch-up neither retried it
// nor held the watermark for it — lost, and a re-curation with it. With a real engine
// whose queue holds two events, every event handed over ends curated.
func TestEventsTheEngineRefusesAreRetriedAtTheNextPass(t *testing.T) {
	var runner *Runner
	h := newHarness(t, nil)
	eng := engine.New(engine.Options{Instance: "sec/misp", Index: h.idx, MISP: h.client, Concurrency: 1, MaxPending: 2,
		OnOutcome: func(o engine.Outcome) {
			if o.PublishPending && o.Err == nil {
				runner.Pending(o.EventUUID)
				return
			}
			runner.Settled(o.EventUUID, o.Err)
		}})
	var err error
	runner, err = New(Options{Instance: "sec/misp", Searcher: MISPSearcher{Client: h.client}, Index: h.idx, Engine: eng,
		Interval: time.Hour, MinSpacing: time.Nanosecond, PageSize: 3, Now: h.clk.Now, Rand: func() float64 { return 0.5 },
		OnProgress: func(p Progress) { h.progress <- p }})
	if err != nil {
		t.Fatal(err)
	}
	h.runner = runner
	// Ten minutes old: after the first pass only catch-up's retries bring them back.
	var events []string
	for range 5 {
		events = append(events, h.event(mediumOrg, 10*time.Minute, true))
	}
	old := h.event(mediumOrg, 20*time.Hour, true) // found only by the re-curation below
	h.start()
	h.nextPass() // the engine is not running yet: it takes two, refuses three
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// A promotion of the org re-curates its events within the look-back, the old one too.
	runner.Recurate([]string{mediumOrg})

	curated := func(uuid string) bool {
		e, _ := h.misp.Event(uuid)
		for _, tag := range e.Tags {
			if tag.Name == tagC && tag.Local {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, uuid := range append(events, old) {
			if !curated(uuid) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never curated: the refused ones were not retried", missing, len(events)+1)
		}
		waitFor(t, "the engine to drain", func() bool { return eng.Pending() == 0 })
		h.clk.Advance(time.Minute)
		runner.Trigger()
		h.nextPass()
	}
	waitFor(t, "the engine to drain", func() bool { return eng.Pending() == 0 })
	h.clk.Advance(time.Minute)
	runner.Trigger()
	if p := h.nextPass(); !p.Watermark.Equal(h.clk.Now()) {
		t.Fatalf("watermark %s held back after every event settled (now %s)", p.Watermark, h.clk.Now())
	}
}
