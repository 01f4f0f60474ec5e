package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// countingReader counts the ConfigMaps read from the API server.
type countingReader struct {
	client.Reader
	gets atomic.Int64
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.ConfigMap); ok {
		c.gets.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

func newTestNamespace(t *testing.T) string {
	t.Helper()
	ns := "t-" + randHex(5)
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func orgLines(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%s # Org %d\n", uuidN(i), i)
	}
	return b.String()
}

func TestConfigMapOrgsParsesOncePerResourceVersion(t *testing.T) {
	ctx := context.Background()
	ns := newTestNamespace(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orgs", Namespace: ns, Labels: allowLabels},
		Data: map[string]string{"k": orgLines(1, 1000)}}
	if err := k8sClient.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	live := &countingReader{Reader: k8sClient}
	c := trust.NewConfigMapOrgs(k8sClient, live)
	ref := v1alpha1.ConfigMapKeyReference{Name: "orgs", Key: "k"}
	a, err := c.Read(ctx, ns, ref)
	if err != nil || len(a.Orgs) != 1000 {
		t.Fatalf("%d orgs, %v", len(a.Orgs), err)
	}
	b, _ := c.Read(ctx, ns, ref)
	if live.gets.Load() != 1 || &a.Orgs[0] != &b.Orgs[0] {
		t.Errorf("%d reads of the data for one resourceVersion, want 1 (and the same parsed list)", live.gets.Load())
	}
	cm.Data["k"] = orgLines(1, 1001)
	if err := k8sClient.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if c, _ := c.Read(ctx, ns, ref); len(c.Orgs) != 1001 || live.gets.Load() != 2 {
		t.Errorf("after an update: %d orgs, %d reads", len(c.Orgs), live.gets.Load())
	}
	cm.Labels = nil
	if err := k8sClient.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	d, _ := c.Read(ctx, ns, ref)
	if len(d.Orgs) != 0 || len(d.Problems) != 1 || d.Problems[0].Kind != trust.ProblemNotAllowed || live.gets.Load() != 2 {
		t.Errorf("without the label: %d orgs, problems %v, %d reads (the data must not be read)", len(d.Orgs), d.Problems, live.gets.Load())
	}
}

func TestPrecedenceIsComputedOncePerInstanceChange(t *testing.T) {
	ctx := context.Background()
	ns := newTestNamespace(t)
	const n = 5
	var live []*v1alpha1.OrgTrustPolicy
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("orgs-%d", i)
		// Each list overlaps the next one by 10 organisations.
		if err := k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: allowLabels},
			Data: map[string]string{"k": orgLines(i*100, 110)}}); err != nil {
			t.Fatal(err)
		}
		p := policy(fmt.Sprintf("p%d", i), "misp", "b", org(10000+i, "inline"))
		p.Namespace, p.UID, p.Generation = ns, types.UID(fmt.Sprintf("uid-%d", i)), 1
		p.Spec.OrganisationsFrom = []v1alpha1.ConfigMapKeyReference{{Name: name, Key: "k"}}
		live = append(live, p)
	}
	reads := &countingReader{Reader: k8sClient}
	pr := newPrecedence(trust.NewConfigMapOrgs(k8sClient, reads))
	inst := types.NamespacedName{Namespace: ns, Name: "misp"}
	reconcileAll := func() map[string]*resolution {
		var last map[string]*resolution
		for _, p := range live {
			byPolicy, err := pr.compute(ctx, types.NamespacedName{Namespace: ns, Name: p.Name}, inst, live)
			if err != nil {
				t.Fatal(err)
			}
			last = byPolicy
		}
		return last
	}
	res := reconcileAll()
	if got := pr.computed.Load(); got != 1 || reads.gets.Load() != n {
		t.Errorf("%d policies reconciled: %d computations, %d ConfigMap reads; want 1 and %d", n, got, reads.gets.Load(), n)
	}
	if r := res[ns+"/p1"]; r.Orgs != 111 || len(r.Won) != 101 || r.LossCount != 10 || r.Losses[0].Winner != ns+"/p0" {
		t.Errorf("p1: orgs %d, won %d, lost %d %v", r.Orgs, len(r.Won), r.LossCount, r.Losses)
	}
	// One policy changes: its siblings are reconciled too, and share one computation
	// over the ConfigMaps already parsed.
	live[2].Generation = 2
	live[2].Spec.Priority = ptrInt32(10)
	res = reconcileAll()
	if got := pr.computed.Load(); got != 2 || reads.gets.Load() != n {
		t.Errorf("after a change: %d computations, %d ConfigMap reads; want 2 and %d", got, reads.gets.Load(), n)
	}
	if r := res[ns+"/p1"]; r.LossCount != 20 {
		t.Errorf("p1 now loses %d organisations, want 20 (10 to p0, 10 to the promoted p2)", r.LossCount)
	}
}

func ptrInt32(v int32) *int32 { return &v }
