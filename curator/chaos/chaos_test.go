package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/hack/testenv"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

var (
	testEnvConfig *rest.Config
	k8sClient     client.Client
)

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	testenv.Main(m, "../..", nil, func(e *testenv.Env) {
		testEnvConfig, k8sClient = e.Config, e.Client
	})
}

// The default run is sized for CI (make test); -chaos.events and -chaos.seed make longer
// runs for the figures of a report, e.g.
//
//	go test ./curator/chaos -run Chaos -v -chaos.events 10000 -chaos.seed 7
var (
	flagEvents = flag.Int("chaos.events", 2100, "synchronised events of the chaos run")
	flagSeed   = flag.Uint64("chaos.seed", 20261126, "seed of the chaos run (events, faults)")
	flagLog    = flag.String("chaos.log", "", "write the curator's log (verbosity 1) to this file")
)

const (
	faultRate  = 0.2  // REST answers 500 before MISP ran (reads; writes in the second half)
	commitRate = 0.1  // writes committed then answered 504 (first half)
	zmqDrop    = 0.1  // ZeroMQ messages lost
	jobFail    = 0.1  // background publish jobs that fail in the worker
	jobVanish  = 0.05 // ... and that vanish (worker killed)
	maxPending = 300  // the engine's queue limit: bursts are refused and retried by catch-up
	ns         = "chaos"
	policyHigh = "high"
	policyMed  = "medium"
)

// The organisations of the test: three per trust level.
var (
	highOrgs      = []string{"1521ae8b-48de-4766-8b2a-fdecef763fa8", "2a7c1e0b-8d4f-4b6a-9c3e-5f1d2b3a4c5d", "3b8d2f1c-9e5a-4c7b-8d4f-6a2e3c4b5d6e"}
	mediumOrgs    = []string{"5cf66e53-b5f8-43e7-be9a-49880a3b4631", "4c9e3a2d-0f6b-4d8c-9e5a-7b3f4d5c6e7f", "6dae4b3e-1a7c-4e9d-8f6b-8c4a5e6d7f80"}
	untrustedOrgs = []string{"7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19", "8e2c4d3f-0e5b-4f9c-b7d6-1c3e5a7f9b2a", "9f3d5e4a-1f6c-4a0d-8e7f-2d4f6b8a0c3b"}
)

type kind int

const (
	kindHigh kind = iota
	kindMedium
	kindUntrusted
)

// synced is one event the partner side produced, with what the curator must make of it.
type synced struct {
	uuid string
	kind kind
	// before is the event as it was right after synchronisation (for "untouched").
	before misptest.Event
	// arrived is when the synchronisation started (the event's timestamps are not older).
	arrived time.Time
}

// TestNoEventIsLostUnderChaos synchronises thousands of events while MISP fails in every
// way issue 9 lists — REST 500s, writes that commit and then answer 504, background jobs
// that fail, vanish or wait for stopped workers, a flushed job queue, damaged index rows —
// plus lost ZeroMQ messages, publisher restarts, a curator restart and an engine queue
// that overflows. At the end: every trusted event is in its policy's state (none lost),
// no event was published by two jobs and a publish was sent again only after its job
// failed, the published counter equals the jobs that ran, and the persisted watermark was
// never past an event not yet in its final state.
func TestNoEventIsLostUnderChaos(t *testing.T) {
	nEvents, seed := *flagEvents, *flagSeed
	started := time.Now()
	srv := misptest.NewServer(misptest.Options{
		ZMQ: true, Seed: seed, BackgroundJobs: true, JobDelay: 100 * time.Millisecond,
		HeartbeatEvery: time.Second,
	})
	defer srv.Close()
	ctx := context.Background()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "misp-api", Labels: map[string]string{trust.AllowLabel: trust.AllowValue}},
		StringData: map[string]string{"apiKey": srv.AdminKey()}})
	mustCreate(t, &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "misp"},
		Spec: v1alpha1.MISPInstanceSpec{
			URL:               srv.URL(),
			AllowInsecureHTTP: true,
			APIKeySecretRef:   v1alpha1.SecretKeyReference{Name: "misp-api"},
			ZeroMQ:            &v1alpha1.ZeroMQSpec{Endpoint: srv.ZMQEndpoint()},
			Curation: &v1alpha1.CurationSpec{
				Concurrency:  8,
				PushDebounce: &metav1.Duration{Duration: 500 * time.Millisecond},
				CatchUp:      &v1alpha1.CatchUpSpec{Interval: &metav1.Duration{Duration: 3 * time.Second}},
			},
		}})
	mustCreate(t, policy(policyHigh, "a", true, highOrgs))
	mustCreate(t, policy(policyMed, "c", false, mediumOrgs))

	cfg := curator.Config{Namespace: ns, StatusFlushInterval: 500 * time.Millisecond, Logger: logr.Discard()}
	if *flagLog != "" {
		f, err := os.Create(*flagLog)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		cfg.Logger = funcr.New(func(prefix, args string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(f, time.Now().Format("15:04:05.000"), prefix, args)
		}, funcr.Options{Verbosity: 1})
	}
	cfg.MISP.QPS = -1
	cfg.MISP.RetryBaseDelay, cfg.MISP.RetryMaxDelay = 10*time.Millisecond, 100*time.Millisecond
	cfg.Feed.Backoff = feed.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.Engine.RetryBaseDelay, cfg.Engine.RetryMaxDelay = 50*time.Millisecond, 500*time.Millisecond
	cfg.Engine.MaxPending = maxPending
	// Publish confirmation on the test's time scale (jobs take 100 ms here, not minutes).
	cfg.Engine.ConfirmAfter, cfg.Engine.ConfirmMaxDelay = 300*time.Millisecond, 2*time.Second
	cfg.Engine.PublishFailedAfter, cfg.Engine.PublishStuckAfter = time.Second, 1500*time.Millisecond
	reg := prometheus.NewRegistry() // shared by both curator processes: totals over the run
	cfg.Registerer = reg
	// A short margin, so passes really start from the watermark (the test lasts seconds).
	cfg.CatchUp.SafetyMargin = 5 * time.Second
	cfg.CatchUp.MinSpacing, cfg.CatchUp.RetryBase = 200*time.Millisecond, 200*time.Millisecond

	cur := start(cfg)
	waitSubscribed(t, srv)
	srv.SetFault("", misptest.Fault{ErrorRate: faultRate, ErrorStatus: 500})
	writes := []string{"/events/publish", "/tags/attachTagToObject", "/tags/removeTagFromObject"}
	for _, w := range writes {
		srv.SetFault(w, misptest.Fault{ErrorRate: commitRate, ErrorStatus: 504, AfterCommit: true})
	}
	srv.SetZMQDropRate(zmqDrop)
	srv.SetJobFaults(misptest.JobFaults{FailRate: jobFail, VanishRate: jobVanish})

	// The persisted watermark, sampled all along, against the events not yet in their
	// final state at that moment.
	var events []*synced
	var evMu sync.Mutex
	wmViolations, wmSamples := watchWatermark(t, srv, reg, &evMu, &events, cfg.CatchUp.SafetyMargin)

	rng := rand.New(rand.NewPCG(seed, 1))
	at := func(f float64) int { return int(float64(nEvents) * f) }
	script := map[int]string{
		at(0.15): "workers-down", at(0.15) + 150: "workers-up",
		at(1.0 / 3): "publisher",
		at(0.5):     "curator-stop", at(0.5) + 150: "curator-start", at(0.5) + 151: "writes-fail-before-misp",
		at(2.0 / 3): "publisher",
		at(0.75):    "workers-down", at(0.75) + 150: "flush-and-workers-up",
	}
	var damaged []string
	var flushed, unconfirmedAtStop int
	var downAt time.Time
	// An outage lasts 3 s whatever the event rate: curations publish into the stopped
	// queue, and the publishes get stuck (PublishStuckAfter 1.5 s).
	waitOutage := func() { time.Sleep(time.Until(downAt.Add(3 * time.Second))) }
	for i := 0; i < nEvents; i++ {
		switch script[i] {
		case "workers-down":
			srv.SetWorkersDown(true)
			downAt = time.Now()
		case "workers-up":
			waitOutage()
			srv.SetWorkersDown(false)
		case "flush-and-workers-up":
			waitOutage()
			flushed += srv.FlushJobQueue() // Redis lost the queue while the workers were down
			srv.SetWorkersDown(false)
		case "publisher":
			srv.RestartPublisher()
		case "curator-stop":
			// A quiet moment first: a publish the stopping curator queued and did not see
			// confirmed is counted by nobody (its successor finds the event published).
			quiet := time.Now().Add(10 * time.Second)
			for metricSum(t, reg, "misptrust_curator_unconfirmed_publishes", nil) > 0 && time.Now().Before(quiet) {
				time.Sleep(100 * time.Millisecond)
			}
			cur.stop()
			unconfirmedAtStop = int(metricSum(t, reg, "misptrust_curator_unconfirmed_publishes", nil))
		case "curator-start":
			cur = start(cfg)
		case "writes-fail-before-misp":
			for _, w := range writes {
				srv.SetFault(w, misptest.Fault{ErrorRate: commitRate, ErrorStatus: 502})
			}
		}
		e := syncOne(srv, rng)
		evMu.Lock()
		events = append(events, e)
		evMu.Unlock()
		// Damaged index rows: an untrusted event's row without a uuid, another one MISP
		// cannot render (its pages answer 500); catch-up must skip them, not stall.
		if e.kind == kindUntrusted && len(damaged) < 6 {
			f := misptest.RowWithoutUUID
			if len(damaged)%2 == 1 {
				f = misptest.RowBreaksPage
			}
			srv.SetIndexRowFault(e.uuid, f)
			damaged = append(damaged, e.uuid)
		}
		// Now and then a partner edits an event of a tag-only or untrusted org (a
		// publishing org's edit would legitimately need a second publish).
		if i%25 == 24 {
			evMu.Lock()
			e := events[rng.IntN(len(events))]
			evMu.Unlock()
			if e.kind != kindHigh {
				edited := srv.SimulatePullEdit(e.uuid, func(x *misptest.Event) { x.Attributes++ })
				if e.kind == kindUntrusted {
					evMu.Lock()
					e.before = edited
					evMu.Unlock()
				}
			}
		}
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // a realistic stream, not one burst
		}
	}
	generated := time.Since(started)

	// The storm is over; partners keep sending events, as in production. A publish whose
	// job failed or vanished is sent again once a later publish is confirmed (a failure
	// that no later publish proves stays unconfirmed and is reported, never re-sent
	// blindly): the steady stream after the faults provides that proof.
	srv.SetFault("", misptest.Fault{})
	for _, w := range writes {
		srv.SetFault(w, misptest.Fault{})
	}
	srv.SetJobFaults(misptest.JobFaults{})
	deadline := time.Now().Add(max(90*time.Second, time.Duration(nEvents)*30*time.Millisecond) - time.Since(started))
	var bad []string
	trickle := 0
	for {
		evMu.Lock()
		bad = check(srv, events)
		evMu.Unlock()
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		for range 2 {
			e := misptest.Event{Orgc: misptest.Org{UUID: highOrgs[rng.IntN(3)]}, Attributes: 1,
				Tags: []misptest.EventTag{{Name: "tlp:green"}, {Name: trust.TagWorkflowIncomplete}}}
			arrived := time.Now()
			out := srv.SimulatePull(e)
			evMu.Lock()
			events = append(events, &synced{uuid: out.UUID, kind: kindHigh, before: out, arrived: arrived})
			evMu.Unlock()
			trickle++
		}
		time.Sleep(500 * time.Millisecond)
	}
	converged := time.Since(started)
	// The counters: wait for the last confirmations to reach the status.
	var st v1alpha1.OrgTrustPolicy
	jobsRan := 0
	deadline = time.Now().Add(30 * time.Second)
	for {
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policyHigh}, &st); err != nil {
			t.Fatal(err)
		}
		jobsRan = 0
		for _, j := range srv.PublishJobs() {
			if j.Status == misptest.JobCompleted {
				jobsRan++
			}
		}
		c := st.Status.Curation
		if (c != nil && c.Published >= int64(jobsRan-unconfirmedAtStop) && c.PublishesUnconfirmed == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cur.stop()
	close(wmViolations.stop)
	<-wmViolations.done
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%d events not in their policy's state after %s, e.g.:\n%s", len(bad), converged, strings.Join(bad[:min(10, len(bad))], "\n"))
	}

	// Publishes: at most one job that ran per event; a second publish only after the
	// previous job failed or vanished.
	jobs := map[string][]misptest.PublishJob{}
	for _, j := range srv.PublishJobs() {
		jobs[j.EventUUID] = append(jobs[j.EventUUID], j)
	}
	fates := map[misptest.JobStatus]int{}
	resent, maxRan := 0, 0
	for uuid, js := range jobs {
		ran := 0
		for i, j := range js {
			fates[j.Status]++
			if j.Status == misptest.JobCompleted {
				ran++
			}
			if i < len(js)-1 && j.Status != misptest.JobFailed && j.Status != misptest.JobVanished {
				t.Errorf("event %s: publish sent again while job %d was %s", uuid, j.ID, j.Status)
			}
		}
		resent += len(js) - 1
		maxRan = max(maxRan, ran)
		if ran > 1 {
			t.Errorf("event %s published by %d jobs", uuid, ran)
		}
	}
	calls := map[string]int{}
	faults := 0
	for _, r := range srv.Requests() {
		calls[r.Route]++
		if r.Status >= 500 || r.Status == 0 {
			faults++
		}
	}
	counts := map[kind]int{}
	untrusted := map[string]bool{}
	for _, e := range events {
		counts[e.kind]++
		if e.kind == kindUntrusted {
			untrusted[e.uuid] = true
		}
	}
	// Untrusted events: never written to; read at most when the message naming the
	// creator org was dropped (the engine then reads the metadata once per curation).
	untrustedReads := 0
	for _, r := range srv.Requests() {
		for _, u := range uuidRE.FindAllString(r.Path+" "+r.Body, -1) {
			if !untrusted[u] {
				continue
			}
			if r.Route == "/events/index" {
				untrustedReads++
			} else {
				t.Errorf("untrusted event %s: %s %s", u, r.Method, r.Route)
			}
		}
	}
	// The published counter counts confirmed publishes: every job that ran, but those the
	// stopped curator had not confirmed yet — and never one that did not run.
	c := st.Status.Curation
	if c == nil || c.Published > int64(jobsRan) || c.Published < int64(jobsRan-unconfirmedAtStop) || c.PublishesUnconfirmed != 0 {
		t.Errorf("status.curation of %s = %+v, want published = %d (the jobs that ran) - at most %d (unconfirmed at the restart), nothing unconfirmed",
			policyHigh, c, jobsRan, unconfirmedAtStop)
	}
	if n := wmViolations.count(); n > 0 {
		t.Errorf("the persisted watermark was past an unsettled event %d times, e.g. %s", n, wmViolations.first())
	}
	var inst v1alpha1.MISPInstance
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "misp"}, &inst); err != nil {
		t.Fatal(err)
	}
	zs := srv.ZMQStats()
	t.Logf("seed %d: events %d (high %d, medium %d, untrusted %d; %d of them in the steady stream after the faults), generated in %s, all curated after %s; events lost: %d",
		seed, len(events), counts[kindHigh], counts[kindMedium], counts[kindUntrusted], trickle, generated.Round(time.Millisecond),
		converged.Round(time.Millisecond), len(bad))
	t.Logf("faults: %d REST answers 5xx or dropped (500 before MISP at %.0f%%, writes 504 after commit at %.0f%% then 502 before MISP), "+
		"ZeroMQ: %d messages dropped of %d, %d publisher restarts, 1 curator restart, 2 worker outages (%d queued jobs flushed), "+
		"%d damaged index rows, engine queue limit %d",
		faults, faultRate*100, commitRate*100, zs.Dropped, zs.Published+zs.Dropped, zs.Restarts, flushed, len(damaged), maxPending)
	t.Logf("publish jobs: %v; events published: %d, max jobs that ran per event: %d, publishes sent again after a failed job: %d",
		fates, len(jobs), maxRan, resent)
	t.Logf("status.curation of %s: published %d, jobs that ran %d (%d unconfirmed when the curator restarted), republished %d, unconfirmed %d; catch-up: skipped rows (last pass) %d",
		policyHigh, c.Published, jobsRan, unconfirmedAtStop, c.Republished, c.PublishesUnconfirmed, inst.Status.CatchUp.SkippedRows)
	t.Logf("watermark: %d samples, never past an unsettled event: %v", wmSamples.Load(), wmViolations.count() == 0)
	t.Logf("curator metrics: unconfirmed publishes peaked at %.0f (PublishesConfirmed=False seen: %v), publishes resent %.0f, "+
		"hand-overs refused at the queue limit %.0f, index rows skipped %.0f",
		wmViolations.peakUnconfirmed(), wmViolations.stuckSeen(), metricSum(t, reg, "misptrust_curator_publishes_resent_total", nil),
		metricSum(t, reg, "misptrust_curator_dropped_total", map[string]string{"reason": "queue_full"}),
		metricSum(t, reg, "misptrust_catchup_skipped_rows_total", nil))
	if !wmViolations.stuckSeen() {
		t.Error("the worker outages never turned PublishesConfirmed False")
	}
	t.Logf("MISP calls: %v; metadata reads of untrusted events: %d", calls, untrustedReads)
}

// wmWatch records persisted watermarks that were past an event not in its final state,
// and the peak of the unconfirmed publishes.
type wmWatch struct {
	mu          sync.Mutex
	violations  []string
	unconfirmed float64
	stuck       bool // PublishesConfirmed was False
	stop, done  chan struct{}
}

func (w *wmWatch) peakUnconfirmed() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unconfirmed
}

func (w *wmWatch) stuckSeen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuck
}

// metricSum adds the values of a metric's series whose labels include want.
func metricSum(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func (w *wmWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.violations)
}

func (w *wmWatch) first() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) == 0 {
		return ""
	}
	return w.violations[0]
}

// watchWatermark samples the persisted watermark until stopped. A restarted curator scans
// from watermark − margin: every event not yet in its final state must be at or after it
// (its timestamps are not older than its arrival; the status keeps whole seconds).
func watchWatermark(t *testing.T, srv *misptest.Server, reg prometheus.Gatherer, mu *sync.Mutex, events *[]*synced, margin time.Duration) (*wmWatch, *atomic.Int64) {
	w := &wmWatch{stop: make(chan struct{}), done: make(chan struct{})}
	samples := &atomic.Int64{}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			u := metricSum(t, reg, "misptrust_curator_unconfirmed_publishes", nil)
			var inst v1alpha1.MISPInstance
			err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "misp"}, &inst)
			w.mu.Lock()
			w.unconfirmed = max(w.unconfirmed, u)
			if c := meta.FindStatusCondition(inst.Status.Conditions, status.ConditionPublishesConfirmed); err == nil && c != nil &&
				c.Status == metav1.ConditionFalse {
				w.stuck = true
			}
			w.mu.Unlock()
			if err != nil || inst.Status.CatchUp == nil || inst.Status.CatchUp.Watermark == nil {
				continue
			}
			from := inst.Status.CatchUp.Watermark.Add(-margin)
			mu.Lock()
			evs := append([]*synced(nil), (*events)...)
			mu.Unlock()
			samples.Add(1)
			for _, e := range evs {
				if e.kind == kindUntrusted || !from.After(e.arrived.Add(time.Second)) {
					continue
				}
				if bad := check(srv, []*synced{e}); len(bad) > 0 {
					w.mu.Lock()
					w.violations = append(w.violations, fmt.Sprintf("watermark %s − %s past %s (arrived %s): %s",
						inst.Status.CatchUp.Watermark.UTC().Format(time.RFC3339), margin, e.uuid, e.arrived.UTC().Format(time.RFC3339Nano), bad[0]))
					w.mu.Unlock()
				}
			}
		}
	}()
	return w, samples
}

// syncOne synchronises one new event: pulled (70%) or pushed, from an org of a random level.
func syncOne(srv *misptest.Server, rng *rand.Rand) *synced {
	var k kind
	var org string
	switch r := rng.IntN(10); {
	case r < 4:
		k, org = kindHigh, highOrgs[rng.IntN(3)]
	case r < 7:
		k, org = kindMedium, mediumOrgs[rng.IntN(3)]
	default:
		k, org = kindUntrusted, untrustedOrgs[rng.IntN(3)]
	}
	e := misptest.Event{Orgc: misptest.Org{UUID: org}, Published: rng.IntN(5) > 0, Attributes: 1 + rng.IntN(3),
		Tags: []misptest.EventTag{{Name: "tlp:green"}}}
	if rng.IntN(2) == 0 {
		e.Tags = append(e.Tags, misptest.EventTag{Name: trust.TagWorkflowIncomplete})
	}
	var out misptest.Event
	arrived := time.Now()
	if rng.IntN(10) < 7 {
		out = srv.SimulatePull(e)
	} else {
		out = srv.SimulatePush(e)
	}
	return &synced{uuid: out.UUID, kind: k, before: out, arrived: arrived}
}

// check returns a line per event not in the state its policy asks for.
func check(srv *misptest.Server, events []*synced) []string {
	var bad []string
	want := map[kind][]string{
		kindHigh:   {trust.SourceReliabilityTag("a"), trust.TagWorkflowComplete},
		kindMedium: {trust.SourceReliabilityTag("c")},
	}
	for _, e := range events {
		ev, ok := srv.Event(e.uuid)
		if !ok {
			bad = append(bad, e.uuid+": gone")
			continue
		}
		var local []string
		incomplete := false
		for _, t := range ev.Tags {
			if t.Local {
				local = append(local, t.Name)
			}
			if t.Name == trust.TagWorkflowIncomplete {
				incomplete = true
			}
		}
		sort.Strings(local)
		switch e.kind {
		case kindUntrusted:
			if len(local) > 0 || ev.Published != e.before.Published || len(ev.Tags) != len(e.before.Tags) {
				bad = append(bad, fmt.Sprintf("%s (untrusted): touched: tags %v, published %v", e.uuid, ev.Tags, ev.Published))
			}
		default:
			w := append([]string(nil), want[e.kind]...)
			sort.Strings(w)
			if fmt.Sprint(local) != fmt.Sprint(w) {
				bad = append(bad, fmt.Sprintf("%s: local tags %v, want exactly %v", e.uuid, local, w))
			}
			if e.kind == kindHigh && (!ev.Published || incomplete) {
				bad = append(bad, fmt.Sprintf("%s (publish): published %v, tags %v", e.uuid, ev.Published, ev.Tags))
			}
		}
	}
	return bad
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func maxOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
}

func policy(name, grade string, publish bool, orgs []string) *v1alpha1.OrgTrustPolicy {
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.OrgTrustPolicySpec{InstanceRef: v1alpha1.InstanceReference{Name: "misp"},
			SourceReliability: grade, Publish: publish}}
	for _, o := range orgs {
		p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o})
	}
	return p
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func start(cfg curator.Config) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = curator.Run(ctx, testEnvConfig, cfg) }()
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

func waitSubscribed(t *testing.T, srv *misptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.WaitZMQSubscribers(ctx, "misp_json_event", 1); err != nil {
		t.Fatalf("the curator did not subscribe: %v", err)
	}
}
