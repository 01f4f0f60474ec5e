// Package charts_test checks the install story against a real kube-apiserver
// and etcd (envtest, built by hack/envtest-assets.sh): the Helm chart
// charts/misp-trust-operator and the kustomize install config/default render,
// lint, and are accepted object by object by `kubectl apply --dry-run=server`;
// the chart installs, upgrades and uninstalls with the real Helm; the real
// binary runs both components under the chart's ServiceAccounts and RBAC.
//
// Run it with `make chart-check` (or `make test`), which builds Helm into bin/
// and sets HELM and KUBEBUILDER_ASSETS.
package charts_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

const (
	chartDir  = "misp-trust-operator"
	namespace = "misp-trust-system"
)

var (
	helmBin    string
	kubectlBin string
	// shared is an apiserver with the misptrust.io CRDs (from config/crd/bases)
	// and the ServiceMonitor and PrometheusRule test CRDs installed, for the
	// dry-run checks.
	shared *cluster
)

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.Exit(code)
}

func setup() error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make chart-check` or `make test`, which build kube-apiserver, etcd and Helm and set it")
	}
	helmBin = os.Getenv("HELM")
	if helmBin == "" {
		return fmt.Errorf("HELM is not set: run `make chart-check` or `make test` (hack/helm.sh builds Helm into bin/)")
	}
	var err error
	if kubectlBin, err = exec.LookPath("kubectl"); err != nil {
		return fmt.Errorf("kubectl is needed for `kubectl apply --dry-run=server` and `kubectl kustomize`: %w", err)
	}
	shared, err = startCluster(filepath.Join("..", "config", "crd", "bases"), filepath.Join("testdata"))
	if err != nil {
		return err
	}
	if _, err := shared.kubectl(context.Background(), nil, "create", "namespace", namespace); err != nil {
		_ = shared.stop()
		return err
	}
	return nil
}

// cluster is one envtest control plane with a kubeconfig for helm and kubectl.
type cluster struct {
	env        *envtest.Environment
	kubeconfig string
	dir        string
}

func startCluster(crdDirs ...string) (*cluster, error) {
	env := &envtest.Environment{CRDDirectoryPaths: crdDirs, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	dir, err := os.MkdirTemp("", "chart-check-")
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	c := &cluster{env: env, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := writeKubeconfig(cfg, c.kubeconfig); err != nil {
		_ = c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() error {
	if c == nil {
		return nil
	}
	err := c.env.Stop()
	_ = os.RemoveAll(c.dir)
	return err
}

// writeKubeconfig writes the envtest credentials as a kubeconfig.
func writeKubeconfig(rc *rest.Config, path string) error {
	if err := testenv.WriteKubeconfig(rc, path, "default"); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// kubectl runs kubectl against the cluster, with stdin when given.
func (c *cluster) kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	return run(ctx, stdin, []string{"KUBECONFIG=" + c.kubeconfig}, kubectlBin, args...)
}

// helm runs helm against the cluster, with Helm's state kept in the cluster's
// temporary folder (never the user's ~/.config/helm).
func (c *cluster) helm(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, helmEnv(c.dir, c.kubeconfig), helmBin, args...)
}

// helmOffline runs helm without a cluster (lint, template).
func helmOffline(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	return run(ctx, nil, helmEnv(dir, filepath.Join(dir, "no-kubeconfig")), helmBin, args...)
}

func helmEnv(dir, kubeconfig string) []string {
	return []string{
		"KUBECONFIG=" + kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(dir, "helm-cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "helm-config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "helm-data"),
	}
}

func run(ctx context.Context, stdin []byte, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}
