package v1alpha1_test

import (
	"path/filepath"
	"testing"

	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

// writeKubeconfig writes the envtest credentials as a kubeconfig for kubectl.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := testenv.WriteKubeconfig(restConfig, path, "default"); err != nil {
		t.Fatal(err)
	}
	return path
}
