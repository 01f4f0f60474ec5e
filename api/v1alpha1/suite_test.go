package v1alpha1_test

import (
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

// The API tests run against a real kube-apiserver and etcd: schema and CEL
// validation only exist there.
var (
	k8sClient  client.Client
	restConfig *rest.Config
)

func TestMain(m *testing.M) {
	testenv.Main(m, "../..", nil, func(e *testenv.Env) {
		k8sClient, restConfig = e.Client, e.Config
	})
}
