// Package testenv starts, for the tests of every package, a real kube-apiserver
// and etcd (the binaries hack/envtest-assets.sh builds and KUBEBUILDER_ASSETS
// points at) with the operator's CRDs installed: schema validation, server-side
// apply, finalizers and watches only behave for real there.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// Env is a running control plane and a direct (uncached) client to it.
type Env struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	Client client.Client
	env    *envtest.Environment
}

// Start starts kube-apiserver and etcd with the CRDs of config/crd/bases below
// repoRoot (a path relative to the test's package folder, e.g. "../..").
func Start(repoRoot string, scheme *runtime.Scheme) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(bash hack/envtest-assets.sh) go test ./...`, which builds kube-apiserver and etcd and points at them")
	}
	if scheme == nil {
		var err error
		if scheme, err = v1alpha1.NewScheme(); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Env{Config: cfg, Scheme: scheme, Client: c, env: env}, nil
}

// Stop stops kube-apiserver and etcd.
func (e *Env) Stop() error { return e.env.Stop() }

// Main is a TestMain: it starts the control plane, hands it to use, runs the
// tests and stops it. It exits 1 with a clear message when the control plane
// cannot start (a missing KUBEBUILDER_ASSETS included): these tests never
// skip silently.
func Main(m *testing.M, repoRoot string, scheme *runtime.Scheme, use func(*Env)) {
	env, err := Start(repoRoot, scheme)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	use(env)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop kube-apiserver and etcd: %v\n", err)
	}
	os.Exit(code)
}

// WriteKubeconfig writes the credentials of cfg as a kubeconfig file (mode
// 0600) for kubectl and helm.
func WriteKubeconfig(cfg *rest.Config, path, namespace string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest", Namespace: namespace}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// AddUser provisions a user of the control plane (tests impersonating a
// ServiceAccount's rules, or writing a kubeconfig for a child process).
func (e *Env) AddUser(u envtest.User, base *rest.Config) (*envtest.AuthenticatedUser, error) {
	return e.env.AddUser(u, base)
}
