package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The controller tests run against a real kube-apiserver and etcd (built by
// hack/envtest-assets.sh, pointed at by KUBEBUILDER_ASSETS) and the MISP
// double of misp/misptest: server-side apply, field indexes, finalizers and
// watches only behave for real there.
var (
	testEnvConfig *rest.Config
	testScheme    *runtime.Scheme
	k8sClient     client.Client // direct, uncached
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(bash hack/envtest-assets.sh) go test ./controllers/`, which builds kube-apiserver and etcd and points at them")
		os.Exit(1)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		os.Exit(1)
	}
	testEnvConfig = cfg
	testScheme, err = NewScheme()
	if err == nil {
		k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.Exit(code)
}
