package controllers

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
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// waitTimeout bounds every "eventually" in these tests: generous, because the
// machine running them is shared and loaded; polling ends as soon as the
// condition holds.
const waitTimeout = 60 * time.Second

// harness is one test's world: its own namespace, MISP double and manager
// running both reconcilers (watching only that namespace).
type harness struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	extra []string // more watched namespaces
	misp  *misptest.Server
	reg   *prometheus.Registry
	cache cache.Cache // the manager's
}

type harnessOptions struct {
	resync time.Duration // Options.ResyncInterval; default 1h (no resync during the test)
	misp   misptest.Options
	// extraNamespaces are created and watched too (h.extra; h.in(ns) works there).
	extraNamespaces int
	// allowedHosts is the controller's --misp-allowed-hosts.
	allowedHosts string
	// production keeps the production defaults of workers, timeouts, retries
	// and backoffs (the other tests shorten them).
	production bool
}

func newHarness(t *testing.T, ho harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, ns: "t-" + randHex(5), misp: misptest.NewServer(ho.misp), reg: prometheus.NewRegistry()}
	for i := 0; i < ho.extraNamespaces; i++ {
		h.extra = append(h.extra, "t-"+randHex(5))
	}
	for _, ns := range append([]string{h.ns}, h.extra...) {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatalf("create namespace: %v", err)
		}
	}
	mo := NewManagerOptions(testScheme, append([]string{h.ns}, h.extra...)...)
	mo.Metrics = metricsserver.Options{BindAddress: "0"}
	mo.HealthProbeBindAddress = "0"
	mo.Logger = h.logger()
	mgr, err := ctrl.NewManager(testEnvConfig, mo)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	resync := ho.resync
	if resync == 0 {
		resync = time.Hour
	}
	opts := Options{
		ResyncInterval:     resync,
		BackoffBase:        50 * time.Millisecond,
		BackoffMax:         2 * time.Second,
		Registerer:         h.reg,
		SkipNameValidation: true,
		MISP:               misp.Options{Timeout: 10 * time.Second, MaxRetries: 1, RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond, QPS: -1},
	}
	if ho.production {
		opts = Options{ResyncInterval: resync, Registerer: h.reg, SkipNameValidation: true}
	}
	if opts.AllowedHosts, err = trust.ParseHostAllowList(ho.allowedHosts); err != nil {
		t.Fatal(err)
	}
	if err := SetupWithManager(mgr, opts); err != nil {
		t.Fatalf("setup: %v", err)
	}
	h.cache = mgr.GetCache()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.misp.Close()
		// envtest runs no namespace controller: the namespace stays, but no
		// manager watches it any more.
		for _, ns := range append([]string{h.ns}, h.extra...) {
			_ = k8sClient.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}
	})
	return h
}

// with returns the harness for a subtest (helpers fail through its t).
// allowLabels opt a Secret or ConfigMap in to being read by the operator.
var allowLabels = map[string]string{trust.AllowLabel: trust.AllowValue}

func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// in returns the harness for another watched namespace (same manager and MISP).
func (h *harness) in(ns string) *harness {
	c := *h
	c.ns = ns
	return &c
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// uuidN is a deterministic organisation UUID.
func uuidN(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

func (h *harness) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: h.ns, Name: name}
}

// secret creates (or replaces the data of) a Secret holding an API key.
func (h *harness) secret(name string, data map[string]string) {
	h.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Labels: allowLabels}, StringData: data}
	if err := k8sClient.Create(h.ctx, s); err != nil {
		h.t.Fatalf("create Secret %s: %v", name, err)
	}
}

// instance creates a MISPInstance using the API key in Secret secretName.
func (h *harness) instance(name, secretName string) {
	h.t.Helper()
	inst := &v1alpha1.MISPInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec:       v1alpha1.MISPInstanceSpec{URL: h.misp.URL(), AllowInsecureHTTP: true, APIKeySecretRef: v1alpha1.SecretKeyReference{Name: secretName}},
	}
	if err := k8sClient.Create(h.ctx, inst); err != nil {
		h.t.Fatalf("create MISPInstance %s: %v", name, err)
	}
}

// readyInstance creates a Secret with the site admin key and an instance, and
// waits until it is Ready.
func (h *harness) readyInstance(name string) {
	h.t.Helper()
	h.secret(name+"-key", map[string]string{"apiKey": h.misp.AdminKey()})
	h.instance(name, name+"-key")
	h.waitInstance(name, func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", i.Generation)
	})
}

func (h *harness) createPolicy(p *v1alpha1.OrgTrustPolicy) {
	h.t.Helper()
	p.Namespace = h.ns
	if err := k8sClient.Create(h.ctx, p); err != nil {
		h.t.Fatalf("create OrgTrustPolicy %s: %v", p.Name, err)
	}
}

func policy(name, instance, grade string, orgs ...v1alpha1.Organisation) *v1alpha1.OrgTrustPolicy {
	return &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.OrgTrustPolicySpec{
			InstanceRef:       v1alpha1.InstanceReference{Name: instance},
			SourceReliability: grade,
			Organisations:     orgs,
		},
	}
}

func org(n int, name string) v1alpha1.Organisation {
	return v1alpha1.Organisation{UUID: uuidN(n), Name: name}
}

// updatePolicy re-reads the policy, applies mutate and updates it (retrying conflicts).
func (h *harness) updatePolicy(name string, mutate func(*v1alpha1.OrgTrustPolicy)) {
	h.t.Helper()
	eventually(h.t, func() error {
		var p v1alpha1.OrgTrustPolicy
		if err := k8sClient.Get(h.ctx, h.key(name), &p); err != nil {
			return err
		}
		mutate(&p)
		return k8sClient.Update(h.ctx, &p)
	})
}

func (h *harness) getPolicy(name string) *v1alpha1.OrgTrustPolicy {
	h.t.Helper()
	var p v1alpha1.OrgTrustPolicy
	if err := k8sClient.Get(h.ctx, h.key(name), &p); err != nil {
		h.t.Fatalf("get OrgTrustPolicy %s: %v", name, err)
	}
	return &p
}

// waitPolicy polls until check passes on the current policy.
func (h *harness) waitPolicy(name string, check func(*v1alpha1.OrgTrustPolicy) error) *v1alpha1.OrgTrustPolicy {
	h.t.Helper()
	var p v1alpha1.OrgTrustPolicy
	eventually(h.t, func() error {
		if err := k8sClient.Get(h.ctx, h.key(name), &p); err != nil {
			return err
		}
		return check(&p)
	})
	return &p
}

func (h *harness) waitInstance(name string, check func(*v1alpha1.MISPInstance) error) *v1alpha1.MISPInstance {
	h.t.Helper()
	var i v1alpha1.MISPInstance
	eventually(h.t, func() error {
		if err := k8sClient.Get(h.ctx, h.key(name), &i); err != nil {
			return err
		}
		return check(&i)
	})
	return &i
}

// synced checks that the policy's current generation is Ready and Synced.
func synced(p *v1alpha1.OrgTrustPolicy) error {
	if err := wantCondition(p.Status.Conditions, v1alpha1.ConditionSynced, metav1.ConditionTrue, ReasonSynced, p.Generation); err != nil {
		return err
	}
	if p.Status.ObservedGeneration != p.Generation {
		return fmt.Errorf("status.observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
	}
	return nil
}

// wantCondition checks a condition's status (and reason, when given) for generation.
func wantCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string, generation int64) error {
	c := meta.FindStatusCondition(conds, typ)
	switch {
	case c == nil:
		return fmt.Errorf("no %s condition yet", typ)
	case c.ObservedGeneration != generation:
		return fmt.Errorf("%s is for generation %d, want %d", typ, c.ObservedGeneration, generation)
	case c.Status != status || (reason != "" && c.Reason != reason):
		return fmt.Errorf("%s = %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

func condition(conds []metav1.Condition, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// eventually polls f every 50ms until it returns nil or waitTimeout passes.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// list returns the warninglist with this name in the double.
func (h *harness) list(name string) misptest.WL {
	h.t.Helper()
	wl, ok := h.misp.WarninglistByName(name)
	if !ok {
		h.t.Fatalf("no warninglist %q in MISP", name)
	}
	return wl
}

// events returns the Events about an object with this reason.
func (h *harness) events(objName, reason string) []eventsv1.Event {
	h.t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
		h.t.Fatalf("list events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == objName && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event about objName with reason whose note contains substr.
func (h *harness) waitEvent(objName, reason, substr string) eventsv1.Event {
	h.t.Helper()
	var found eventsv1.Event
	eventually(h.t, func() error {
		for _, e := range h.events(objName, reason) {
			if strings.Contains(e.Note, substr) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event about %s containing %q", reason, objName, substr)
	})
	return found
}

// counter reads a counter of the harness' registry.
func (h *harness) counter(name string, labels map[string]string) float64 {
	h.t.Helper()
	v, _ := h.metric(name, labels)
	return v
}

// metric is the value of the first counter or gauge series of name whose labels
// include labels; false when there is none.
func (h *harness) metric(name string, labels map[string]string) (float64, bool) {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			seen := 0
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok {
					if v != lp.GetValue() {
						continue metric
					}
					seen++
				}
			}
			if seen != len(labels) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// wlCalls is the number of requests the double received per warninglist route.
func (h *harness) wlCalls() map[string]int {
	out := map[string]int{}
	for route, n := range h.misp.CallsByRoute() {
		if strings.HasPrefix(route, "/warninglists/") {
			out[route] = n
		}
	}
	return out
}

// entries of a double's list as value → comment.
func entryMap(wl misptest.WL) map[string]string {
	m := make(map[string]string, len(wl.Entries))
	for _, e := range wl.Entries {
		m[e.Value] = e.Comment
	}
	return m
}

// logger collects the manager's logs and prints them when the test fails
// (logging through t after the test ended would panic).
func (h *harness) logger() logr.Logger {
	var mu sync.Mutex
	var buf strings.Builder
	h.t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if h.t.Failed() {
			h.t.Logf("controller logs:\n%s", buf.String())
		}
	})
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&buf, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{Verbosity: 1})
}
