package charts_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The real Helm installs, upgrades and uninstalls the chart on a fresh
// kube-apiserver that has never seen the misptrust.io CRDs: the first install
// creates the CRDs and tells the user to upgrade once for the objects from
// values; the upgrade creates them; uninstall removes the release but keeps
// the CRDs (helm.sh/resource-policy: keep).
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	c, err := startCluster(filepath.Join("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	helm := func(args ...string) string {
		t.Helper()
		out, err := c.helm(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := c.kubectl(ctx, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	names := func(args ...string) string {
		t.Helper()
		return strings.Join(strings.Fields(kubectl(append(args, "-o", "name")...)), " ")
	}

	// Full values, but the API server's address looked up from the cluster.
	out := helm("install", "mto", chartDir, "--namespace", namespace, "--create-namespace",
		"-f", fullValues, "--set-json", "networkPolicy.apiServer.cidrs=[]")
	if !strings.Contains(out, "WARNING: 1 MISPInstance(s) and 2 OrgTrustPolicy object(s) from values were\nNOT created") {
		t.Errorf("first install NOTES do not explain the missing objects:\n%s", out)
	}
	if !strings.Contains(out, "kubectl get mispi -A") {
		t.Errorf("NOTES do not say how to check the MISPInstance:\n%s", out)
	}
	if got := names("get", "crd", "mispinstances.misptrust.io", "orgtrustpolicies.misptrust.io"); got != "customresourcedefinition.apiextensions.k8s.io/mispinstances.misptrust.io customresourcedefinition.apiextensions.k8s.io/orgtrustpolicies.misptrust.io" {
		t.Fatalf("CRDs after install: %q", got)
	}
	if got := names("get", "deploy", "-n", namespace); got != "deployment.apps/mto-controller deployment.apps/mto-curator" {
		t.Errorf("Deployments after install: %q", got)
	}
	// lookup found the API server's endpoints (default/kubernetes).
	var want []string
	for _, a := range strings.Fields(kubectl("get", "endpointslice", "kubernetes", "-n", "default", "-o", "jsonpath={.endpoints[*].addresses[*]}")) {
		want = append(want, a+"/32")
	}
	np := kubectl("get", "networkpolicy", "mto-curator", "-n", namespace, "-o", "jsonpath={.spec.egress[1].to[*].ipBlock.cidr}")
	if len(want) == 0 || np != strings.Join(want, " ") {
		t.Errorf("API server egress CIDRs looked up = %q, want %q", np, want)
	}

	out = helm("upgrade", "mto", chartDir, "--namespace", namespace, "--reuse-values")
	if !strings.Contains(out, "This release manages 1 MISPInstance(s) and 2 OrgTrustPolicy object(s) from values.") {
		t.Errorf("upgrade NOTES:\n%s", out)
	}
	if got := names("get", "mispi,otp", "-n", namespace); got != "mispinstance.misptrust.io/misp-prod orgtrustpolicy.misptrust.io/high orgtrustpolicy.misptrust.io/medium" {
		t.Fatalf("objects from values after upgrade: %q", got)
	}

	out = helm("uninstall", "mto", "--namespace", namespace)
	if !strings.Contains(out, "These resources were kept due to the resource policy") {
		t.Errorf("uninstall did not report kept CRDs:\n%s", out)
	}
	if got := names("get", "crd", "mispinstances.misptrust.io", "orgtrustpolicies.misptrust.io"); !strings.Contains(got, "mispinstances") || !strings.Contains(got, "orgtrustpolicies") {
		t.Errorf("CRDs after uninstall: %q, want both kept", got)
	}
	if got := names("get", "deploy,mispi,otp,clusterrole", "-n", namespace, "-l", "app.kubernetes.io/instance=mto"); got != "" {
		t.Errorf("left after uninstall: %q", got)
	}
}
