package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

func TestManagingPolicyReadsBackWhatTheControllerWrites(t *testing.T) {
	for _, key := range [][2]string{{"sec", "high"}, {"misp-prod", "partners.v2"}, {"a", "b-c"}} {
		p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key[0], Name: key[1]}}
		inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: key[0], Name: "misp", UID: "0f1e2d3c"}}
		d := buildDesiredList(p, ownerOf(p, inst), nil, nil)
		// The description written now, and the one written before ownership was recorded.
		for _, desc := range []string{d.Description, "Managed by misp-trust-operator: OrgTrustPolicy " + key[0] + "/" + key[1] + ". Edits in MISP are reverted."} {
			ns, name, ok := ManagingPolicy(desc)
			if !ok || ns != key[0] || name != key[1] {
				t.Errorf("ManagingPolicy(%q) = %q, %q, %v", desc, ns, name, ok)
			}
		}
	}
	for _, d := range []string{
		"Created by hand for the original curation script",
		"",
		"Managed by misp-trust-operator: OrgTrustPolicy sec/high.",
		"Managed by misp-trust-operator: OrgTrustPolicy high. Edits in MISP are reverted.",
		"Managed by misp-trust-operator: OrgTrustPolicy /high. Edits in MISP are reverted.",
		"Managed by misp-trust-operator: OrgTrustPolicy sec/high. Edits in MISP are reverted. And more.",
		"Managed by misp-trust-operator: OrgTrustPolicy sec/high of MISPInstance sec/misp (uid 1). Edits in MISP are reverted. Entries: sha256:00. And more.",
	} {
		if ns, name, ok := ManagingPolicy(d); ok {
			t.Errorf("ManagingPolicy(%q) = %q, %q, true; want not managed", d, ns, name)
		}
	}
}

func TestWarninglistDifferenceIsEmptyForTheDesiredList(t *testing.T) {
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high"}}
	won := []trust.Org{{UUID: uuidN(1), Name: "one"}, {UUID: uuidN(2), Name: "two"}}
	inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "misp", UID: "0f1e2d3c"}}
	got := DesiredWarninglist(p, inst, won, nil)
	got.Enabled = true
	if d := WarninglistDifference(&got, p, inst, won, nil); d != "" {
		t.Fatalf("difference of the desired list itself = %q", d)
	}
	got.Description = "Created by hand"
	got.Entries = got.Entries[:1]
	if d, want := WarninglistDifference(&got, p, inst, won, nil), "1 entries missing, 0 unexpected; description changed"; d != want {
		t.Fatalf("difference = %q, want %q", d, want)
	}
}
