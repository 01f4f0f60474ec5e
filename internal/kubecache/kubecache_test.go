package kubecache

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

func TestStripDropsWhatTheOperatorMustNotKeep(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "x", Labels: map[string]string{"misptrust.io/allow": "true"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"apiKey":"c2VjcmV0"}}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	secretMeta := &metav1.PartialObjectMetadata{ObjectMeta: meta()}
	policy := &v1alpha1.OrgTrustPolicy{ObjectMeta: meta()}
	for _, o := range []metav1.Object{secretMeta, &corev1.ConfigMap{ObjectMeta: meta()}, policy} {
		if _, err := Strip(o); err != nil {
			t.Fatal(err)
		}
		if o.GetManagedFields() != nil || o.GetLabels()["misptrust.io/allow"] != "true" || o.GetName() != "x" {
			t.Errorf("%T: managedFields %v labels %v", o, o.GetManagedFields(), o.GetLabels())
		}
	}
	if secretMeta.Annotations != nil {
		t.Error("a Secret's annotations (last-applied-configuration holds its data) are kept in the cache")
	}
	if policy.Annotations == nil {
		t.Error("a policy's annotations were dropped: only Secret and ConfigMap metadata lose them")
	}
	if got, err := Strip("not an object"); err != nil || got != "not an object" {
		t.Errorf("Strip(string) = %v, %v", got, err)
	}
}

func TestOptionsWatchOnlyTheGivenNamespaces(t *testing.T) {
	if o := Options(nil); o.DefaultNamespaces != nil || o.DefaultTransform == nil {
		t.Errorf("no namespaces: %+v", o)
	}
	o := Options([]string{"a", "b"})
	if len(o.DefaultNamespaces) != 2 {
		t.Errorf("namespaces %v", o.DefaultNamespaces)
	}
}

func TestNamespaces(t *testing.T) {
	cases := []struct {
		watch, single string
		want          []string
		wantErr       bool
	}{
		{"", "", nil, false},
		{"a,b", "", []string{"a", "b"}, false},
		{" a , b ,a", "c", []string{"a", "b", "c"}, false},
		{"", "a", []string{"a"}, false},
		{"Bad_NS", "", nil, true},
	}
	for _, c := range cases {
		got, err := Namespaces(c.watch, c.single)
		if (err != nil) != c.wantErr || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Namespaces(%q, %q) = %v, %v; want %v", c.watch, c.single, got, err, c.want)
		}
	}
}
