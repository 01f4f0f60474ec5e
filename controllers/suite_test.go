package controllers

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

// The controller tests run against a real kube-apiserver and etcd and the MISP
// double of misp/misptest: server-side apply, field indexes, finalizers and
// watches only behave for real there.
var (
	testEnvConfig *rest.Config
	testScheme    *runtime.Scheme
	k8sClient     client.Client // direct, uncached
)

func TestMain(m *testing.M) {
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testenv.Main(m, "..", scheme, func(e *testenv.Env) {
		testEnvConfig, testScheme, k8sClient = e.Config, e.Scheme, e.Client
	})
}
