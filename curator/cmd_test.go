package curator

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

func TestRunCuratorRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"renew deadline not below the lease duration", []string{"--leader-election-lease-duration=5s", "--leader-election-renew-deadline=5s"}, "renew-deadline"},
		{"retry period not below the renew deadline", []string{"--leader-election-retry-period=8s"}, "retry-period"},
		{"flush interval too short", []string{"--status-flush-interval=1ms"}, "status-flush-interval"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"unknown flag", []string{"--nope"}, "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RunCurator(context.Background(), tc.args, "test")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RunCurator(%v) = %v, want an error about %s", tc.args, err, tc.want)
			}
		})
	}
	if err := RunCurator(context.Background(), []string{"-h"}, "test"); err != nil {
		t.Fatalf("-h: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunCuratorServesProbesAndMetricsAndCurates runs the subcommand as main.go does, with
// a kubeconfig file, and checks its endpoints and that it curates.
func TestRunCuratorServesProbesAndMetricsAndCurates(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	user, err := testEnv.AddUser(envtest.User{Name: "admin-" + e.ns, Groups: []string{"system:masters"}}, testEnvConfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	metrics, probes := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunCurator(ctx, []string{"--kubeconfig", path, "--namespace", e.ns, "--leader-election-namespace", e.ns,
			"--metrics-bind-address", metrics, "--health-probe-bind-address", probes, "--status-flush-interval=200ms",
			"--zap-log-level=error"}, "test")
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunCurator returned %v after a clean stop", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("RunCurator did not stop within 60s")
		}
	})

	eventually(t, "healthz and readyz", func() (bool, string) {
		c1, b1 := get("http://" + probes + "/healthz")
		c2, b2 := get("http://" + probes + "/readyz")
		return c1 == 200 && c2 == 200, b1 + b2
	})
	e.waitSubscribed(1)
	ev := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	eventually(t, "the event curated", func() (bool, string) {
		return e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	eventually(t, "the curator's metrics", func() (bool, string) {
		code, body := get("http://" + metrics + "/metrics")
		for _, m := range []string{"misptrust_catchup_passes_total", "misptrust_curator_status_applies_total",
			"misptrust_feed_messages_total", `instance="` + e.ns + `/misp"`,
			// The series alerts are built on (unconfirmed publishes) under its exact name.
			`misptrust_curator_unconfirmed_publishes{instance="` + e.ns + `/misp"} 0`,
			"misptrust_curator_publishes_resent_total", "misptrust_catchup_skipped_rows_total"} {
			if !strings.Contains(body, m) {
				return false, m + " missing"
			}
		}
		return code == 200, ""
	})
	if _, body := get("http://" + metrics + "/metrics"); strings.Contains(body, e.misp.AdminKey()) {
		t.Error("the API key appears in the metrics")
	}
}
