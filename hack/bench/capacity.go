package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The capacity mode (-mode capacity) answers "how fast does a deployed curator curate on
// a MISP of a given size?": for each MISP size (request workers × service time) and each
// event class it runs, in the same process and one after the other, (1) the curator with
// its deployed defaults (engine.Options and misp.Options left at their zero values: the
// adaptive client limit, the default engine concurrency) and (2) a tight reference client
// doing exactly the calls the curator's plan makes for that class, with 1×, 2× and 4× as
// many threads as MISP has workers; the best of them is the reference. Each run gets a
// fresh capacity-limited double (misptest.Capacity) with the same events.
//
// Events are pulled from a partner, as in misp/real/capacity.md: published, with the
// partner's global workflow:state="incomplete". tag_only: a medium-trust creator (attach
// one local tag: 1 call); tag_publish: a high-trust creator (attach two local tags, remove
// the partner's tag, publish: 3 calls); untrusted pulled and pushed: no call at all.
//
// Latency is MISP's: the time from sending a request to its answer, measured on the wire
// (queue wait at MISP plus service), for the curator and for every reference thread count,
// so the curator's p99 can be compared with the reference's at the same throughput.

type capConfig struct {
	workers  []int
	services []time.Duration
	seconds  float64 // target length of one measured run
	maxEvent int     // cap on events per class and run
	slowdown bool
	// unlimited runs the curator with no client-side limit at all (QPS < 0): what the
	// adaptive limit costs, or saves, against the same engine.
	unlimited bool
	classes   []engine.Class // nil: capClasses
}

var capClasses = []engine.Class{engine.ClassUntrustedPulled, engine.ClassUntrustedPushed, engine.ClassTagOnly, engine.ClassTagPublish}

// callsPerEvent is the plan of each class: what the reference does, and what the curator
// must not exceed.
var callsPerEvent = map[engine.Class]int{engine.ClassTagOnly: 1, engine.ClassTagPublish: 3}

type capRow struct {
	Workers      int     `json:"workers"`
	ServiceMs    float64 `json:"service_ms"`
	Class        string  `json:"class"`
	Events       int     `json:"events"`
	Curator      float64 `json:"curator_events_per_s"`
	Reference    float64 `json:"reference_events_per_s"`
	RefThreads   int     `json:"reference_threads"`
	Ratio        float64 `json:"ratio"`
	CuratorCalls float64 `json:"curator_calls_per_event"`
	CuratorP99   float64 `json:"curator_misp_p99_ms"`
	RefP99Best   float64 `json:"reference_misp_p99_ms"`
	RefP99Same   float64 `json:"reference_misp_p99_ms_same_throughput"`
	RefSameTh    int     `json:"reference_threads_same_throughput"`
	Limit        int     `json:"curator_limit_at_end"`
	CuratorCPU   float64 `json:"curator_cpu_ms_per_event"`
	RefCPU       float64 `json:"reference_cpu_ms_per_event"`
	Failed       int     `json:"failed"`
	WrongState   int     `json:"wrong_state"`
}

func runCapacity(c config, cc capConfig) error {
	fmt.Printf("%-7s %-8s %-17s %6s %10s %10s %4s %6s %6s %8s %8s %8s %5s %9s %s\n", "workers", "service", "class", "events",
		"curator/s", "ref/s", "thr", "ratio", "calls", "p99 cur", "p99 ref", "p99 same", "limit", "cpu c/r", "fail/wrong")
	var rows []capRow
	bad := 0
	for _, w := range cc.workers {
		for _, s := range cc.services {
			w := w
			if s == calibrated {
				if w != cc.workers[0] {
					continue // one MISP, whatever the worker list
				}
				w = 2 // CalibratedCapacity's php-fpm pool
			}
			classes := cc.classes
			if classes == nil {
				classes = capClasses
			}
			for _, class := range classes {
				row, err := capacityRow(c, cc, w, s, class)
				if err != nil {
					return fmt.Errorf("%d workers, %v, %s: %w", w, s, class, err)
				}
				rows = append(rows, row)
				flag := ""
				if row.Failed > 0 || row.WrongState > 0 || (row.Reference > 0 && row.Ratio < 0.8) ||
					(callsPerEvent[class] == 0 && row.CuratorCalls > 0) || row.CuratorCalls > float64(callsPerEvent[class]) {
					flag = "  <-- below target"
					bad++
				}
				ref, thr, ratio := "-", "-", "-"
				if row.Reference > 0 {
					ref, thr, ratio = fmt.Sprintf("%.1f", row.Reference), fmt.Sprint(row.RefThreads), fmt.Sprintf("%.2f", row.Ratio)
				}
				fmt.Printf("%-7d %-8s %-17s %6d %10.1f %10s %4s %6s %6.2f %8.1f %8.1f %8.1f %5d %4.2f/%4.2f %d/%d%s\n", w, serviceLabel(s), class, row.Events,
					row.Curator, ref, thr, ratio, row.CuratorCalls, row.CuratorP99, row.RefP99Best, row.RefP99Same, row.Limit,
					row.CuratorCPU, row.RefCPU, row.Failed, row.WrongState, flag)
			}
		}
	}
	if cc.slowdown {
		if err := runSlowdown(c); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d rows below target (ratio < 0.8, calls over the plan, failures or wrong final state)", bad)
	}
	return nil
}

// calibrated, given as a service time ("-service real"), is misptest.CalibratedCapacity: the
// measured MISP 2.5.1 on 2 cores (per-route service times, publish jobs sharing the CPU),
// whatever -workers says.
const calibrated time.Duration = -1

// calibratedCallsPerS is what CalibratedCapacity serves of the curation mix (2–8 threads).
const calibratedCallsPerS = 15.0

// capDouble is a fresh capacity-limited double for one run.
func capDouble(workers int, service time.Duration) *misptest.Server {
	if service == calibrated {
		capa := misptest.CalibratedCapacity()
		return misptest.NewServer(misptest.Options{BackgroundJobs: true, Capacity: &capa})
	}
	return misptest.NewServer(misptest.Options{BackgroundJobs: true, Capacity: &misptest.Capacity{
		Workers: workers, Cores: workers + 1, // jobs get their own core: the size is the workers'
		DefaultService: service, Jitter: 0.2, JobWorkers: 1, JobService: service,
	}})
}

// capEvents simulates n pulled (or, for untrusted_pushed, pushed) events of class and
// returns their uuids and the ZeroMQ frames MISP published for them.
func capEvents(srv *misptest.Server, c config, class engine.Class, n int) ([]string, [][]byte) {
	_, high, medium, untrusted := orgPools(c.seed, 256)
	rng := rand.New(rand.NewPCG(c.seed, 13))
	tags := []misptest.EventTag{{Name: "tlp:green"}, {Name: trust.TagWorkflowIncomplete}}
	before := len(srv.Published())
	var uuids []string
	for range n {
		pool := untrusted
		switch class {
		case engine.ClassTagOnly:
			pool = medium
		case engine.ClassTagPublish:
			pool = high
		}
		e := misptest.Event{Published: true, Attributes: 1, Tags: tags, Orgc: misptest.Org{UUID: pool[rng.IntN(len(pool))]}}
		if class == engine.ClassUntrustedPushed {
			e = srv.SimulatePush(e)
		} else {
			e = srv.SimulatePull(e)
		}
		uuids = append(uuids, e.UUID)
	}
	var frames [][]byte
	for _, m := range srv.Published()[before:] {
		frames = append(frames, m.Frame())
	}
	srv.ResetStats()
	return uuids, frames
}

// eventsFor sizes a run to last about cc.seconds on a MISP of this size.
func eventsFor(cc capConfig, workers int, service time.Duration, class engine.Class) int {
	n := cc.maxEvent
	if k := callsPerEvent[class]; k > 0 && service > 0 {
		n = int(cc.seconds * float64(workers) / service.Seconds() / float64(k))
	} else if k > 0 && service == calibrated {
		n = int(cc.seconds * calibratedCallsPerS / float64(k))
	}
	return min(max(n, 4*workers, 10), cc.maxEvent)
}

func capIndex(c config) *index.Index {
	all, _, _, _ := orgPools(c.seed, 256)
	split := map[string][]trust.Org{}
	for i, o := range all {
		key := "bench/medium"
		if i%2 == 0 {
			key = "bench/high"
		}
		split[key] = append(split[key], trust.Org{UUID: o})
	}
	idx := &index.Index{}
	policies := []*v1alpha1.OrgTrustPolicy{policy("high", 100, "a", true), policy("medium", 50, "c", false)}
	idx.Store(index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org { return split[trust.Key(p)] }))
	return idx
}

func capacityRow(c config, cc capConfig, workers int, service time.Duration, class engine.Class) (capRow, error) {
	n := eventsFor(cc, workers, service, class)
	row := capRow{Workers: workers, ServiceMs: ms(service), Class: string(class), Events: n}

	cur, err := curatorRun(c, cc, workers, service, class, n, 0, nil)
	if err != nil {
		return row, err
	}
	row.Curator, row.CuratorCalls, row.CuratorP99, row.Limit = cur.perSecond, cur.callsPerEvent, cur.p99, cur.limit
	row.CuratorCPU = cur.cpuMs
	row.Failed, row.WrongState = cur.failed, cur.wrongState
	if callsPerEvent[class] == 0 {
		return row, nil // the reference makes no call: nothing to compare but the curator's 0 calls
	}
	var refs []refResult
	for _, th := range slices.Compact([]int{workers, 2 * workers, 4 * workers}) {
		r, err := referenceRun(c, workers, service, class, n, th)
		if err != nil {
			return row, err
		}
		refs = append(refs, r)
	}
	// best: the most events/s. same: the fewest threads that reach the curator's events/s
	// (within 5 %): the tightest client at the same throughput, whose MISP latency the
	// curator's is compared with.
	best := refs[0]
	for _, r := range refs {
		if r.perSecond > best.perSecond {
			best = r
		}
	}
	same := best
	for _, r := range refs { // ascending threads
		if r.perSecond >= 0.95*row.Curator {
			same = r
			break
		}
	}
	row.Reference, row.RefThreads, row.RefP99Best, row.RefCPU = best.perSecond, best.threads, best.p99, best.cpuMs
	row.RefP99Same, row.RefSameTh = same.p99, same.threads
	row.Ratio = round2(row.Curator / row.Reference)
	return row, nil
}

// wireLog records every request's round trip (sent → answer read) on the wire.
type wireLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	recs []wireRec
}

type wireRec struct {
	end time.Time
	rtt time.Duration
	err bool // transport error or 5xx/429
}

func (w *wireLog) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := w.next.RoundTrip(r)
	if err == nil {
		// The answer is read by the client after RoundTrip: wrap the body to stop the
		// clock at its end.
		res.Body = &timedBody{ReadCloser: res.Body, done: func() {
			w.add(wireRec{end: time.Now(), rtt: time.Since(start), err: res.StatusCode >= 500 || res.StatusCode == 429})
		}}
		return res, nil
	}
	w.add(wireRec{end: time.Now(), rtt: time.Since(start), err: true})
	return res, err
}

func (w *wireLog) add(r wireRec) {
	w.mu.Lock()
	w.recs = append(w.recs, r)
	w.mu.Unlock()
}

func (w *wireLog) records() []wireRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wireRec(nil), w.recs...)
}

type timedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *timedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

func p99ms(recs []wireRec) float64 {
	var lat []float64
	for _, r := range recs {
		lat = append(lat, ms(r.rtt))
	}
	slices.Sort(lat)
	return round2(quantile(lat, .99))
}

func newWire() *wireLog {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	return &wireLog{next: tr}
}

type runResult struct {
	perSecond     float64
	callsPerEvent float64
	p99           float64
	limit         int
	cpuMs         float64 // process CPU per event, the in-process double included
	failed        int
	wrongState    int
}

// curatorRun curates n events of class with the deployed defaults and returns events/s
// (hand-over of the first frame → last outcome).
//
// With tick set it runs for runFor, calling tick at the end of every second, and returns
// nothing measured.
func curatorRun(c config, cc capConfig, workers int, service time.Duration, class engine.Class, n int, runFor time.Duration,
	tick func(srv *misptest.Server, t time.Duration, limit int, done int, recs []wireRec)) (runResult, error) {
	var res runResult
	srv := capDouble(workers, service)
	defer srv.Close()
	uuids, frames := capEvents(srv, c, class, n)
	wire := newWire()
	reg := prometheus.NewRegistry()
	// The deployed defaults: what trust.ClientOptions and engine.New give a MISPInstance
	// with no spec.api and no spec.curation.
	client, err := misp.New(misp.Options{URL: srv.URL(), APIKey: srv.AdminKey(), Transport: wire,
		Metrics: misp.NewMetrics(reg), Instance: "bench/misp", QPS: curatorQPS(cc)})
	if err != nil {
		return res, err
	}
	var mu sync.Mutex
	outcomes := map[string]engine.Outcome{}
	calls := 0
	done := make(chan struct{})
	eng := engine.New(engine.Options{Instance: "bench/misp", Index: capIndex(c), MISP: client, Logger: logr.Discard(),
		OnOutcome: func(o engine.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			calls += o.Calls
			if o.Err != nil {
				res.failed++
			}
			if _, seen := outcomes[o.EventUUID]; !seen {
				outcomes[o.EventUUID] = o
				if len(outcomes) == n {
					close(done)
				}
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	t0, cpu0 := time.Now(), cpuSeconds()
	for i, f := range frames {
		m, err := feed.Parse(f)
		if err != nil {
			return res, fmt.Errorf("parse frame %d: %w", i, err)
		}
		eng.HandleMessage(m)
	}
	limit := func() int { return int(gaugeValue(reg, "misptrust_misp_concurrency_limit")) }
	if tick != nil {
		for sec := time.Second; sec <= runFor; sec += time.Second {
			time.Sleep(time.Until(t0.Add(sec)))
			mu.Lock()
			k := len(outcomes)
			mu.Unlock()
			tick(srv, sec, limit(), k, wire.records())
		}
		return res, nil
	}
	select {
	case <-done:
	case <-time.After(10*time.Minute + time.Duration(n)*3*service*4):
		return res, fmt.Errorf("timeout: %d of %d events curated", len(outcomes), n)
	}
	for eng.Pending() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	var last time.Time
	mu.Lock()
	for _, o := range outcomes {
		if o.At.After(last) {
			last = o.At
		}
	}
	res.callsPerEvent = round2(float64(calls) / float64(n))
	mu.Unlock()
	res.perSecond = round2(float64(n) / last.Sub(t0).Seconds())
	res.cpuMs = round2((cpuSeconds() - cpu0) * 1000 / float64(n))
	res.p99 = p99ms(wire.records())
	res.limit = limit()
	res.wrongState = wrongState(srv, uuids, class)
	return res, nil
}

// wrongState counts trusted events whose final state is not the policy's, once the
// publish jobs had time to run (a queued publish completes on MISP's job worker later).
func wrongState(srv *misptest.Server, uuids []string, class engine.Class) int {
	if callsPerEvent[class] == 0 {
		return 0
	}
	bad := 0
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		bad = 0
		for _, u := range uuids {
			e, _ := srv.Event(u)
			if !stateOK(e, class == engine.ClassTagPublish) {
				bad++
			}
		}
		if bad == 0 || time.Now().After(deadline) {
			return bad
		}
	}
}

func gaugeValue(g prometheus.Gatherer, name string) float64 {
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return metricValue(m)
			}
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return 0
}

type refResult struct {
	threads   int
	perSecond float64
	p99       float64
	cpuMs     float64
}

// referenceRun is the tight client: threads goroutines take events from a list and make
// exactly the calls of the class's plan, with no client-side limit and no retry.
func referenceRun(c config, workers int, service time.Duration, class engine.Class, n, threads int) (refResult, error) {
	r := refResult{threads: threads}
	srv := capDouble(workers, service)
	defer srv.Close()
	uuids, _ := capEvents(srv, c, class, n)
	wire := newWire()
	client, err := misp.New(misp.Options{URL: srv.URL(), APIKey: srv.AdminKey(), Transport: wire, QPS: -1, MaxRetries: -1})
	if err != nil {
		return r, err
	}
	ctx := context.Background()
	next := make(chan string, len(uuids))
	for _, u := range uuids {
		next <- u
	}
	close(next)
	var errMu sync.Mutex
	var firstErr error
	start, cpu0 := time.Now(), cpuSeconds()
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				err := referenceCalls(ctx, client, u, class)
				if err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return r, fmt.Errorf("reference client: %w", firstErr)
	}
	r.perSecond = round2(float64(n) / time.Since(start).Seconds())
	r.cpuMs = round2((cpuSeconds() - cpu0) * 1000 / float64(n))
	r.p99 = p99ms(wire.records())
	return r, nil
}

func referenceCalls(ctx context.Context, c *misp.Client, u string, class engine.Class) error {
	switch class {
	case engine.ClassTagOnly:
		return c.AttachTags(ctx, u, []string{trust.SourceReliabilityTag("c")}, true)
	case engine.ClassTagPublish:
		if err := c.AttachTags(ctx, u, []string{trust.SourceReliabilityTag("a"), trust.TagWorkflowComplete}, true); err != nil {
			return err
		}
		if err := c.RemoveTag(ctx, u, trust.TagWorkflowIncomplete); err != nil {
			return err
		}
		_, err := c.Publish(ctx, u)
		return err
	}
	return nil
}

// runSlowdown curates a steady backlog of tag_publish events on an 8-worker MISP at 70 ms
// and makes MISP 4× slower from 20 s to 50 s, printing one line a second: the client's
// limit, events curated, MISP's p50/p99 round trip, and overload answers or timeouts.
func runSlowdown(c config) error {
	const workers, service = 8, 70 * time.Millisecond
	slowFrom, slowTo, total := 20*time.Second, 50*time.Second, 70*time.Second
	fast, slow := (total - (slowTo - slowFrom)).Seconds(), (slowTo - slowFrom).Seconds()
	n := int(1.1 * (fast/service.Seconds() + slow/(4*service.Seconds())) * workers / 3) // MISP's capacity over the run
	fmt.Printf("\nMISP slows down mid-run: %d workers, %v a call, ×4 from %v to %v; a backlog of %d tag_publish events\n",
		workers, service, slowFrom, slowTo, n)
	fmt.Printf("%5s %6s %6s %9s %9s %9s %7s\n", "t", "scale", "limit", "events/s", "p50 ms", "p99 ms", "errors")
	prevDone, prevRecs, prevScale := 0, 0, 1.0
	var out strings.Builder
	_, err := curatorRun(c, capConfig{}, workers, service, engine.ClassTagPublish, n, total,
		func(srv *misptest.Server, t time.Duration, limit, done int, recs []wireRec) {
			// This line is about the second that just ended; the scale set now is the next one's.
			scale := 1.0
			if t >= slowFrom && t < slowTo {
				scale = 4
			}
			srv.SetServiceScale(scale)
			win := recs[prevRecs:]
			var lat []float64
			errs := 0
			for _, r := range win {
				lat = append(lat, ms(r.rtt))
				if r.err {
					errs++
				}
			}
			slices.Sort(lat)
			fmt.Fprintf(&out, "%5.0f %6.0f %6d %9d %9.0f %9.0f %7d\n", t.Seconds(), prevScale, limit, done-prevDone,
				quantile(lat, .5), quantile(lat, .99), errs)
			prevDone, prevRecs, prevScale = done, len(recs), scale
		})
	fmt.Print(out.String())
	return err
}
func curatorQPS(cc capConfig) float64 {
	if cc.unlimited {
		return -1
	}
	return 0 // the default: no rate ceiling, the adaptive limit
}

func serviceLabel(s time.Duration) string {
	if s == calibrated {
		return "real"
	}
	return s.String()
}

func parseService(s string) (time.Duration, error) {
	if s == "real" {
		return calibrated, nil
	}
	return time.ParseDuration(s)
}
