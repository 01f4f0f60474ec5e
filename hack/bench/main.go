// Command bench measures the curation engine (curator/engine) against the MISP double
// (misp/misptest) through the real MISP client, and prints ONE JSON line.
//
// The curator side indexes -orgs organisations (half in a high policy: grade a +
// publish, half in a medium one: grade c). The double simulates -events partner events in
// four classes (untrusted pulled, untrusted pushed, tag only, tag + publish; trusted
// events are pulled published, pushed, or pulled unpublished — no misp_json, so a
// metadata read is needed) plus one pulled event with -big attributes. Once every event
// is simulated, the double's ZeroMQ frames are streamed to the curator side, parsed with
// the feed parser and handed to the engine all at once (or at -rate events/s); the run
// ends when every event is curated (follow-up curations included).
//
// By default the double runs in a child process (-double child), so that rss_mib is the
// curator's own; -double inprocess keeps it in this process (its message log and events
// then dominate rss_mib).
//
// Reported: events/s (first frame handed over → last curation done), p50/p99 latency
// from an event's last message to its curation (pushes include the coalesce window, or
// the debounce when no misp_json came), MISP calls per event per class (every curation of
// the event summed), response bytes per event (the 10,000-attribute event included: the
// engine never downloads an event), RSS, CPU per event on both sides, a check of every
// event's final state in the double (wrong_state), and whether the calls the double saw
// equal those the engine counted (calls_consistent).
//
//	go run ./hack/bench -events 10000 -latency 0 -concurrency 8
//
// -mode capacity measures something else: the deployed curator (default options, the
// adaptive client limit) against a tight reference client on capacity-limited doubles,
// per event class and MISP size, and prints a table (capacity.go).
//
//	go run ./hack/bench -mode capacity -workers 1,2,8 -service 0s,70ms
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

type config struct {
	events      int
	latency     time.Duration
	concurrency int
	orgs        int
	big         int
	rate        float64
	debounce    time.Duration
	coalesce    time.Duration
	seed        uint64
	double      string
	child       bool
	cpuProfile  string
	memProfile  string
	mode        string
}

func main() {
	var c config
	flag.IntVar(&c.events, "events", 10000, "partner events to curate")
	flag.DurationVar(&c.latency, "latency", 0, "latency of every MISP REST call (the double's fault injection)")
	flag.IntVar(&c.concurrency, "concurrency", 8, "engine workers")
	flag.IntVar(&c.orgs, "orgs", 100_000, "organisations in the trust index")
	flag.IntVar(&c.big, "big", 10_000, "attributes of the one big pulled event (0: none)")
	flag.Float64Var(&c.rate, "rate", 0, "events per second handed to the engine (0: all at once)")
	flag.DurationVar(&c.debounce, "debounce", 100*time.Millisecond, "engine PushDebounce")
	flag.DurationVar(&c.coalesce, "coalesce", 10*time.Millisecond, "engine CoalesceWindow")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed of the event mix")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file")
	flag.StringVar(&c.memProfile, "memprofile", "", "write a heap profile at the end to this file")
	flag.StringVar(&c.double, "double", "child", "where the MISP double runs: child (its own process, so rss_mib is the curator's alone) or inprocess")
	flag.BoolVar(&c.child, "child", false, "internal: run as the double's process")
	flag.StringVar(&c.mode, "mode", "engine", "engine: the curation engine alone, unlimited, one JSON line; capacity: the deployed curator against a tight reference client on capacity-limited MISPs (capacity.go)")
	var cc capConfig
	workers := flag.String("workers", "1,2,8", "capacity mode: MISP request workers, comma-separated")
	services := flag.String("service", "0s,70ms,real", "capacity mode: MISP service time per call, comma-separated; real: misptest.CalibratedCapacity (2 workers, the measured MISP 2.5.1)")
	flag.Float64Var(&cc.seconds, "seconds", 10, "capacity mode: target length of one measured run (sets the events per class)")
	flag.IntVar(&cc.maxEvent, "max-events", 2000, "capacity mode: events per class and run at most (and for 0 ms)")
	flag.BoolVar(&cc.unlimited, "unlimited-curator", false, "capacity mode: run the curator with no client-side limit (to measure the adaptive limit itself)")
	classes := flag.String("classes", "", "capacity mode: only these classes, comma-separated (default all)")
	flag.BoolVar(&cc.slowdown, "slowdown", true, "capacity mode: also run the mid-run slowdown table")
	flag.Parse()
	if c.mode == "capacity" {
		var err error
		if cc.workers, err = parseList(*workers, strconv.Atoi); err == nil {
			cc.services, err = parseList(*services, parseService)
		}
		if err == nil && *classes != "" {
			cc.classes, err = parseList(*classes, func(s string) (engine.Class, error) { return engine.Class(s), nil })
		}
		if err == nil {
			err = runCapacity(c, cc)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if c.mode != "engine" {
		fmt.Fprintf(os.Stderr, "bench: -mode must be engine or capacity, not %q\n", c.mode)
		os.Exit(2)
	}
	if c.child {
		if err := runChild(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench double:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

type classStats struct {
	Events int     `json:"events"`
	Mean   float64 `json:"mean"`
	Max    int     `json:"max"`
}

type result struct {
	Events           int                    `json:"events"`
	EventsPerS       float64                `json:"events_per_s"`
	P50Ms            float64                `json:"p50_ms"`
	P99Ms            float64                `json:"p99_ms"`
	CallsPerEvent    map[string]float64     `json:"misp_calls_per_event"`
	CallsDetail      map[string]*classStats `json:"misp_calls_detail"`
	BytesPerEvent    float64                `json:"bytes_fetched_per_event"`
	BigEventBytes    int64                  `json:"big_event_bytes_fetched"`
	BigEventAttrs    int                    `json:"big_event_attributes"`
	RSSMiB           float64                `json:"rss_mib"`
	PeakRSSMiB       float64                `json:"peak_rss_mib"`
	IndexHeapMiB     float64                `json:"index_heap_mib"`
	RSSAfterIndexMiB float64                `json:"rss_after_index_mib"`
	OrgsIndexed      int                    `json:"orgs_indexed"`
	Concurrency      int                    `json:"concurrency"`
	LatencyMs        float64                `json:"latency_ms"`
	RateEventsPerS   float64                `json:"rate"`
	DebounceMs       float64                `json:"debounce_ms"`
	CoalesceMs       float64                `json:"coalesce_ms"`
	MISPCalls        int                    `json:"misp_calls_total"`
	CallsConsistent  bool                   `json:"calls_consistent"`
	Failed           int                    `json:"failed"`
	WrongState       int                    `json:"wrong_state"`
	WrongClass       int                    `json:"wrong_class"`
	ExtraCurations   int                    `json:"extra_curations"`
	CPUMsPerEvent    float64                `json:"cpu_ms_per_event"`
	DoubleCPUMs      float64                `json:"double_cpu_ms_per_event"`
	Double           string                 `json:"double"`
	Messages         int                    `json:"zmq_messages"`
	GoMaxProcs       int                    `json:"gomaxprocs"`
	SetupS           float64                `json:"setup_s"`
	ElapsedS         float64                `json:"elapsed_s"`
}

func run(c config) (*result, error) {
	if c.events < 4 {
		return nil, errors.New("-events must be at least 4")
	}
	start := time.Now()
	res := &result{Events: c.events, Concurrency: c.concurrency, OrgsIndexed: c.orgs, GoMaxProcs: runtime.GOMAXPROCS(0),
		LatencyMs: ms(c.latency), RateEventsPerS: c.rate, DebounceMs: ms(c.debounce), CoalesceMs: ms(c.coalesce),
		CallsPerEvent: map[string]float64{}, CallsDetail: map[string]*classStats{}, Double: c.double}

	// The trust index: c.orgs organisations, half high, half medium.
	heapBefore := heapInUse()
	idx := &index.Index{}
	{
		all, _, _, _ := orgPools(c.seed, c.orgs)
		split := map[string][]trust.Org{}
		for i, o := range all {
			key := "bench/medium"
			if i%2 == 0 {
				key = "bench/high"
			}
			split[key] = append(split[key], trust.Org{UUID: o})
		}
		policies := []*v1alpha1.OrgTrustPolicy{policy("high", 100, "a", true), policy("medium", 50, "c", false)}
		idx.Store(index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org { return split[trust.Key(p)] }))
	}
	res.IndexHeapMiB = mib(max(heapInUse(), heapBefore) - heapBefore)
	res.RSSAfterIndexMiB = rssMiB("VmRSS")

	// The double simulates every event first; its frames are then streamed to the
	// curator side, parsed and handed over as a subscriber would.
	var d double
	var err error
	switch c.double {
	case "child":
		d, err = startChild()
	case "inprocess":
		d, err = startInProcess(c)
	default:
		err = fmt.Errorf("-double must be child or inprocess, not %q", c.double)
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	plan := d.Plan()
	res.Messages = d.Frames()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * c.concurrency
	client, err := misp.New(misp.Options{URL: d.URL(), APIKey: d.Key(), QPS: -1, Transport: tr, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	// Every curation of an event counts: a follow-up (a message that arrived while the
	// event was being curated) adds its calls to the event's.
	type agg struct {
		calls, curations int
		class            engine.Class
		at               time.Time
		failed           bool
	}
	var mu sync.Mutex
	outcomes := make(map[string]*agg, c.events)
	done := make(chan struct{})
	eng := engine.New(engine.Options{
		Instance: "bench/misp", Index: idx, MISP: client, Concurrency: c.concurrency,
		PushDebounce: c.debounce, CoalesceWindow: c.coalesce, Logger: logr.Discard(),
		RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: time.Second,
		OnOutcome: func(o engine.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			a := outcomes[o.EventUUID]
			if a == nil {
				a = &agg{}
				outcomes[o.EventUUID] = a
				if len(outcomes) == c.events {
					close(done)
				}
			}
			a.calls += o.Calls
			a.curations++
			a.class, a.at, a.failed = o.Class, o.At, o.Err != nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	res.SetupS = round2(time.Since(start).Seconds())

	// Hand the messages over, all at once or at c.rate events per second (an event's
	// messages go together: MISP sends them within milliseconds).
	last := make(map[string]time.Time, c.events)
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuSeconds()
	t0 := time.Now()
	perEvent := max(1, d.Frames()/c.events)
	for i := 0; ; i++ {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if c.rate > 0 && i%perEvent == 0 {
			if wait := time.Until(t0.Add(time.Duration(float64(i/perEvent) / c.rate * float64(time.Second)))); wait > 0 {
				time.Sleep(wait)
			}
		}
		m, err := feed.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("parse frame %d: %w", i, err)
		}
		eng.HandleMessage(m)
		if m.EventUUID != "" && (m.Kind == feed.KindEvent || m.Kind == feed.KindPublish) {
			last[m.EventUUID] = time.Now()
		}
	}
	select {
	case <-done:
	case <-time.After(10*time.Minute + time.Duration(c.events)*c.latency*4):
		return nil, fmt.Errorf("timeout: %d of %d events curated", len(outcomes), c.events)
	}
	for eng.Pending() > 0 { // follow-ups
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	res.CPUMsPerEvent = round2((cpuSeconds() - cpu0) * 1000 / float64(c.events))
	cancel()
	res.ElapsedS = round2(elapsed.Seconds())
	res.EventsPerS = round2(float64(c.events) / elapsed.Seconds())
	res.RSSMiB = rssMiB("VmRSS")
	res.PeakRSSMiB = rssMiB("VmHWM")

	// Latency, calls per class, failures.
	var lat []float64
	total := 0
	mu.Lock()
	defer mu.Unlock()
	for _, p := range plan {
		o := outcomes[p.UUID]
		if o.failed {
			res.Failed++
		}
		res.ExtraCurations += o.curations - 1
		if t, ok := last[p.UUID]; ok && o.at.After(t) {
			lat = append(lat, ms(o.at.Sub(t)))
		}
		cs := res.CallsDetail[string(o.class)]
		if cs == nil {
			cs = &classStats{}
			res.CallsDetail[string(o.class)] = cs
		}
		cs.Events++
		cs.Mean += float64(o.calls)
		cs.Max = max(cs.Max, o.calls)
		total += o.calls
		if o.class != p.Class {
			res.WrongClass++
		}
	}
	for k, cs := range res.CallsDetail {
		cs.Mean = round2(cs.Mean / float64(cs.Events))
		res.CallsPerEvent[k] = cs.Mean
	}
	slices.Sort(lat)
	res.P50Ms, res.P99Ms = round2(quantile(lat, .50)), round2(quantile(lat, .99))

	st, err := d.Stats()
	if err != nil {
		return nil, fmt.Errorf("read the double's statistics: %w", err)
	}
	res.MISPCalls = st.Calls
	res.CallsConsistent = st.Calls == total
	res.BytesPerEvent = round2(float64(st.Bytes) / float64(c.events))
	res.BigEventBytes = st.BigEventBytes
	res.BigEventAttrs = c.big
	res.WrongState = st.WrongState
	res.DoubleCPUMs = round2(st.CPUSeconds * 1000 / float64(c.events))
	if c.memProfile != "" {
		f, err := os.Create(c.memProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return nil, err
		}
	}
	runtime.KeepAlive(idx)
	return res, nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func policy(name string, prio int32, grade string, publish bool) *v1alpha1.OrgTrustPolicy {
	return &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
		Spec:       v1alpha1.OrgTrustPolicySpec{SourceReliability: grade, Publish: publish, Priority: &prio},
	}
}

func uuidFrom(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, b>>52, b&0xffffffffffff)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b uint64) float64       { return round2(float64(b) / (1 << 20)) }
func round2(f float64) float64   { return float64(int64(f*100+0.5)) / 100 }

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rssMiB reads VmRSS or VmHWM (peak) from /proc/self/status; 0 when unavailable.
func rssMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return round2(kb / 1024)
			}
		}
	}
	return 0
}
