package curator

import (
	"fmt"

	"github.com/go-logr/logr"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// The curator tests run the real curator (manager, leader election, informers, status
// server-side apply) against a real kube-apiserver and etcd (built by
// hack/envtest-assets.sh, pointed at by KUBEBUILDER_ASSETS) and the MISP double of
// misp/misptest with its ZeroMQ publisher on.
var (
	testEnv       *envtest.Environment
	testEnvConfig *rest.Config
	k8sClient     client.Client // direct, uncached
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(bash hack/envtest-assets.sh) go test ./curator/`, which builds kube-apiserver and etcd and points at them")
		os.Exit(1)
	}
	// The curators under test log through Config.Logger; controller-runtime's own
	// informers log through its global logger, which would otherwise complain.
	logf.SetLogger(logr.Discard())
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	testEnv = env
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		os.Exit(1)
	}
	testEnvConfig = cfg
	scheme := runtime.NewScheme()
	err = clientgoscheme.AddToScheme(scheme)
	if err == nil {
		err = v1alpha1.AddToScheme(scheme)
	}
	if err == nil {
		k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
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
