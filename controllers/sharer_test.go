package controllers

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

func TestSharerEntriesCannotBeConfusedWithCreatorEntries(t *testing.T) {
	p := testPolicy()
	p.Spec.ValuePrefix = ptr.To("") // creator entries are then bare UUIDs
	d := buildDesiredList(p, testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}}, []trust.Sharer{{UUID: uuidN(1), Name: "One"}, {UUID: uuidN(2), Name: "Hub", Servers: []string{"2"}}})
	want := []misp.WarninglistEntry{
		{Value: uuidN(1), Comment: "One"},
		{Value: "sharer:" + uuidN(1), Comment: "One"},
		{Value: "sharer:" + uuidN(2), Comment: "Hub (via server 2)"},
	}
	if fmt.Sprint(d.entries()) != fmt.Sprint(want) || d.Orgs != 3 {
		t.Fatalf("entries = %v (orgs %d), want %v", d.entries(), d.Orgs, want)
	}
	if only := buildDesiredList(p, testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}}, nil); only.EntriesHash == d.EntriesHash {
		t.Error("adding sharer entries did not change the hash")
	}
}

func TestSharerPolicyMirrorsSharersAndReportsOverlaps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.readyInstance("misp")
	high := policy("high", "misp", "a", org(1, "one"), org(2, "two"))
	high.Spec.Priority = ptr.To[int32](100)
	hubs := policy("hubs", "misp", "c")
	hubs.Spec.SharingOrganisations = []v1alpha1.SharingOrganisation{
		{UUID: strings.ToUpper(uuidN(2)), Name: "two"},
		{UUID: uuidN(7), Name: "CSIRT", Servers: []string{"3"}},
	}
	h.createPolicy(high)
	h.createPolicy(hubs)

	got := h.waitPolicy("hubs", func(p *v1alpha1.OrgTrustPolicy) error {
		if err := wantCondition(p.Status.Conditions, v1alpha1.ConditionSourceOverlaps, metav1.ConditionTrue, ReasonCreatorAlsoSharer, p.Generation); err != nil {
			return err
		}
		return synced(p)
	})
	wl := entryMap(h.list("misp-trust-operator/" + h.ns + "/hubs"))
	wantEntries := map[string]string{"sharer:" + uuidN(2): "two", "sharer:" + uuidN(7): "CSIRT (via server 3)"}
	if fmt.Sprint(wl) != fmt.Sprint(wantEntries) {
		t.Errorf("hubs list = %v, want %v", wl, wantEntries)
	}
	if got.Status.SharingOrganisations != 2 || got.Status.Organisations != 0 || got.Status.Warninglist.Entries != 2 {
		t.Errorf("status: sharingOrganisations %d, organisations %d, entries %d; want 2, 0, 2",
			got.Status.SharingOrganisations, got.Status.Organisations, got.Status.Warninglist.Entries)
	}
	msg := condition(got.Status.Conditions, v1alpha1.ConditionSourceOverlaps).Message
	wantMsg := uuidN(2) + " is a creator in " + h.ns + "/high and a sharer in " + h.ns + "/hubs: its own shared events go to " + h.ns + "/high"
	if !strings.Contains(msg, wantMsg) {
		t.Errorf("SourceOverlaps message %q lacks %q", msg, wantMsg)
	}
	// The creator side reports the same overlap; its list holds creator entries only.
	h.waitPolicy("high", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionSourceOverlaps, metav1.ConditionTrue, ReasonCreatorAlsoSharer, p.Generation)
	})
	if hl := entryMap(h.list("misp-trust-operator/" + h.ns + "/high")); len(hl) != 2 || hl["org_uuid:"+uuidN(2)] != "two" {
		t.Errorf("high list = %v", hl)
	}

	// The overlap goes once the creator rule does.
	h.updatePolicy("high", func(p *v1alpha1.OrgTrustPolicy) { p.Spec.Organisations = p.Spec.Organisations[:1] })
	h.waitPolicy("hubs", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionSourceOverlaps, metav1.ConditionFalse, ReasonNoOverlaps, p.Generation)
	})
}
