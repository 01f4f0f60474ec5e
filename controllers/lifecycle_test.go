package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// These tests are not parallel: Go runs every sequential top-level test
// before the parallel ones resume, so deleting the CRD here cannot disturb
// them.

// TestUninstallNeverDeletesLists deletes the OrgTrustPolicy CRD, as removing
// the operator does: a policy with deletionPolicy Delete is released and its
// list stays in MISP.
func TestUninstallNeverDeletesLists(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	p := policy("p", "misp", "a", org(1, "one"))
	p.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	h.createPolicy(p)
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if !controllerutil.ContainsFinalizer(p, Finalizer) {
			return errors.New("no finalizer yet")
		}
		return synced(p)
	})
	name := "misp-trust-operator/" + h.ns + "/p"
	h.list(name)

	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	crd.SetName(policyCRD)
	t.Cleanup(func() {
		// Put the CRD back for the tests that follow.
		eventually(t, func() error {
			err := k8sClient.Get(context.Background(), types.NamespacedName{Name: policyCRD}, crd)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("CRD still there (%v)", err)
		})
		if _, err := envtest.InstallCRDs(testEnvConfig, envtest.CRDInstallOptions{Paths: []string{filepath.Join("..", "config", "crd", "bases")}}); err != nil {
			t.Fatalf("reinstall CRDs: %v", err)
		}
	})
	if err := k8sClient.Delete(h.ctx, crd); err != nil {
		t.Fatalf("delete CRD: %v", err)
	}
	h.waitEvent("p", "WarninglistRetained", "CRD is being deleted")
	eventually(t, func() error {
		var got v1alpha1.OrgTrustPolicy
		err := k8sClient.Get(h.ctx, h.key("p"), &got)
		if err == nil {
			return errors.New("policy still there")
		}
		return nil // gone, or its kind is gone
	})
	if wl, ok := h.misp.WarninglistByName(name); !ok || !wl.Enabled {
		t.Errorf("the list was deleted or disabled by an uninstall (%+v, %t)", wl, ok)
	}
	if n := h.misp.Calls("/warninglists/delete"); n != 0 {
		t.Errorf("%d delete calls during an uninstall", n)
	}
}

// TestRunControllerWithGeneratedRBAC runs the real subcommand as a
// ServiceAccount holding only config/rbac's rules: leader election, both
// reconcilers, Events and a Delete-policy deletion must all work with them.
func TestRunControllerWithGeneratedRBAC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := "t-run-" + randHex(4)
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	srv := misptest.NewServer(misptest.Options{})
	defer srv.Close()

	var role rbacv1.ClusterRole
	readYAML(t, filepath.Join("..", "config", "rbac", "role.yaml"), &role)
	role.Name = "misp-trust-controller-" + ns
	var leRole rbacv1.Role
	readYAML(t, filepath.Join("..", "config", "rbac", "leader_election_role.yaml"), &leRole)
	leRole.Namespace = ns
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "controller", Namespace: ns}
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "controller", Namespace: ns}})
	mustCreate(t, &role)
	mustCreate(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name}, Subjects: []rbacv1.Subject{sa}})
	mustCreate(t, &leRole)
	mustCreate(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: leRole.Name, Namespace: ns},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: leRole.Name}, Subjects: []rbacv1.Subject{sa}})
	t.Cleanup(func() {
		_ = k8sClient.Delete(context.Background(), &role)
		_ = k8sClient.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name}})
	})

	kubeconfig := writeImpersonatingKubeconfig(t, "system:serviceaccount:"+ns+":controller", "system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
	done := make(chan error, 1)
	go func() {
		done <- RunController(ctx, []string{
			"--kubeconfig", kubeconfig, "--namespace", ns, "--leader-election-namespace", ns,
			"--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
			"--resync-interval", "1h", "--zap-log-level", "error",
		}, "test")
	}()

	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: ns, Labels: allowLabels}, StringData: map[string]string{"apiKey": srv.AdminKey()}})
	mustCreate(t, &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Name: "misp", Namespace: ns},
		Spec: v1alpha1.MISPInstanceSpec{URL: srv.URL(), AllowInsecureHTTP: true, APIKeySecretRef: v1alpha1.SecretKeyReference{Name: "key"}}})
	p := policy("p", "misp", "a", org(1, "one"))
	p.Namespace = ns
	p.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	mustCreate(t, p)

	// Impersonation is in force: the ServiceAccount may not write ConfigMaps.
	impCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := client.New(impCfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := imp.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a ConfigMap as the controller: %v, want Forbidden", err)
	}

	var lease coordinationv1.Lease
	eventually(t, func() error {
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: LeaderElectionID}, &lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
	eventually(t, func() error {
		var got v1alpha1.OrgTrustPolicy
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "p"}, &got); err != nil {
			return err
		}
		if !controllerutil.ContainsFinalizer(&got, Finalizer) {
			return errors.New("no finalizer")
		}
		return synced(&got)
	})
	if _, ok := srv.WarninglistByName("misp-trust-operator/" + ns + "/p"); !ok {
		t.Fatal("no list in MISP")
	}
	if err := k8sClient.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		var got v1alpha1.OrgTrustPolicy
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "p"}, &got); !apierrors.IsNotFound(err) {
			return fmt.Errorf("policy still there (%v)", err)
		}
		return nil
	})
	if _, ok := srv.WarninglistByName("misp-trust-operator/" + ns + "/p"); ok {
		t.Error("list not deleted")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunController: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("RunController did not return after cancel")
	}
	// The Lease is released on a clean shutdown.
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: LeaderElectionID}, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("lease still held by %q after shutdown", *lease.Spec.HolderIdentity)
	}
}

func TestRunControllerRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--resync-interval", "10ms"}, {"--no-such-flag"}, {"extra"}} {
		if err := RunController(context.Background(), args, "test"); err == nil {
			t.Errorf("RunController(%q) succeeded", args)
		}
	}
}

func mustCreate(t *testing.T, obj interface {
	metav1.Object
	runtime.Object
}) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// writeImpersonatingKubeconfig writes the envtest admin credentials, acting as user.
func writeImpersonatingKubeconfig(t *testing.T, user string, groups ...string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: testEnvConfig.Host, CertificateAuthorityData: testEnvConfig.CAData}
	cfg.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: testEnvConfig.CertData, ClientKeyData: testEnvConfig.KeyData, Token: testEnvConfig.BearerToken,
		Impersonate: user, ImpersonateGroups: groups,
	}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
