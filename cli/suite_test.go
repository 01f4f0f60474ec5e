package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/controllers"
	"github.com/misptrust/misp-trust-operator/hack/testenv"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The tests run the commands against a real kube-apiserver (envtest, hack/testenv) and
// the MISP double, with the real controller where a test needs lists in MISP.

var env *testenv.Env

func TestMain(m *testing.M) {
	// The controller's logs are not what these tests look at.
	ctrl.SetLogger(logr.Discard())
	testenv.Main(m, "..", nil, func(e *testenv.Env) { env = e })
}

// waitTimeout bounds every wait: generous on a shared, loaded machine.
const waitTimeout = 60 * time.Second

// Organisations of hack/demo/seed.json (and config/samples/).
const (
	orgCIRCL         = "5cf66e53-b5f8-43e7-be9a-49880a3b4631"
	orgPartnerHigh   = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
	orgPartnerMedium = "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19"
	orgUnknownFeed   = "3d0c6f0a-8f7e-4b1c-9a55-2e6b8d1f4c70"
)

// world is one test's namespace, MISP double, MISPInstance "misp-prod" with its Secret,
// and a kubeconfig whose context namespace is the test's.
type world struct {
	t          *testing.T
	ctx        context.Context
	ns         string
	misp       *misptest.Server
	kubeconfig string
	keyFile    string
}

func newWorld(t *testing.T, ns string) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if ns == "" {
		ns = "t-" + randHex(4)
	}
	w := &world{t: t, ctx: ctx, ns: ns, misp: misptest.NewServer(misptest.Options{})}
	t.Cleanup(func() {
		cancel()
		w.misp.Close()
	})
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	dir := t.TempDir()
	w.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := testenv.WriteKubeconfig(env.Config, w.kubeconfig, ns); err != nil {
		t.Fatal(err)
	}
	w.keyFile = filepath.Join(dir, "misp-key")
	if err := os.WriteFile(w.keyFile, []byte(w.misp.AdminKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "misp-api", Namespace: ns, Labels: map[string]string{trust.AllowLabel: trust.AllowValue}}, StringData: map[string]string{"apiKey": w.misp.AdminKey()}})
	w.create(&v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Name: "misp-prod", Namespace: ns},
		Spec: v1alpha1.MISPInstanceSpec{URL: w.misp.URL(), AllowInsecureHTTP: true, // the double speaks plain http
			APIKeySecretRef: v1alpha1.SecretKeyReference{Name: "misp-api", Key: "apiKey"}}})
	return w
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func (w *world) create(obj client.Object) {
	w.t.Helper()
	if obj.GetNamespace() == "" {
		obj.SetNamespace(w.ns)
	}
	if err := env.Client.Create(w.ctx, obj); err != nil {
		w.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// run runs a command in-process, as the binary would, with the world's kubeconfig.
func (w *world) run(args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--kubeconfig", w.kubeconfig)
	code = Main(w.ctx, args, IO{Out: &out, Err: &errb, Prog: "misp-trust-operator", Version: "test"})
	return out.String(), errb.String(), code
}

// runJSON runs a command with -o json and decodes its output.
func (w *world) runJSON(v any, wantCode int, args ...string) {
	w.t.Helper()
	out, errOut, code := w.run(append(args, "-o", "json")...)
	if code != wantCode {
		w.t.Fatalf("%v: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, wantCode, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		w.t.Fatalf("%v: decode output: %v\n%s", args, err, out)
	}
}

// startController runs the real controller (both reconcilers) for the world's namespace
// until the returned stop is called (or the test ends).
func (w *world) startController() (stop func()) {
	w.t.Helper()
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		w.t.Fatal(err)
	}
	mo := controllers.NewManagerOptions(scheme, w.ns)
	mo.Metrics = metricsserver.Options{BindAddress: "0"}
	mo.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(env.Config, mo)
	if err != nil {
		w.t.Fatalf("new manager: %v", err)
	}
	opts := controllers.Options{
		ResyncInterval: time.Hour, BackoffBase: 50 * time.Millisecond, BackoffMax: 2 * time.Second,
		Registerer: prometheus.NewRegistry(), SkipNameValidation: true,
		MISP: misp.Options{Timeout: 10 * time.Second, MaxRetries: 1, RetryBaseDelay: 10 * time.Millisecond, QPS: -1},
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		w.t.Fatalf("setup controller: %v", err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			w.t.Errorf("controller: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	w.t.Cleanup(stop)
	return stop
}

// waitSynced waits until every named policy reports Synced True for its generation.
func (w *world) waitSynced(names ...string) {
	w.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for _, name := range names {
		for {
			var p v1alpha1.OrgTrustPolicy
			err := env.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: name}, &p)
			if err == nil {
				if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionSynced); c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == p.Generation {
					break
				}
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("OrgTrustPolicy %s/%s not Synced: %v %+v", w.ns, name, err, p.Status.Conditions)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// applyYAML creates every object of a multi-document YAML in the world's namespace.
func (w *world) applyYAML(docs string) {
	w.t.Helper()
	objs, err := decodeObjects(strings.NewReader(docs), "test")
	if err != nil {
		w.t.Fatal(err)
	}
	for _, fo := range objs {
		if fo.obj.GetNamespace() == "" {
			fo.obj.SetNamespace(w.ns)
		}
		if err := env.Client.Create(w.ctx, fo.obj); err != nil {
			w.t.Fatalf("create %s %s: %v", fo.obj.GetKind(), fo.obj.GetName(), err)
		}
	}
}

// samplePolicies are config/samples/'s policies, as YAML.
func samplePolicies(t *testing.T) string {
	t.Helper()
	var docs []string
	for _, f := range []string{"misptrust_v1alpha1_orgtrustpolicy_high.yaml", "misptrust_v1alpha1_orgtrustpolicy_medium.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "config", "samples", f))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "\n---\n")
}

// seedDemo loads hack/demo/seed.json's organisations and warninglists into the double,
// as the demo's MISP starts.
func seedDemo(t *testing.T, s *misptest.Server) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hack", "demo", "seed.json"))
	if err != nil {
		t.Fatal(err)
	}
	var seed struct {
		Orgs []struct {
			Name, UUID string
		} `json:"orgs"`
		Warninglists []struct {
			Name, Type, Description, Category string
			Enabled                           bool
			Entries                           []string
		} `json:"warninglists"`
	}
	if err := yaml.Unmarshal(b, &seed); err != nil {
		t.Fatal(err)
	}
	for _, o := range seed.Orgs {
		s.AddOrg(o.Name, o.UUID)
	}
	for _, wl := range seed.Warninglists {
		w := misptest.WL{Name: wl.Name, Type: wl.Type, Description: wl.Description, Category: wl.Category, Enabled: wl.Enabled}
		for _, e := range wl.Entries {
			value, comment, _ := strings.Cut(e, "#")
			w.Entries = append(w.Entries, misptest.WLEntry{Value: strings.TrimSpace(value), Comment: strings.TrimSpace(comment)})
		}
		s.AddWarninglist(w)
	}
	if len(seed.Warninglists) == 0 {
		t.Fatal("hack/demo/seed.json has no warninglist any more: this test exports the demo's adopted list")
	}
}

// requestLog describes the double's requests, for failure messages.
func requestLog(s *misptest.Server) string {
	var b strings.Builder
	for _, r := range s.Requests() {
		b.WriteString(r.Method + " " + r.Path + "\n")
	}
	return b.String()
}

// uuidN is a deterministic organisation UUID.
func uuidN(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

// containsLine reports whether one line of out holds every part.
func containsLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// waitGone waits until the named policies no longer exist.
func waitGone(t *testing.T, w *world, names ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for _, name := range names {
		for {
			var p v1alpha1.OrgTrustPolicy
			err := env.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: name}, &p)
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("OrgTrustPolicy %s/%s still there: %v", w.ns, name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// mustClient is a MISP client of the double's admin.
func mustClient(t *testing.T, s *misptest.Server) *misp.Client {
	t.Helper()
	c, err := misp.New(misp.Options{URL: s.URL(), APIKey: s.AdminKey(), QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func inNamespace(ns string) client.ListOption { return client.InNamespace(ns) }
