package curator

import (
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

// The curator tests run the real curator (manager, leader election, informers, status
// server-side apply) against a real kube-apiserver and etcd and the MISP double of
// misp/misptest with its ZeroMQ publisher on.
var (
	testEnv       *testenv.Env
	testEnvConfig *rest.Config
	k8sClient     client.Client // direct, uncached
)

func TestMain(m *testing.M) {
	// The curators under test log through Config.Logger; controller-runtime's own
	// informers log through its global logger, which would otherwise complain.
	logf.SetLogger(logr.Discard())
	testenv.Main(m, "..", nil, func(e *testenv.Env) {
		testEnv, testEnvConfig, k8sClient = e, e.Config, e.Client
	})
}
