package curator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/controllers"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestCuratorNeedsNoMoreThanItsRBAC runs the curator as a user that holds exactly the rules
// of config/rbac/curator_role.yaml (generated from curator/rbac.go) and
// curator_leader_election_role.yaml, Events included.
func TestCuratorNeedsNoMoreThanItsRBAC(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	var cr rbacv1.ClusterRole
	readYAML(t, filepath.Join("..", "config", "rbac", "curator_role.yaml"), &cr)
	var le rbacv1.Role
	readYAML(t, filepath.Join("..", "config", "rbac", "curator_leader_election_role.yaml"), &le)
	user := "curator-" + e.ns
	cr.ObjectMeta = metav1.ObjectMeta{Name: user}
	le.ObjectMeta = metav1.ObjectMeta{Name: "curator-leader-election", Namespace: e.ns}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	e.create(&cr)
	e.create(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}})
	e.create(&le)
	e.create(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "curator-leader-election"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: le.Name}})
	t.Cleanup(func() {
		_ = k8sClient.Delete(context.Background(), &cr)
		_ = k8sClient.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user}})
	})
	authn, err := testEnv.AddUser(envtest.User{Name: user}, testEnvConfig)
	if err != nil {
		t.Fatal(err)
	}

	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	c := e.config()
	c.LeaderElect = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, authn.Config(), c) }()
	t.Cleanup(func() { cancel(); <-done })

	e.waitSubscribed(1)
	ev := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	eventually(t, "the event curated", func() (bool, string) {
		return e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	eventually(t, "both statuses written", func() (bool, string) {
		cur := e.curation("high")
		return cur != nil && cur.Tagged == 1 && e.feedCondition() != nil, fmt.Sprintf("%+v", cur)
	})
	eventually(t, "an Event recorded with the curator's rights", func() (bool, string) {
		evs := e.curatorEvents("MISPInstance", "misp", status.EventFeedConnected)
		return len(evs) == 1, describe(evs)
	})
	select {
	case err := <-done:
		t.Fatalf("the curator stopped: %v", err)
	default:
	}
}

// TestControllerAndCuratorStatusesCoexist runs the real controller and the curator on the
// same objects: each applies its own status fields and condition types with its own field
// manager, and neither removes the other's.
func TestControllerAndCuratorStatusesCoexist(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)

	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mo := controllers.NewManagerOptions(scheme, e.ns)
	mo.Metrics.BindAddress, mo.HealthProbeBindAddress = "0", "0"
	mgr, err := ctrl.NewManager(testEnvConfig, mo)
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{SkipNameValidation: true, Registerer: prometheus.NewRegistry(),
		ResyncInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.start(e.config())
	e.waitSubscribed(1)

	ev := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the event curated", func() (bool, string) { return e.curated(ev.UUID, true, tagA) })
	check := func(when string) {
		eventually(t, "both writers' fields "+when, func() (bool, string) {
			inst := e.mispInstance()
			var p v1alpha1.OrgTrustPolicy
			if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "high"}, &p); err != nil {
				return false, err.Error()
			}
			ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
			feed := meta.FindStatusCondition(inst.Status.Conditions, status.ConditionFeedConnected)
			ok := ready != nil && feed != nil && inst.Status.MISPVersion != "" && inst.Status.Feed != nil &&
				inst.Status.CatchUp != nil && p.Status.Warninglist != nil && p.Status.Curation != nil &&
				p.Status.Curation.Tagged >= 1 && meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady) != nil
			return ok, fmt.Sprintf("instance conditions %v version %q feed %v; policy warninglist %v curation %v",
				inst.Status.Conditions, inst.Status.MISPVersion, inst.Status.Feed, p.Status.Warninglist, p.Status.Curation)
		})
	}
	check("after both wrote")

	// The controller writes again (a spec change), then the curator (a new event): still both.
	var p v1alpha1.OrgTrustPolicy
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "high"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: mediumOrg})
	if err := k8sClient.Update(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
	ev2 := e.misp.SimulatePull(pulledEvent(mediumOrg, true))
	eventually(t, "the newly trusted org's event curated", func() (bool, string) { return e.curated(ev2.UUID, true, tagA) })
	eventually(t, "the controller observed the spec change", func() (bool, string) {
		var q v1alpha1.OrgTrustPolicy
		_ = k8sClient.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "high"}, &q)
		return q.Status.ObservedGeneration == q.Generation && q.Status.Curation != nil && q.Status.Curation.Tagged >= 2,
			fmt.Sprintf("observed %d of %d, curation %+v", q.Status.ObservedGeneration, q.Generation, q.Status.Curation)
	})
	check("after a second round")
}
