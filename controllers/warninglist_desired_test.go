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
		ns, name, ok := ManagingPolicy(warninglistDescription(p))
		if !ok || ns != key[0] || name != key[1] {
			t.Errorf("ManagingPolicy(description of %s/%s) = %q, %q, %v", key[0], key[1], ns, name, ok)
		}
	}
	for _, d := range []string{
		"Created by hand for the original curation script",
		"",
		"Managed by misp-trust-operator: OrgTrustPolicy sec/high.",
		"Managed by misp-trust-operator: OrgTrustPolicy high. Edits in MISP are reverted.",
		"Managed by misp-trust-operator: OrgTrustPolicy /high. Edits in MISP are reverted.",
		"Managed by misp-trust-operator: OrgTrustPolicy sec/high. Edits in MISP are reverted. And more.",
	} {
		if ns, name, ok := ManagingPolicy(d); ok {
			t.Errorf("ManagingPolicy(%q) = %q, %q, true; want not managed", d, ns, name)
		}
	}
}

func TestWarninglistDifferenceIsEmptyForTheDesiredList(t *testing.T) {
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high"}}
	won := []trust.Org{{UUID: uuidN(1), Name: "one"}, {UUID: uuidN(2), Name: "two"}}
	got := DesiredWarninglist(p, won, nil)
	got.Enabled = true
	if d := WarninglistDifference(&got, p, won, nil); d != "" {
		t.Fatalf("difference of the desired list itself = %q", d)
	}
	got.Description = "Created by hand"
	got.Entries = got.Entries[:1]
	if d, want := WarninglistDifference(&got, p, won, nil), "1 entries missing, 0 unexpected; description changed"; d != want {
		t.Fatalf("difference = %q, want %q", d, want)
	}
}
