package charts_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// The real binary, started with the arguments the chart gives each Deployment,
// runs under the chart's ServiceAccount and RBAC (impersonated): both components
// win their Lease, serve /healthz, /readyz and /metrics on the chart's ports,
// and the controller writes a MISPInstance status; nothing is forbidden. This is
// what proves the RBAC is enough, and not only well-formed.
func TestBinaryRunsUnderChartRBAC(t *testing.T) { runUnderChartRBAC(t) }

// The recommended install: Roles in the watched namespaces only; the processes get
// --watch-namespaces. Nothing may be forbidden either.
func TestBinaryRunsUnderNamespaceScopedRBAC(t *testing.T) {
	runUnderChartRBAC(t, "--set", "security.watchNamespaces={default}")
}

func runUnderChartRBAC(t *testing.T, values ...string) {
	c, err := startCluster(filepath.Join("..", "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "misp-trust-operator")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The chart's identities and rules, for real (CRDs come from envtest).
	if _, err := c.kubectl(ctx, nil, "create", "namespace", namespace); err != nil {
		t.Fatal(err)
	}
	var rbac []string
	for _, u := range render(t, append([]string{"--set", "crds.enabled=false"}, values...)...) {
		switch u.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			b, err := u.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			rbac = append(rbac, string(b))
		}
	}
	if _, err := c.kubectl(ctx, []byte(strings.Join(rbac, "\n")), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// A MISPInstance whose MISP does not answer (a closed loopback port): the
	// controller must still be able to read its Secret and write its status.
	objs := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"misp-api","namespace":"default","labels":{"misptrust.io/allow":"true"}},"stringData":{"apiKey":"0123456789012345678901234567890123456789"}}
{"apiVersion":"misptrust.io/v1alpha1","kind":"MISPInstance","metadata":{"name":"misp","namespace":"default"},"spec":{"url":"http://127.0.0.1:1","allowInsecureHTTP":true,"apiKeySecretRef":{"name":"misp-api"}}}
{"apiVersion":"misptrust.io/v1alpha1","kind":"OrgTrustPolicy","metadata":{"name":"high","namespace":"default"},"spec":{"instanceRef":{"name":"misp"},"sourceReliability":"a","organisations":[{"uuid":"5cf66e53-b5f8-43e7-be9a-49880a3b4631"}]}}`
	if _, err := c.kubectl(ctx, []byte(objs), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	type proc struct {
		component     string
		metrics, prob int
		out           *syncBuffer
		cmd           *exec.Cmd
	}
	var procs []*proc
	for _, component := range []string{"controller", "curator"} {
		p := &proc{component: component, metrics: freePort(t), prob: freePort(t), out: &syncBuffer{}}
		d := render(t, append([]string{"--set", fmt.Sprintf("ports.metrics=%d", p.metrics), "--set", fmt.Sprintf("ports.health=%d", p.prob)}, values...)...).
			mustFind(t, "Deployment", "mto-misp-trust-operator-"+component)
		var args []string
		for _, a := range container(t, d)["args"].([]any) {
			args = append(args, a.(string))
		}
		sa := field(t, d, "spec", "template", "spec", "serviceAccountName").(string)
		kubeconfig := c.impersonatingKubeconfig(t, "system:serviceaccount:"+namespace+":"+sa)
		// Outside a pod there is no service account namespace file: say where the Lease lives.
		args = append(args, "--kubeconfig="+kubeconfig, "--leader-election-namespace="+namespace)
		// Not tied to ctx: the cleanup below stops it with SIGTERM, as the kubelet would.
		p.cmd = exec.Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s did not exit cleanly on SIGTERM: %v", p.component, err)
				}
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				t.Errorf("%s did not stop within 30 s of SIGTERM", p.component)
			}
			if t.Failed() {
				t.Logf("%s output:\n%s", p.component, p.out.String())
			}
		}
	})

	eventually := func(what string, ok func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		var last string
		for time.Now().Before(deadline) {
			var done bool
			if done, last = ok(); done {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: not reached in 3 minutes (last: %s)", what, last)
	}
	httpOK := func(port int, path string) func() (bool, string) {
		return func() (bool, string) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		}
	}
	for _, p := range procs {
		eventually(p.component+" /healthz", httpOK(p.prob, "/healthz"))
		eventually(p.component+" /readyz", httpOK(p.prob, "/readyz"))
		eventually(p.component+" /metrics", httpOK(p.metrics, "/metrics"))
		lease := "misp-trust-" + p.component
		eventually(p.component+" holds Lease "+lease, func() (bool, string) {
			out, err := c.kubectl(ctx, nil, "get", "lease", lease, "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}")
			if err != nil {
				return false, err.Error()
			}
			return out != "", out
		})
	}
	eventually("controller writes the MISPInstance Ready condition", func() (bool, string) {
		out, err := c.kubectl(ctx, nil, "get", "mispinstance", "misp", "-n", "default", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].reason}`)
		if err != nil {
			return false, err.Error()
		}
		return out != "", out
	})
	eventually("controller writes the OrgTrustPolicy Ready condition", func() (bool, string) {
		out, err := c.kubectl(ctx, nil, "get", "orgtrustpolicy", "high", "-n", "default", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].reason}`)
		if err != nil {
			return false, err.Error()
		}
		return out != "", out
	})
	for _, p := range procs {
		for _, line := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
				t.Errorf("%s was refused something under the chart's RBAC: %s", p.component, line)
			}
		}
	}
}

// impersonatingKubeconfig writes a kubeconfig that acts as user (the envtest
// admin impersonates it, so the apiserver authorises every call as that user).
func (c *cluster) impersonatingKubeconfig(t *testing.T, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
