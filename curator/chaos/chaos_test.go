package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator"
	"github.com/misptrust/misp-trust-operator/curator/feed"
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

const (
	seed       = 20261126
	nEvents    = 2100
	faultRate  = 0.2
	zmqDrop    = 0.1
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
}

func TestNoEventIsLostUnderChaos(t *testing.T) {
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
	cfg.MISP.QPS = -1
	cfg.MISP.RetryBaseDelay, cfg.MISP.RetryMaxDelay = 10*time.Millisecond, 100*time.Millisecond
	cfg.Feed.Backoff = feed.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.Engine.RetryBaseDelay, cfg.Engine.RetryMaxDelay = 50*time.Millisecond, 500*time.Millisecond
	// A short margin, so passes really start from the watermark (the test lasts seconds).
	cfg.CatchUp.SafetyMargin = 5 * time.Second
	cfg.CatchUp.MinSpacing, cfg.CatchUp.RetryBase = 200*time.Millisecond, 200*time.Millisecond

	cur := start(cfg)
	waitSubscribed(t, srv)
	srv.SetFault("", misptest.Fault{ErrorRate: faultRate, ErrorStatus: 500})
	srv.SetZMQDropRate(zmqDrop)

	rng := rand.New(rand.NewPCG(seed, 1))
	var events []*synced
	restarts := map[int]string{nEvents / 3: "publisher", nEvents / 2: "curator-stop", nEvents/2 + 150: "curator-start", 2 * nEvents / 3: "publisher"}
	for i := 0; i < nEvents; i++ {
		switch restarts[i] {
		case "publisher":
			srv.RestartPublisher()
		case "curator-stop":
			cur.stop()
		case "curator-start":
			cur = start(cfg)
		}
		events = append(events, syncOne(srv, rng))
		// Now and then a partner edits an event of a tag-only or untrusted org (a
		// publishing org's edit would legitimately need a second publish).
		if i%25 == 24 {
			e := events[rng.IntN(len(events))]
			if e.kind != kindHigh {
				edited := srv.SimulatePullEdit(e.uuid, func(x *misptest.Event) { x.Attributes++ })
				if e.kind == kindUntrusted {
					e.before = edited
				}
			}
		}
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // a realistic stream, not one burst
		}
	}
	generated := time.Since(started)

	// Convergence: every trusted event in its policy's state.
	deadline := time.Now().Add(90*time.Second - time.Since(started))
	var bad []string
	for {
		bad = check(srv, events)
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	converged := time.Since(started)
	cur.stop()
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%d events not in their policy's state after %s, e.g.:\n%s", len(bad), converged, strings.Join(bad[:min(10, len(bad))], "\n"))
	}

	// Publish at most once per event: requests that reached the handler (the double's
	// faults answer 500 before it) and succeeded.
	publishes := map[string]int{}
	calls := map[string]int{}
	faults := 0
	for _, r := range srv.Requests() {
		calls[r.Route]++
		if r.Status >= 500 {
			faults++
		}
		if r.Route == "/events/publish" && r.Status == 200 {
			publishes[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
		}
	}
	for uuid, n := range publishes {
		if n > 1 {
			t.Errorf("event %s published %d times", uuid, n)
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
	var st v1alpha1.OrgTrustPolicy
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policyHigh}, &st); err != nil {
		t.Fatal(err)
	}
	// The counters are best effort across a restart, but never count a publish that did
	// not happen.
	if c := st.Status.Curation; c == nil || c.Published > int64(len(publishes)) {
		t.Errorf("status.curation of %s = %+v, want at most %d published", policyHigh, c, len(publishes))
	}
	zs := srv.ZMQStats()
	t.Logf("events: %d (high %d, medium %d, untrusted %d), generated in %s, all curated after %s",
		len(events), counts[kindHigh], counts[kindMedium], counts[kindUntrusted], generated.Round(time.Millisecond), converged.Round(time.Millisecond))
	t.Logf("faults: %d REST answers 500 (rate %.0f%%), ZeroMQ: %d messages dropped of %d, %d publisher restarts, 1 curator restart",
		faults, faultRate*100, zs.Dropped, zs.Published+zs.Dropped, zs.Restarts)
	t.Logf("MISP calls: %v; successful publishes: %d events, max %d per event; metadata reads of untrusted events: %d",
		calls, len(publishes), maxOf(publishes), untrustedReads)
	t.Logf("status.curation of %s: %+v", policyHigh, st.Status.Curation)
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
	if rng.IntN(10) < 7 {
		out = srv.SimulatePull(e)
	} else {
		out = srv.SimulatePush(e)
	}
	return &synced{uuid: out.UUID, kind: k, before: out}
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
