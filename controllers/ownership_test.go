package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The ownership of a warninglist is recorded in MISP (its description names the
// owning policy and its MISPInstance's uid); no other object rewrites or
// deletes it, and the clash is reported on both sides.

func TestTheSameListNameFromTwoNamespacesIsNeverOverwritten(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{resync: 200 * time.Millisecond, extraNamespaces: 1})
	other := h.in(h.extra[0])
	h.readyInstance("misp")
	other.readyInstance("misp") // another MISPInstance, the same MISP

	first := policy("p", "misp", "a", org(1, "one"), org(2, "two"))
	first.Spec.WarninglistName = "shared"
	h.createPolicy(first)
	h.waitPolicy("p", synced)
	second := policy("p", "misp", "c", org(3, "three"))
	second.Spec.WarninglistName = "shared"
	other.createPolicy(second)

	refused := other.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if err := wantCondition(p.Status.Conditions, v1alpha1.ConditionSynced, metav1.ConditionFalse, ReasonWarninglistOwnedElsewhere, p.Generation); err != nil {
			return err
		}
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionNameConflict, metav1.ConditionTrue, ReasonWarninglistOwnedElsewhere, p.Generation)
	})
	if msg := condition(refused.Status.Conditions, v1alpha1.ConditionSynced).Message; !strings.Contains(msg, "belongs to OrgTrustPolicy "+h.ns+"/p") {
		t.Errorf("the refusal does not name the owner: %q", msg)
	}
	owner := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionNameConflict, metav1.ConditionTrue, ReasonClaimedElsewhere, p.Generation)
	})
	if msg := condition(owner.Status.Conditions, v1alpha1.ConditionNameConflict).Message; !strings.Contains(msg, other.ns+"/p") {
		t.Errorf("the owner's condition does not name the claimant: %q", msg)
	}
	if err := synced(owner); err != nil {
		t.Errorf("the owner is no longer in sync: %v", err)
	}

	// Many resyncs of both: the list keeps the owner's entries, nobody writes.
	h.misp.ResetStats()
	time.Sleep(2 * time.Second)
	if w := h.misp.WriteCalls(); w != 0 {
		t.Errorf("%d writes during the resyncs, want 0 (%v)", w, h.misp.CallsByRoute())
	}
	if m := entryMap(h.list("shared")); len(m) != 2 || m["org_uuid:"+uuidN(1)] != "one" {
		t.Errorf("the owner's list was overwritten: %v", m)
	}
}

func TestARefusedPolicyNeverDeletesTheOwnersList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	owner := policy("a-owner", "misp", "a", org(1, "one"))
	owner.Spec.WarninglistName = "shared"
	h.createPolicy(owner)
	h.waitPolicy("a-owner", synced)
	dup := policy("b-dup", "misp", "b", org(2, "two"))
	dup.Spec.WarninglistName = "shared"
	dup.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	h.createPolicy(dup)
	h.waitPolicy("b-dup", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionNameConflict, metav1.ConditionTrue, ReasonWarninglistNameTaken, p.Generation)
	})
	h.waitPolicy("a-owner", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionNameConflict, metav1.ConditionTrue, ReasonClaimedElsewhere, p.Generation)
	})

	if err := k8sClient.Delete(h.ctx, h.getPolicy("b-dup")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		var p v1alpha1.OrgTrustPolicy
		if err := k8sClient.Get(h.ctx, h.key("b-dup"), &p); err == nil {
			return fmt.Errorf("b-dup still exists (finalizers %v)", p.Finalizers)
		}
		return nil
	})
	if m := entryMap(h.list("shared")); len(m) != 1 || m["org_uuid:"+uuidN(1)] != "one" {
		t.Errorf("the owner's list is gone or changed: %v", m)
	}
	if n := h.misp.Calls("/warninglists/delete"); n != 0 {
		t.Errorf("%d deletes, want 0", n)
	}
	h.waitEvent("b-dup", "WarninglistRetained", "belongs to OrgTrustPolicy "+h.ns+"/a-owner")
	// The claim is gone with the claimant.
	h.waitPolicy("a-owner", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionNameConflict, metav1.ConditionFalse, ReasonNoNameConflict, p.Generation)
	})
}

func TestAConfigMapIsReadOnlyWithTheOptInLabel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orgs", Namespace: h.ns}, Data: map[string]string{"k": uuidN(7) + " # seven\n"}}
	if err := k8sClient.Create(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	p := policy("p", "misp", "a", org(1, "one"))
	p.Spec.OrganisationsFrom = []v1alpha1.ConfigMapKeyReference{{Name: "orgs", Key: "k"}}
	h.createPolicy(p)
	got := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionOrganisationsValid, metav1.ConditionFalse, ReasonOrganisationsSourceNotAllowed, p.Generation)
	})
	for _, typ := range []string{v1alpha1.ConditionOrganisationsValid, v1alpha1.ConditionSynced} {
		if msg := condition(got.Status.Conditions, typ).Message; !strings.Contains(msg, `misptrust.io/allow: "true"`) {
			t.Errorf("%s does not name the missing label: %q", typ, msg)
		}
	}
	if _, ok := h.misp.WarninglistByName("misp-trust-operator/" + h.ns + "/p"); ok {
		t.Error("the list was written without the ConfigMap's organisations")
	}

	cm.Labels = map[string]string{trust.AllowLabel: trust.AllowValue}
	if err := k8sClient.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.waitPolicy("p", synced)
	if m := entryMap(h.list("misp-trust-operator/" + h.ns + "/p")); len(m) != 2 || m["org_uuid:"+uuidN(7)] != "seven" {
		t.Errorf("entries %v", m)
	}
}

func TestCachedSecretMetadataHoldsNoAnnotationsNorManagedFields(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "applied", Namespace: h.ns, Labels: allowLabels,
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"apiKey":"the-key"}}`}},
		StringData: map[string]string{"apiKey": "the-key"}}
	if err := k8sClient.Create(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.readyInstance("misp") // starts the Secret watch
	eventually(t, func() error {
		var pm metav1.PartialObjectMetadata
		pm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := h.cache.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "applied"}, &pm); err != nil {
			return err
		}
		if pm.Annotations != nil || pm.ManagedFields != nil || pm.Labels[trust.AllowLabel] != trust.AllowValue {
			return fmt.Errorf("cached metadata: annotations %v, managedFields %d, labels %v", pm.Annotations, len(pm.ManagedFields), pm.Labels)
		}
		return nil
	})
}

func TestASecretWithoutTheOptInLabelIsNotRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: h.ns}, StringData: map[string]string{"apiKey": h.misp.AdminKey()}}
	if err := k8sClient.Create(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.instance("misp", "key")
	got := h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionAuthenticated, metav1.ConditionFalse, ReasonSecretNotAllowed, i.Generation)
	})
	if msg := condition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, `misptrust.io/allow: "true"`) {
		t.Errorf("Ready does not name the missing label: %q", msg)
	}
	if reqs := h.misp.Requests(); len(reqs) != 0 {
		t.Errorf("MISP was called without an opted-in key: %v", routes(reqs))
	}
	s.Labels = allowLabels
	if err := k8sClient.Update(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", i.Generation)
	})
}

func TestNoKeyGoesToAHostOffTheAllowList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{allowedHosts: "misp.misp.svc,*.cert.example"})
	h.secret("key", map[string]string{"apiKey": h.misp.AdminKey()})
	h.instance("misp", "key") // the double listens on 127.0.0.1
	got := h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReachable, metav1.ConditionFalse, trust.ReasonHostNotAllowed, i.Generation)
	})
	if msg := condition(got.Status.Conditions, v1alpha1.ConditionReachable).Message; !strings.Contains(msg, `"127.0.0.1"`) || !strings.Contains(msg, "misp.misp.svc") {
		t.Errorf("the condition does not name the host and the allow-list: %q", msg)
	}
	if reqs := h.misp.Requests(); len(reqs) != 0 {
		t.Errorf("the key was sent to a host off the allow-list: %v", routes(reqs))
	}
}
