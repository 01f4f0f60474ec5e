package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/hack/testenv"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// The binary, built once, as `make build` lays it out: bin/misp-trust-operator and the
// kubectl plugin link bin/kubectl-misptrust. The real kubectl finds it on PATH.
func TestKubectlPlugin(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed on PATH (CI checks it in .ci/run): %v", err)
	}
	bin := t.TempDir()
	// Bounded: on a busy machine a build waits for the build cache lock of others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "misp-trust-operator"), ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink("misp-trust-operator", filepath.Join(bin, PluginName)); err != nil {
		t.Fatal(err)
	}
	path := bin + string(os.PathListSeparator) + filepath.Dir(kubectl) + string(os.PathListSeparator) + os.Getenv("PATH")

	// sh runs a shell script as a user would, with the plugin on PATH.
	sh := func(t *testing.T, dir, kubeconfig, script string, extraEnv ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+path, "KUBECONFIG="+kubeconfig)
		cmd.Env = append(cmd.Env, extraEnv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return out.String(), ee.ExitCode()
		case err != nil:
			t.Fatalf("run %q: %v", script, err)
		}
		return out.String(), 0
	}

	w := newWorld(t, "")
	seedDemo(t, w.misp)
	w.startController()
	w.applyYAML(samplePolicies(t))
	w.waitSynced("high", "medium")
	event := w.misp.SimulatePull(misptest.Event{Orgc: misptest.Org{UUID: orgCIRCL, Name: "CIRCL"}, Published: true})

	t.Run("kubectl lists and runs the plugin; exit codes pass through", func(t *testing.T) {
		out, code := sh(t, t.TempDir(), w.kubeconfig, "kubectl plugin list")
		if code != 0 || !strings.Contains(out, filepath.Join(bin, PluginName)) {
			t.Fatalf("kubectl plugin list (exit %d):\n%s", code, out)
		}
		out, code = sh(t, t.TempDir(), w.kubeconfig, "kubectl misptrust explain "+event.UUID+" --instance misp-prod")
		if code != 0 || !strings.Contains(out, "Winner: "+w.ns+"/high") || !strings.Contains(out, "POST /tags/attachTagToObject") {
			t.Fatalf("kubectl misptrust explain (exit %d):\n%s", code, out)
		}
		dir := writeFiles(t, map[string]string{"high.yaml": planHigh})
		out, code = sh(t, dir, w.kubeconfig, "kubectl misptrust plan -f high.yaml")
		if code != ExitChanges || !strings.Contains(out, "Plan: 1 object change") {
			t.Fatalf("kubectl misptrust plan of a change: exit %d, want 2:\n%s", code, out)
		}
		out, code = sh(t, dir, w.kubeconfig, "kubectl misptrust plan -f nowhere.yaml")
		if code != ExitError {
			t.Fatalf("kubectl misptrust plan of a missing file: exit %d, want 1:\n%s", code, out)
		}
		out, code = sh(t, dir, w.kubeconfig, "kubectl misptrust nonsense")
		if code != ExitError || !strings.Contains(out, `unknown command "nonsense"`) {
			t.Fatalf("unknown command: exit %d:\n%s", code, out)
		}
	})

	t.Run("the README walkthrough runs as written", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join("..", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile("(?s)<!-- walkthrough: run by cli/plugin_test.go -->\\s*```sh\\n(.*?)```").FindSubmatch(readme)
		if m == nil {
			t.Fatal("README.md has no walkthrough block after <!-- walkthrough: run by cli/plugin_test.go -->")
		}
		script := "set -euo pipefail\n" + string(m[1])
		out, code := sh(t, t.TempDir(), w.kubeconfig, script, "EVENT="+event.UUID)
		if code != 0 {
			t.Fatalf("walkthrough exit code %d:\n%s\n%s", code, script, out)
		}
		for _, want := range []string{"org-confidence-level-high", "Plan: 0 object changes", "Winner: " + w.ns + "/high"} {
			if !strings.Contains(out, want) {
				t.Errorf("walkthrough output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the GitOps example's plan command runs as the example's ServiceAccount", func(t *testing.T) {
		wf, err := os.ReadFile(filepath.Join("..", "config", "gitops", "examples", "github-actions-plan.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var workflow struct {
			Jobs map[string]struct {
				Steps []struct {
					Name string `json:"name"`
					Run  string `json:"run"`
				} `json:"steps"`
			} `json:"jobs"`
		}
		if err := yaml.Unmarshal(wf, &workflow); err != nil {
			t.Fatalf("the workflow is not the YAML it should be: %v", err)
		}
		var line string
		for _, job := range workflow.Jobs {
			for _, s := range job.Steps {
				for _, l := range strings.Split(s.Run, "\n") {
					if strings.Contains(l, "kubectl misptrust plan") {
						line = strings.TrimSpace(l)
					}
				}
			}
		}
		if line == "" {
			t.Fatal("no `kubectl misptrust plan` line in the workflow")
		}

		// The example's layout and RBAC, in its namespace "misp", on the double.
		m := newWorld(t, "misp")
		m.applyYAML(readFile(t, "..", "config", "gitops", "examples", "plan-rbac.yaml"))
		user, err := env.AddUser(envtest.User{Name: "system:serviceaccount:misp:misptrust-plan", Groups: []string{"system:serviceaccounts", "system:authenticated"}}, env.Config)
		if err != nil {
			t.Fatal(err)
		}
		uc := user.Config()
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := testenv.WriteKubeconfig(uc, kubeconfig, "misp"); err != nil {
			t.Fatal(err)
		}
		repo := t.TempDir()
		if err := os.CopyFS(filepath.Join(repo, "trust-lists"), os.DirFS(filepath.Join("..", "config", "gitops", "examples", "trust-lists"))); err != nil {
			t.Fatal(err)
		}
		out, code := sh(t, repo, kubeconfig, "set -o pipefail\n"+strings.Replace(line, ">plan.txt 2>&1", "", 1))
		// A first pull request: every object is new, MISP has no list yet.
		if code != ExitChanges || !containsLine(out, "OrgTrustPolicy", "misp/high", "create") || !containsLine(out, "org-confidence-level-high", "create") {
			t.Fatalf("%s\nexit code %d, want 2:\n%s", line, code, out)
		}
		if n := m.misp.WriteCalls(); n != 0 {
			t.Fatalf("the plan wrote to MISP:\n%s", requestLog(m.misp))
		}
	})
}

func readFile(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
