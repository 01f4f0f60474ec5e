package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

func TestPolicyCreatesEnabledListWithExactEntries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	h.misp.ResetStats()

	p := policy("high", "misp", "a", org(1, "CIRCL"), org(2, "  Padded Name  "), v1alpha1.Organisation{UUID: strings.ToUpper(uuidN(3))})
	p.Spec.Publish = true
	h.createPolicy(p)
	got := h.waitPolicy("high", synced)

	name := "misp-trust-operator/" + h.ns + "/high"
	wl := h.list(name)
	if !wl.Enabled || wl.Type != "string" || wl.Category != "known" || wl.Default {
		t.Errorf("list = enabled %t, type %q, category %q, default %t; want enabled string known custom", wl.Enabled, wl.Type, wl.Category, wl.Default)
	}
	var inst v1alpha1.MISPInstance
	if err := k8sClient.Get(h.ctx, h.key("misp"), &inst); err != nil {
		t.Fatal(err)
	}
	wantDesc := "Managed by misp-trust-operator: OrgTrustPolicy " + h.ns + "/high of MISPInstance " + h.ns + "/misp (uid " + string(inst.UID) +
		"). Edits in MISP are reverted. Entries: " + got.Status.Warninglist.EntriesHash + "."
	if wl.Description != wantDesc {
		t.Errorf("description = %q, want %q", wl.Description, wantDesc)
	}
	wantEntries := map[string]string{
		"org_uuid:" + uuidN(1): "CIRCL",
		"org_uuid:" + uuidN(2): "Padded Name",
		"org_uuid:" + uuidN(3): "", // upper case in the spec, lower case in MISP
	}
	if fmt.Sprint(entryMap(wl)) != fmt.Sprint(wantEntries) || len(wl.Entries) != 3 {
		t.Errorf("entries = %v, want %v", wl.Entries, wantEntries)
	}

	st := got.Status
	if st.Warninglist == nil || st.Warninglist.ID != wl.ID || st.Warninglist.Name != name || st.Warninglist.Entries != 3 ||
		!strings.HasPrefix(st.Warninglist.EntriesHash, "sha256:") {
		t.Errorf("status.warninglist = %+v, want id %s, name %s, 3 entries, a hash", st.Warninglist, wl.ID, name)
	}
	if st.Organisations != 3 {
		t.Errorf("status.organisations = %d, want 3", st.Organisations)
	}
	wantTags := []string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}
	if fmt.Sprint(st.Tags) != fmt.Sprint(wantTags) {
		t.Errorf("status.tags = %q, want %q", st.Tags, wantTags)
	}
	for typ, status := range map[string]metav1.ConditionStatus{
		v1alpha1.ConditionReady: metav1.ConditionTrue, v1alpha1.ConditionOrganisationsValid: metav1.ConditionTrue,
		v1alpha1.ConditionConflicts: metav1.ConditionFalse, v1alpha1.ConditionCurationPermitted: metav1.ConditionTrue,
	} {
		if err := wantCondition(st.Conditions, typ, status, "", got.Generation); err != nil {
			t.Error(err)
		}
	}
	if controllerutil.ContainsFinalizer(got, Finalizer) {
		t.Error("a Retain policy has the finalizer")
	}
	// find (index) + add + toggleEnable: two writes.
	calls := h.wlCalls()
	if calls["/warninglists/index"] != 1 || calls["/warninglists/add"] != 1 || calls["/warninglists/toggleEnable"] != 1 || len(calls) != 3 {
		t.Errorf("warninglist calls = %v, want index 1, add 1, toggleEnable 1", calls)
	}
	if w := h.misp.WriteCalls(); w != 2 {
		t.Errorf("write calls = %d, want 2", w)
	}
	t.Logf("MISP calls for a create: %v", calls)
	h.waitEvent("high", "WarninglistCreated", "with 3 organisations")
}

func TestChangingOneOrganisationCostsOneEdit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	h.createPolicy(policy("p", "misp", "b", org(1, "one"), org(2, "two"), org(3, "three")))
	before := h.waitPolicy("p", synced)
	h.misp.ResetStats()

	h.updatePolicy("p", func(p *v1alpha1.OrgTrustPolicy) { p.Spec.Organisations[1] = org(20, "twenty") })
	after := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Generation == before.Generation {
			return fmt.Errorf("not updated yet")
		}
		return synced(p)
	})
	if after.Status.Warninglist.EntriesHash == before.Status.Warninglist.EntriesHash {
		t.Error("entries hash did not change")
	}
	wl := h.list("misp-trust-operator/" + h.ns + "/p")
	want := map[string]string{"org_uuid:" + uuidN(1): "one", "org_uuid:" + uuidN(20): "twenty", "org_uuid:" + uuidN(3): "three"}
	if fmt.Sprint(entryMap(wl)) != fmt.Sprint(want) {
		t.Errorf("entries = %v, want %v", entryMap(wl), want)
	}
	if !wl.Enabled || wl.ID != before.Status.Warninglist.ID {
		t.Errorf("list %s enabled %t, want the same list %s enabled", wl.ID, wl.Enabled, before.Status.Warninglist.ID)
	}
	// Let any sibling or status-triggered reconcile run before counting.
	time.Sleep(500 * time.Millisecond)
	reqs := h.misp.Requests()
	if len(reqs) != 1 || reqs[0].Route != "/warninglists/edit" {
		t.Errorf("MISP requests = %v, want exactly one edit", routes(reqs))
	}
	h.waitEvent("p", "WarninglistUpdated", "3 organisations")
}

func routes(reqs []misptest.RequestRecord) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Method + " " + r.Route
	}
	return out
}

func TestNoOpResyncsWriteNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{resync: 150 * time.Millisecond})
	h.readyInstance("misp")
	h.createPolicy(policy("p", "misp", "a", org(1, "one"), org(2, "two")))
	h.waitPolicy("p", synced)
	time.Sleep(300 * time.Millisecond) // let the first status write settle in the cache
	rv := h.getPolicy("p").ResourceVersion
	var inst v1alpha1.MISPInstance
	if err := k8sClient.Get(h.ctx, h.key("misp"), &inst); err != nil {
		t.Fatal(err)
	}
	h.misp.ResetStats()

	eventually(t, func() error {
		if n := h.misp.Calls("/warninglists/index"); n < 10 {
			return fmt.Errorf("%d resyncs so far", n)
		}
		return nil
	})
	if w := h.misp.WriteCalls(); w != 0 {
		t.Errorf("write calls during 10 no-op resyncs = %d, want 0 (%v)", w, h.wlCalls())
	}
	// The version, entry count and description in MISP's index show the list
	// unchanged: its entries are never downloaded.
	if v := h.misp.Calls("/warninglists/view"); v != 0 {
		t.Errorf("views during 10 no-op resyncs = %d, want 0 (%v)", v, h.misp.CallsByRoute())
	}
	if got := h.getPolicy("p").ResourceVersion; got != rv {
		t.Errorf("policy resourceVersion changed %s → %s: status written on a no-op resync", rv, got)
	}
	var inst2 v1alpha1.MISPInstance
	if err := k8sClient.Get(h.ctx, h.key("misp"), &inst2); err != nil {
		t.Fatal(err)
	}
	if inst2.ResourceVersion != inst.ResourceVersion {
		t.Errorf("instance resourceVersion changed %s → %s on no-op checks", inst.ResourceVersion, inst2.ResourceVersion)
	}
	t.Logf("MISP calls during the no-op resyncs: %v", h.misp.CallsByRoute())
}

func TestOrganisationMovesBetweenPolicies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	high := policy("high", "misp", "a", org(1, "one"))
	high.Spec.Priority = ptr.To[int32](100)
	medium := policy("medium", "misp", "c", org(2, "two"), org(3, "three"))
	medium.Spec.Priority = ptr.To[int32](50)
	// low lists only organisation 3, which medium wins: it ends with no organisation.
	low := policy("low", "misp", "e", org(3, "three"))
	h.createPolicy(high)
	h.createPolicy(medium)
	h.createPolicy(low)
	h.waitPolicy("high", synced)
	h.waitPolicy("medium", synced)
	lowP := h.waitPolicy("low", synced)
	if lowP.Status.Warninglist.Entries != 0 {
		t.Errorf("low: status entries = %d, want 0", lowP.Status.Warninglist.Entries)
	}
	lowList := h.list("misp-trust-operator/" + h.ns + "/low")
	if len(lowList.Entries) != 1 || lowList.Entries[0].Value != "org_uuid:"+placeholderUUID {
		t.Errorf("low list = %v, want only the placeholder", lowList.Entries)
	}
	if err := wantCondition(lowP.Status.Conditions, v1alpha1.ConditionConflicts, metav1.ConditionTrue, ReasonOrganisationsWonElsewhere, lowP.Generation); err != nil {
		t.Error(err)
	}

	// Organisation 2 joins high: it leaves medium's list.
	h.updatePolicy("high", func(p *v1alpha1.OrgTrustPolicy) {
		p.Spec.Organisations = append(p.Spec.Organisations, org(2, "two"))
	})
	h.waitPolicy("high", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist == nil || p.Status.Warninglist.Entries != 2 {
			return fmt.Errorf("high status %+v", p.Status.Warninglist)
		}
		return synced(p)
	})
	med := h.waitPolicy("medium", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist == nil || p.Status.Warninglist.Entries != 1 {
			return fmt.Errorf("medium status %+v", p.Status.Warninglist)
		}
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionConflicts, metav1.ConditionTrue, ReasonOrganisationsWonElsewhere, p.Generation)
	})
	c := condition(med.Status.Conditions, v1alpha1.ConditionConflicts)
	if !strings.Contains(c.Message, uuidN(2)+" (won by "+h.ns+"/high)") {
		t.Errorf("Conflicts message %q does not name %s and its winner", c.Message, uuidN(2))
	}
	if med.Status.Organisations != 2 {
		t.Errorf("medium status.organisations = %d, want 2 (listed, won or not)", med.Status.Organisations)
	}
	if r := condition(med.Status.Conditions, v1alpha1.ConditionReady); r.Status != metav1.ConditionTrue {
		t.Errorf("medium Ready = %s (%s): a conflict must not make a policy unready", r.Status, r.Message)
	}
	highList := entryMap(h.list("misp-trust-operator/" + h.ns + "/high"))
	medList := entryMap(h.list("misp-trust-operator/" + h.ns + "/medium"))
	if _, ok := highList["org_uuid:"+uuidN(2)]; !ok || len(highList) != 2 {
		t.Errorf("high list = %v, want organisations 1 and 2", highList)
	}
	if _, ok := medList["org_uuid:"+uuidN(2)]; ok || len(medList) != 1 {
		t.Errorf("medium list = %v, want only organisation 3", medList)
	}

	// And back: high drops it, medium wins it again and the conflict clears.
	h.updatePolicy("high", func(p *v1alpha1.OrgTrustPolicy) { p.Spec.Organisations = p.Spec.Organisations[:1] })
	h.waitPolicy("medium", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist == nil || p.Status.Warninglist.Entries != 2 {
			return fmt.Errorf("medium status %+v", p.Status.Warninglist)
		}
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionConflicts, metav1.ConditionFalse, ReasonNoConflicts, p.Generation)
	})
	if _, ok := entryMap(h.list("misp-trust-operator/" + h.ns + "/medium"))["org_uuid:"+uuidN(2)]; !ok {
		t.Error("medium list lacks organisation 2 after high dropped it")
	}
}

func TestDriftInMISPIsRepaired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{resync: 200 * time.Millisecond})
	h.readyInstance("misp")
	h.createPolicy(policy("p", "misp", "a", org(1, "one"), org(2, "two")))
	h.waitPolicy("p", synced)
	name := "misp-trust-operator/" + h.ns + "/p"
	want := fmt.Sprint(entryMap(h.list(name)))
	// Exported at 0 before the first repair, so increase() sees the first one.
	for _, k := range driftKinds {
		labels := map[string]string{"kind": k, "instance": h.ns + "/misp", "policy": h.ns + "/p"}
		if v, ok := h.metric("misptrust_warninglist_drift_repaired_total", labels); !ok || v != 0 {
			t.Errorf("drift %s before any drift = %v (exported: %v), want 0", k, v, ok)
		}
	}

	cases := []struct {
		kind   string
		drift  func(id string)
		detail string
	}{
		{driftDisabled, func(id string) { h.misp.EditWarninglistUI(id, func(w *misptest.WL) { w.Enabled = false }) }, "disabled"},
		{driftEntries, func(id string) {
			h.misp.EditWarninglistUI(id, func(w *misptest.WL) {
				w.Entries = append(w.Entries[:1], misptest.WLEntry{Value: "org_uuid:" + uuidN(99), Comment: "intruder"})
			})
		}, "1 entries missing, 1 unexpected"},
		{driftMetadata, func(id string) {
			h.misp.EditWarninglistUI(id, func(w *misptest.WL) { w.Description = "mine now"; w.Category = "false_positive" })
		}, "description, category changed"},
		{driftDeleted, func(id string) { h.misp.DeleteWarninglistUI(id) }, "was deleted"},
	}
	for _, c := range cases {
		id := h.list(name).ID
		c.drift(id)
		h.waitEvent("p", "WarninglistDriftRepaired", c.detail)
		eventually(t, func() error {
			wl, ok := h.misp.WarninglistByName(name)
			switch {
			case !ok:
				return fmt.Errorf("%s: list gone", c.kind)
			case !wl.Enabled || fmt.Sprint(entryMap(wl)) != want || wl.Category != "known" || !strings.HasPrefix(wl.Description, "Managed by"):
				return fmt.Errorf("%s: list not repaired: %+v", c.kind, wl)
			}
			return nil
		})
		eventually(t, func() error {
			labels := map[string]string{"kind": c.kind, "instance": h.ns + "/misp", "policy": h.ns + "/p"}
			if v := h.counter("misptrust_warninglist_drift_repaired_total", labels); v != 1 {
				return fmt.Errorf("drift metric %s = %v, want 1", c.kind, v)
			}
			return nil
		})
	}
	// After the recreation the status points at the new list.
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if id := h.list(name).ID; p.Status.Warninglist == nil || p.Status.Warninglist.ID != id {
			return fmt.Errorf("status.warninglist %+v, want id %s", p.Status.Warninglist, id)
		}
		return synced(p)
	})
}

func TestDeletionPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")

	del := policy("del", "misp", "a", org(1, "one"))
	del.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	h.createPolicy(del)
	h.createPolicy(policy("keep", "misp", "b", org(2, "two")))
	h.waitPolicy("del", func(p *v1alpha1.OrgTrustPolicy) error {
		if !controllerutil.ContainsFinalizer(p, Finalizer) {
			return fmt.Errorf("no finalizer yet")
		}
		return synced(p)
	})
	keep := h.waitPolicy("keep", synced)
	if controllerutil.ContainsFinalizer(keep, Finalizer) {
		t.Error("Retain policy has the finalizer")
	}
	delName, keepName := "misp-trust-operator/"+h.ns+"/del", "misp-trust-operator/"+h.ns+"/keep"
	h.list(delName)
	h.list(keepName)
	h.misp.ResetStats()

	for _, name := range []string{"del", "keep"} {
		if err := k8sClient.Delete(h.ctx, h.getPolicy(name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"del", "keep"} {
		eventually(t, func() error {
			var p v1alpha1.OrgTrustPolicy
			if err := k8sClient.Get(h.ctx, h.key(name), &p); !apierrors.IsNotFound(err) {
				return fmt.Errorf("policy %s still there (%v)", name, err)
			}
			return nil
		})
	}
	if _, ok := h.misp.WarninglistByName(delName); ok {
		t.Error("deletionPolicy Delete: the list is still in MISP")
	}
	if _, ok := h.misp.WarninglistByName(keepName); !ok {
		t.Error("deletionPolicy Retain: the list was deleted")
	}
	calls := h.wlCalls()
	if calls["/warninglists/delete"] != 1 || calls["/warninglists/view"] != 2 || len(calls) != 2 {
		t.Errorf("warninglist calls = %v, want view, delete, view (confirming the 302)", calls)
	}
	t.Logf("MISP calls for a Delete-policy deletion: %v", calls)
	h.waitEvent("del", "WarninglistDeleted", delName)

	// Switching Delete → Retain removes the finalizer again.
	sw := policy("switch", "misp", "a", org(3, "three"))
	sw.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	h.createPolicy(sw)
	h.waitPolicy("switch", func(p *v1alpha1.OrgTrustPolicy) error {
		if !controllerutil.ContainsFinalizer(p, Finalizer) {
			return fmt.Errorf("no finalizer yet")
		}
		return nil
	})
	h.updatePolicy("switch", func(p *v1alpha1.OrgTrustPolicy) { p.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain })
	h.waitPolicy("switch", func(p *v1alpha1.OrgTrustPolicy) error {
		if controllerutil.ContainsFinalizer(p, Finalizer) {
			return fmt.Errorf("finalizer still there")
		}
		return nil
	})
}

func TestMISPDownGatesPoliciesAndRecovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{resync: 300 * time.Millisecond})
	h.readyInstance("misp")
	h.createPolicy(policy("p", "misp", "a", org(1, "one")))
	h.waitPolicy("p", synced)

	h.misp.SetDown(true)
	h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReachable, metav1.ConditionFalse, ReasonUnreachable, i.Generation)
	})
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInstanceNotReady, p.Generation)
	})
	r := condition(h.getPolicy("p").Status.Conditions, v1alpha1.ConditionReady)
	if !strings.Contains(r.Message, `MISPInstance "misp"`) {
		t.Errorf("Ready message %q does not name the instance", r.Message)
	}

	// While down: the instance backs off (50ms → 2s here, 1s → 5m by default)
	// and the policy makes no call at all.
	h.misp.ResetStats()
	const window = 6 * time.Second
	time.Sleep(window)
	calls := h.misp.CallsByRoute()
	total := 0
	for route, n := range calls {
		total += n
		if strings.HasPrefix(route, "/warninglists/") {
			t.Errorf("policy called MISP while its instance was not Ready: %s ×%d", route, n)
		}
	}
	// 2 attempts per check (MaxRetries 1); backoff 50ms doubling to 2s gives
	// at most ~9 checks in 6s.
	if total > 24 {
		t.Errorf("%d MISP calls in %s while down, want ≤ 24: %v", total, window, calls)
	}
	t.Logf("MISP calls in %s while down: %d %v", window, total, calls)

	h.misp.SetDown(false)
	h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", i.Generation)
	})
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if err := wantCondition(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonSynced, p.Generation); err != nil {
			return err
		}
		return synced(p)
	})
}

func TestTenThousandOrganisationsFromConfigMap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	const n = 10000
	var b strings.Builder
	b.WriteString("# exported from the community directory\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s # Org %d\n", uuidN(i), i)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orgs", Namespace: h.ns, Labels: allowLabels}, Data: map[string]string{"list": b.String()}}
	if err := k8sClient.Create(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.misp.ResetStats()
	p := policy("big", "misp", "b")
	p.Spec.OrganisationsFrom = []v1alpha1.ConfigMapKeyReference{{Name: "orgs", Key: "list"}}
	h.createPolicy(p)
	got := h.waitPolicy("big", synced)
	if got.Status.Organisations != n || got.Status.Warninglist.Entries != n {
		t.Errorf("status organisations %d, entries %d; want %d", got.Status.Organisations, got.Status.Warninglist.Entries, n)
	}
	wl := h.list("misp-trust-operator/" + h.ns + "/big")
	if len(wl.Entries) != n || !wl.Enabled {
		t.Fatalf("list has %d entries (enabled %t), want %d enabled", len(wl.Entries), wl.Enabled, n)
	}
	m := entryMap(wl)
	if m["org_uuid:"+uuidN(1)] != "Org 1" || m["org_uuid:"+uuidN(n)] != fmt.Sprintf("Org %d", n) {
		t.Errorf("first/last entries wrong: %q, %q", m["org_uuid:"+uuidN(1)], m["org_uuid:"+uuidN(n)])
	}
	calls := h.wlCalls()
	if calls["/warninglists/add"] != 1 || calls["/warninglists/toggleEnable"] != 1 || h.misp.WriteCalls() != 2 {
		t.Errorf("calls = %v (writes %d), want one add and one toggleEnable", calls, h.misp.WriteCalls())
	}
	t.Logf("10,000-organisation policy: MISP calls %v, %d bytes served", calls, h.misp.BytesServed())

	// One changed line in the ConfigMap is one edit.
	h.misp.ResetStats()
	cm.Data["list"] = strings.Replace(cm.Data["list"], "# Org 5000\n", "# Org 5000 (renamed)\n", 1)
	if err := k8sClient.Update(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	h.waitPolicy("big", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist.EntriesHash == got.Status.Warninglist.EntriesHash {
			return fmt.Errorf("entries hash unchanged")
		}
		return synced(p)
	})
	if c := entryMap(h.list("misp-trust-operator/" + h.ns + "/big"))["org_uuid:"+uuidN(5000)]; c != "Org 5000 (renamed)" {
		t.Errorf("comment %q after the ConfigMap change", c)
	}
	time.Sleep(300 * time.Millisecond) // any further reconcile would show below
	if calls := h.wlCalls(); calls["/warninglists/edit"] != 1 || len(calls) != 1 {
		t.Errorf("calls after a ConfigMap change = %v, want one edit", calls)
	}
}

func TestInvalidOrganisationLinesAreReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	var b strings.Builder
	fmt.Fprintf(&b, "%s # good one\n", uuidN(1))
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "not-a-uuid-%d\n", i)
	}
	fmt.Fprintf(&b, "%s\n", uuidN(2))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orgs", Namespace: h.ns, Labels: allowLabels}, Data: map[string]string{"k": b.String()}}
	if err := k8sClient.Create(h.ctx, cm); err != nil {
		t.Fatal(err)
	}
	p := policy("p", "misp", "c")
	p.Spec.OrganisationsFrom = []v1alpha1.ConfigMapKeyReference{{Name: "orgs", Key: "k"}}
	h.createPolicy(p)
	got := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if err := wantCondition(p.Status.Conditions, v1alpha1.ConditionOrganisationsValid, metav1.ConditionFalse, ReasonInvalidOrganisations, p.Generation); err != nil {
			return err
		}
		return synced(p)
	})
	c := condition(got.Status.Conditions, v1alpha1.ConditionOrganisationsValid)
	for _, want := range []string{"12 problems", "configmap/orgs/k line 2:", `"not-a-uuid-0" is not an organisation UUID`, "(and 2 more)"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("OrganisationsValid message %q lacks %q", c.Message, want)
		}
	}
	if strings.Contains(c.Message, "line 13:") {
		t.Errorf("message lists more than %d problems: %q", maxListed, c.Message)
	}
	if err := wantCondition(got.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInvalidOrganisations, got.Generation); err != nil {
		t.Error(err)
	}
	if n := len(h.list("misp-trust-operator/" + h.ns + "/p").Entries); n != 2 {
		t.Errorf("list has %d entries, want the 2 valid ones", n)
	}

	// A missing ConfigMap leaves the list as it is.
	h.misp.ResetStats()
	h.updatePolicy("p", func(p *v1alpha1.OrgTrustPolicy) {
		p.Spec.OrganisationsFrom = append(p.Spec.OrganisationsFrom, v1alpha1.ConfigMapKeyReference{Name: "absent", Key: "k"})
	})
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionSynced, metav1.ConditionFalse, ReasonOrganisationsSourceMissing, p.Generation)
	})
	if w := h.misp.WriteCalls(); w != 0 {
		t.Errorf("%d writes with a missing ConfigMap, want 0", w)
	}
	// Creating it resumes the sync (ConfigMap watch).
	if err := k8sClient.Create(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "absent", Namespace: h.ns, Labels: allowLabels}, Data: map[string]string{"k": uuidN(3) + "\n"}}); err != nil {
		t.Fatal(err)
	}
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist == nil || p.Status.Warninglist.Entries != 3 {
			return fmt.Errorf("warninglist status %+v", p.Status.Warninglist)
		}
		return synced(p)
	})
}

func TestMissingInstanceMeansNoMISPCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.createPolicy(policy("p", "nowhere", "a", org(1, "one")))
	got := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInstanceNotFound, p.Generation)
	})
	if msg := condition(got.Status.Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(msg, `"nowhere"`) {
		t.Errorf("Ready message %q does not name the instance", msg)
	}
	if got.Status.Organisations != 1 {
		t.Errorf("status.organisations = %d: organisations are reported even without an instance", got.Status.Organisations)
	}
	time.Sleep(300 * time.Millisecond)
	if reqs := h.misp.Requests(); len(reqs) != 0 {
		t.Errorf("MISP requests without an instance: %v", routes(reqs))
	}

	// The instance appears and becomes Ready: the policy syncs.
	h.readyInstance("nowhere")
	h.waitPolicy("p", synced)
}

func TestDefaultListIsNeverTakenOverAndCustomListIsAdopted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	existing := h.misp.AddWarninglist(misptest.WL{Name: "org-confidence-level-high", Type: "string", Category: "known",
		Description: "the old script's list", Entries: []misptest.WLEntry{{Value: "org_uuid:" + uuidN(7), Comment: "old"}}})
	h.misp.ResetStats()

	dflt := policy("dflt", "misp", "a", org(1, "one"))
	dflt.Spec.WarninglistName = "List of RFC 1918 CIDR blocks"
	h.createPolicy(dflt)
	got := h.waitPolicy("dflt", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionSynced, metav1.ConditionFalse, ReasonDefaultList, p.Generation)
	})
	if err := wantCondition(got.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDefaultList, got.Generation); err != nil {
		t.Error(err)
	}
	if w := h.misp.WriteCalls(); w != 0 {
		t.Errorf("%d writes against a default list's name, want 0", w)
	}

	adopt := policy("adopt", "misp", "a", org(1, "one"))
	adopt.Spec.WarninglistName = "org-confidence-level-high"
	h.createPolicy(adopt)
	got = h.waitPolicy("adopt", synced)
	wl := h.list("org-confidence-level-high")
	if got.Status.Warninglist.ID != existing.ID || wl.ID != existing.ID {
		t.Errorf("adopted list id %s / status %s, want the existing %s", wl.ID, got.Status.Warninglist.ID, existing.ID)
	}
	if m := entryMap(wl); len(m) != 1 || m["org_uuid:"+uuidN(1)] != "one" || !wl.Enabled || !strings.HasPrefix(wl.Description, "Managed by") {
		t.Errorf("adopted list = %+v, want the policy's entry, enabled, our description", wl)
	}
	h.waitEvent("adopt", "WarninglistAdopted", "org-confidence-level-high")
	if n := h.misp.Calls("/warninglists/add"); n != 0 {
		t.Errorf("%d adds while adopting, want 0", n)
	}

	// A second policy claiming the same name is refused without a MISP call.
	h.misp.ResetStats()
	dup := policy("zz-dup", "misp", "b", org(2, "two"))
	dup.Spec.WarninglistName = "org-confidence-level-high"
	h.createPolicy(dup)
	h.waitPolicy("zz-dup", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionSynced, metav1.ConditionFalse, ReasonWarninglistNameTaken, p.Generation)
	})
	// (The refused default-list policy re-checks its name when a sibling
	// changes: reads only.)
	if w := h.misp.WriteCalls(); w != 0 {
		t.Errorf("%d writes for a duplicate name, want 0 (%v)", w, h.wlCalls())
	}
	if m := entryMap(h.list("org-confidence-level-high")); len(m) != 1 || m["org_uuid:"+uuidN(1)] != "one" {
		t.Errorf("the adopted list changed: %v", m)
	}
}

func TestRenamingTheListEditsItInPlace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	h.createPolicy(policy("p", "misp", "a", org(1, "one")))
	before := h.waitPolicy("p", synced)
	h.misp.ResetStats()
	h.updatePolicy("p", func(p *v1alpha1.OrgTrustPolicy) { p.Spec.WarninglistName = "trusted-partners" })
	after := h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		if p.Status.Warninglist == nil || p.Status.Warninglist.Name != "trusted-partners" {
			return fmt.Errorf("status %+v", p.Status.Warninglist)
		}
		return synced(p)
	})
	if after.Status.Warninglist.ID != before.Status.Warninglist.ID {
		t.Errorf("rename created list %s, want %s renamed", after.Status.Warninglist.ID, before.Status.Warninglist.ID)
	}
	if _, ok := h.misp.WarninglistByName("misp-trust-operator/" + h.ns + "/p"); ok {
		t.Error("old name still exists")
	}
	calls := h.wlCalls()
	if calls["/warninglists/edit"] != 1 || calls["/warninglists/add"] != 0 {
		t.Errorf("calls for a rename = %v, want one edit (after a view and a find)", calls)
	}
}
