package cli

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// plan reads organisationsFrom ConfigMaps as the controller does: one without the
// opt-in label gives no organisations and blocks its policy's list, one with it is read.
func TestPlanReadsOnlyConfigMapsThatOptIn(t *testing.T) {
	const uuid = "11111111-2222-4333-8444-555555555555"
	for _, tc := range []struct {
		name        string
		labels      map[string]string
		wantBlocked bool
		wantOrgs    int
	}{
		{"labelled", map[string]string{trust.AllowLabel: trust.AllowValue}, false, 1},
		{"not labelled", nil, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "partners", Labels: tc.labels},
				Data: map[string]string{"high": uuid + " # ONE\n"}}
			p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high"},
				Spec: v1alpha1.OrgTrustPolicySpec{InstanceRef: v1alpha1.InstanceReference{Name: "misp"}, SourceReliability: "a",
					OrganisationsFrom: []v1alpha1.ConfigMapKeyReference{{Name: "partners", Key: "high"}}}}
			pl := &planner{res: &planResult{}, configMaps: map[types.NamespacedName]*corev1.ConfigMap{},
				filesCM: map[types.NamespacedName]*corev1.ConfigMap{{Namespace: "sec", Name: "partners"}: cm}}
			s, err := pl.side(context.Background(), []*v1alpha1.OrgTrustPolicy{p}, true)
			if err != nil {
				t.Fatal(err)
			}
			if s.missing["sec/high"] != tc.wantBlocked || len(s.orgs["sec/high"]) != tc.wantOrgs {
				t.Errorf("blocked %v, %d organisations; want %v, %d (notes %v)", s.missing["sec/high"], len(s.orgs["sec/high"]), tc.wantBlocked, tc.wantOrgs, pl.res.Notes)
			}
		})
	}
}
