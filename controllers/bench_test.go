package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// orgListData is a 10,000-line organisationsFrom value.
func orgListData(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s # Org %d\n", uuidN(i), i)
	}
	return b.String()
}

// desiredFromConfigMap is the MISP-free part of a reconcile: parse the
// ConfigMap, apply precedence, build entries and hash.
func desiredFromConfigMap(b *testing.B, p *v1alpha1.OrgTrustPolicy, data string) desiredList {
	orgs, problems, err := trust.EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return data, true, nil })
	if err != nil || len(problems) != 0 {
		b.Fatalf("EffectiveOrgs: %v %v", err, problems)
	}
	res := trust.Resolve([]trust.Candidate{{Key: trust.Key(p), SourceReliability: "a", Orgs: orgs}})
	won := orgs[:0:0]
	for _, o := range orgs {
		if res.Winner[o.UUID] == trust.Key(p) {
			won = append(won, o)
		}
	}
	return buildDesiredList(p, listOwner{Policy: trust.Key(p)}, won, nil)
}

// BenchmarkReconcile10kOrgs measures a 10,000-organisation policy: building
// the desired list, creating it in the MISP double (find + add + enable over
// HTTP, through the real client), a no-op resync (view + compare) and a
// one-organisation change (one edit).
func BenchmarkReconcile10kOrgs(b *testing.B) {
	const n = 10000
	data := orgListData(n)
	p := testPolicy()
	p.Spec.SourceReliability = "a"
	p.Spec.OrganisationsFrom = []v1alpha1.ConfigMapKeyReference{{Name: "orgs", Key: "list"}}
	ctx := context.Background()

	b.Run("desired", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := desiredFromConfigMap(b, p, data); d.Orgs != n {
				b.Fatalf("%d orgs", d.Orgs)
			}
		}
	})

	srv := misptest.NewServer(misptest.Options{})
	defer srv.Close()
	api := newTestClient(b, srv, srv.AdminKey())
	newSyncer := func(mem *listMemory, at time.Time) *syncer {
		return &syncer{api: api, mem: mem, metrics: newMetrics(nil), name: types.NamespacedName{Namespace: "ns", Name: "high"},
			uid: "u", instance: "i", now: at, interval: time.Minute}
	}

	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := desiredFromConfigMap(b, p, data)
			srv.ResetStats()
			out, err := newSyncer(newListMemory(), time.Now()).sync(ctx, d, listRecord{})
			if err != nil || !out.Created || srv.WriteCalls() != 2 {
				b.Fatalf("sync: %+v %v", out, err)
			}
			b.StopTimer()
			srv.DeleteWarninglistUI(out.ID)
			b.StartTimer()
		}
	})

	d := desiredFromConfigMap(b, p, data)
	created, err := newSyncer(newListMemory(), time.Now()).sync(ctx, d, listRecord{})
	if err != nil {
		b.Fatal(err)
	}
	// What the status records: a resync (or a restart) reads the list by id.
	record := listRecord{ID: created.ID, Name: d.Name, EntriesHash: d.EntriesHash, Description: d.Description, InSync: true}
	b.Run("noop-resync", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// No memory: view the 10,000 entries and compare, write nothing.
			srv.ResetStats()
			out, err := newSyncer(newListMemory(), time.Now()).sync(ctx, desiredFromConfigMap(b, p, data), record)
			if err != nil || out.Updated || len(out.Drift) > 0 || srv.Calls("/warninglists/view") != 1 || srv.WriteCalls() != 0 {
				b.Fatalf("sync: %+v %v (calls %v)", out, err, srv.CallsByRoute())
			}
		}
	})
	b.Run("one-org-change", func(b *testing.B) {
		b.ReportAllocs()
		mem := newListMemory()
		if _, err := newSyncer(mem, time.Now()).sync(ctx, d, record); err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			i++
			changed := strings.Replace(data, "# Org 5000\n", fmt.Sprintf("# Org 5000 v%d\n", i), 1)
			srv.ResetStats()
			out, err := newSyncer(mem, time.Now()).sync(ctx, desiredFromConfigMap(b, p, changed), listRecord{})
			if err != nil || !out.Updated || srv.Calls("/warninglists/edit") != 1 || len(srv.CallsByRoute()) != 1 {
				b.Fatalf("sync: %+v %v", out, err)
			}
		}
	})
}
