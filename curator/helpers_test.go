package curator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const (
	highOrg      = "1521ae8b-48de-4766-8b2a-fdecef763fa8" // PARTNER-HIGH of the sync captures
	mediumOrg    = "5cf66e53-b5f8-43e7-be9a-49880a3b4631"
	untrustedOrg = "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19"
	laterOrg     = "0d0c5b4e-2f43-4c6a-9a0e-3b7e1c2d4f5a"
)

var (
	tagA = trust.SourceReliabilityTag("a")
	tagC = trust.SourceReliabilityTag("c")
)

// env is one test's world: a namespace, a MISP double with its ZeroMQ publisher, the API
// key Secret, and curators started against them.
type env struct {
	t    *testing.T
	ns   string
	misp *misptest.Server
	logs *logSink
}

func newEnv(t *testing.T, opts misptest.Options) *env {
	t.Helper()
	opts.ZMQ = true
	srv := misptest.NewServer(opts)
	t.Cleanup(srv.Close)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	e := &env{t: t, ns: "cur-" + hex.EncodeToString(b), misp: srv, logs: &logSink{}}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}})
	e.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "misp-api", Labels: allowLabels},
		StringData: map[string]string{"apiKey": srv.AdminKey()}})
	return e
}

func (e *env) create(obj client.Object) {
	e.t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		e.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// allowLabels opt a Secret in to being read by the operator.
var allowLabels = map[string]string{trust.AllowLabel: trust.AllowValue}

// instance creates a MISPInstance for the double (ZeroMQ on).
func (e *env) instance(name string, mutate func(*v1alpha1.MISPInstanceSpec)) {
	e.t.Helper()
	inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.MISPInstanceSpec{
			URL:               e.misp.URL(),
			AllowInsecureHTTP: true, // the double speaks plain http
			APIKeySecretRef:   v1alpha1.SecretKeyReference{Name: "misp-api"},
			ZeroMQ:            &v1alpha1.ZeroMQSpec{Endpoint: e.misp.ZMQEndpoint()},
			Curation:          &v1alpha1.CurationSpec{PushDebounce: &metav1.Duration{Duration: time.Second}},
		}}
	if mutate != nil {
		mutate(&inst.Spec)
	}
	e.create(inst)
}

func (e *env) policy(name, grade string, publish bool, orgs ...string) {
	e.t.Helper()
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.OrgTrustPolicySpec{InstanceRef: v1alpha1.InstanceReference{Name: "misp"},
			SourceReliability: grade, Publish: publish}}
	for _, o := range orgs {
		p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o})
	}
	e.create(p)
}

// config is a curator Config with the short delays of tests, watching only this test's
// namespace.
func (e *env) config() Config {
	c := Config{
		Namespace:               e.ns,
		LeaderElectionNamespace: e.ns,
		StatusFlushInterval:     200 * time.Millisecond,
		Logger:                  e.logs.logger(),
	}
	c.MISP.QPS = -1
	c.MISP.RetryBaseDelay, c.MISP.RetryMaxDelay = 20*time.Millisecond, 200*time.Millisecond
	c.Feed.Backoff = feed.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	c.Engine.RetryBaseDelay, c.Engine.RetryMaxDelay = 50*time.Millisecond, 500*time.Millisecond
	c.CatchUp.MinSpacing, c.CatchUp.RetryBase = 100*time.Millisecond, 100*time.Millisecond
	return c
}

// quietCatchUp is config() for tests of the feed path alone: after the first catch-up pass
// (wait for it with waitFirstPass) the next one is a minute away. A pass is an explicit
// request the engine curates at once, debounce or not, and with the metadata the search
// returned (engine.trigger).
func (e *env) quietCatchUp() Config {
	c := e.config()
	c.CatchUp.MinSpacing = time.Minute
	return c
}

// waitFirstPass waits until the first catch-up pass is recorded in the status.
func (e *env) waitFirstPass() {
	e.t.Helper()
	eventually(e.t, "the first catch-up pass", func() (bool, string) {
		c := e.mispInstance().Status.CatchUp
		return c != nil && c.LastRunTime != nil, fmt.Sprintf("%+v", c)
	})
}

// curator is one running curator process.
type curator struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (e *env) start(c Config) *curator {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cu := &curator{cancel: cancel, done: make(chan error, 1)}
	go func() { cu.done <- Run(ctx, testEnvConfig, c) }()
	e.t.Cleanup(cu.stop)
	return cu
}

// stop cancels the curator and waits for it to return.
func (cu *curator) stop() {
	cu.once.Do(func() {
		cu.cancel()
		select {
		case <-cu.done:
		case <-time.After(60 * time.Second):
			panic("curator did not stop within 60s")
		}
	})
}

// waitSubscribed waits until n curators' subscriptions reach the double's publisher (PUB/SUB
// drops what is published before).
func (e *env) waitSubscribed(n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.misp.WaitZMQSubscribers(ctx, "misp_json_event", n); err != nil {
		e.t.Fatalf("curator did not subscribe to the double's ZeroMQ feed: %v", err)
	}
}

// eventually polls cond (which says what it saw) for up to a minute: generous for a
// loaded 2-core machine.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// curated reports whether the event carries exactly the policy's state: every want tag as
// a local tag, no workflow:state="incomplete" when publish, published when publish.
func (e *env) curated(uuid string, publish bool, want ...string) (bool, string) {
	ev, ok := e.misp.Event(uuid)
	if !ok {
		return false, "event " + uuid + " not found"
	}
	local := map[string]bool{}
	for _, t := range ev.Tags {
		if t.Local {
			local[t.Name] = true
		}
		if publish && t.Name == trust.TagWorkflowIncomplete {
			return false, fmt.Sprintf("tags %v", ev.Tags)
		}
	}
	for _, w := range want {
		if !local[w] {
			return false, fmt.Sprintf("tags %v, published %v", ev.Tags, ev.Published)
		}
	}
	if publish && !ev.Published {
		return false, fmt.Sprintf("tags %v, not published", ev.Tags)
	}
	return true, ""
}

// curation reads a policy's status.curation (nil when absent).
func (e *env) curation(name string) *v1alpha1.CurationStatus {
	var p v1alpha1.OrgTrustPolicy
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, &p); err != nil {
		e.t.Fatalf("get policy %s: %v", name, err)
	}
	return p.Status.Curation
}

func (e *env) mispInstance() *v1alpha1.MISPInstance {
	var inst v1alpha1.MISPInstance
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "misp"}, &inst); err != nil {
		e.t.Fatalf("get MISPInstance: %v", err)
	}
	return &inst
}

func (e *env) feedCondition() *metav1.Condition {
	return meta.FindStatusCondition(e.mispInstance().Status.Conditions, status.ConditionFeedConnected)
}

// requestsAbout returns the REST requests whose path or body names the event.
func (e *env) requestsAbout(uuid string) []misptest.RequestRecord {
	var out []misptest.RequestRecord
	for _, r := range e.misp.Requests() {
		if strings.Contains(r.Path, uuid) || strings.Contains(r.Body, uuid) {
			out = append(out, r)
		}
	}
	return out
}

func countRoute(reqs []misptest.RequestRecord, route string) int {
	n := 0
	for _, r := range reqs {
		if r.Route == route {
			n++
		}
	}
	return n
}

// logSink collects the curator's log lines (to check that no secret is ever logged).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, prefix+" "+args)
		l.mu.Unlock()
	}, funcr.Options{Verbosity: 1})
}

// line reports whether one log line contains every part.
func (l *logSink) line(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return true
	}
	return false
}

// countLines counts the log lines that contain every part.
func (l *logSink) countLines(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}
