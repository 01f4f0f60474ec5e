package index

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

const (
	circl   = "5cf66e53-b5f8-43e7-be9a-49880a3b4631"
	partner = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
	sub     = "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19"
	nobody  = "ffffffff-0000-4000-8000-00000000ffff"
)

func policy(name string, prio int32, grade string, publish bool, orgs ...string) *v1alpha1.OrgTrustPolicy {
	p := &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: name},
		Spec:       v1alpha1.OrgTrustPolicySpec{SourceReliability: grade, Publish: publish, Priority: &prio},
	}
	for _, o := range orgs {
		p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o})
	}
	return p
}

// inline is the orgsOf of tests: the policy's inline organisations through the trust
// package, as the curator does (ConfigMaps are not needed here).
func inline(p *v1alpha1.OrgTrustPolicy) []trust.Org {
	orgs, _, err := trust.EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return "", false, nil })
	if err != nil {
		panic(err)
	}
	return orgs
}

func TestBuildAppliesTheTrustPrecedence(t *testing.T) {
	high := policy("high", 100, "a", true, circl, partner)
	medium := policy("medium", 50, "c", false, partner, sub)
	for _, order := range [][]*v1alpha1.OrgTrustPolicy{{high, medium}, {medium, high}} {
		s := Build(order, inline)
		cases := []struct {
			name string
			org  string
			want Policy
			ok   bool
		}{
			{"org only in high gets the high tags and publish", circl,
				Policy{Key: "sec/high", Tags: []string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, Publish: true}, true},
			{"org in both goes to the higher priority", partner,
				Policy{Key: "sec/high", Tags: []string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, Publish: true}, true},
			{"org only in medium is tag only", sub,
				Policy{Key: "sec/medium", Tags: []string{`admiralty-scale:source-reliability="c"`}}, true},
			{"upper-case uuid finds the same org", strings.ToUpper(sub),
				Policy{Key: "sec/medium", Tags: []string{`admiralty-scale:source-reliability="c"`}}, true},
			{"unknown org is untrusted", nobody, Policy{}, false},
			{"not a uuid is untrusted", "circl", Policy{}, false},
			{"empty org is untrusted", "", Policy{}, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, ok := s.Lookup(tc.org)
				if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Lookup(%s) = %+v, %v; want %+v, %v", tc.org, got, ok, tc.want, tc.ok)
				}
			})
		}
		if s.Len() != 3 {
			t.Errorf("Len = %d, want 3", s.Len())
		}
	}
}

func TestBuildUsesGradeThenNameOnEqualPriority(t *testing.T) {
	b := policy("b-grade-b", 0, "b", false, circl)
	a := policy("z-grade-a", 0, "a", false, circl)
	got, _ := Build([]*v1alpha1.OrgTrustPolicy{b, a}, inline).Lookup(circl)
	if got.Key != "sec/z-grade-a" {
		t.Fatalf("winner = %s, want the more reliable grade", got.Key)
	}
	x := policy("alpha", 0, "c", false, circl)
	y := policy("beta", 0, "c", false, circl)
	got, _ = Build([]*v1alpha1.OrgTrustPolicy{y, x}, inline).Lookup(circl)
	if got.Key != "sec/alpha" {
		t.Fatalf("winner = %s, want the alphabetically first key", got.Key)
	}
}

func TestBuildSkipsPoliciesBeingDeleted(t *testing.T) {
	high := policy("high", 100, "a", true, circl)
	now := metav1.Now()
	high.DeletionTimestamp = &now
	medium := policy("medium", 0, "c", false, circl)
	got, ok := Build([]*v1alpha1.OrgTrustPolicy{high, medium, nil}, inline).Lookup(circl)
	if !ok || got.Key != "sec/medium" {
		t.Fatalf("Lookup = %+v, %v; want the medium policy once high is being deleted", got, ok)
	}
}

func TestPoliciesAndOrgs(t *testing.T) {
	s := Build([]*v1alpha1.OrgTrustPolicy{policy("high", 1, "a", true, partner, circl), policy("empty", 0, "c", false)}, inline)
	var keys []string
	for _, p := range s.Policies() {
		keys = append(keys, p.Key)
	}
	if !reflect.DeepEqual(keys, []string{"sec/empty", "sec/high"}) {
		t.Errorf("Policies keys = %v", keys)
	}
	if got := s.Orgs("sec/high"); !reflect.DeepEqual(got, []string{partner, circl}) {
		t.Errorf("Orgs(high) = %v", got)
	}
	if got := s.Orgs("sec/empty"); len(got) != 0 {
		t.Errorf("Orgs(empty) = %v", got)
	}
	if got := s.Orgs("sec/none"); got != nil {
		t.Errorf("Orgs(unknown) = %v", got)
	}
}

func TestIndexSwapsSnapshotsAtomically(t *testing.T) {
	var idx Index
	if _, ok := idx.Lookup(circl); ok {
		t.Fatal("empty index knows an org")
	}
	first := Build([]*v1alpha1.OrgTrustPolicy{policy("medium", 0, "c", false, circl)}, inline)
	idx.Store(first)
	if p, ok := idx.Lookup(circl); !ok || p.Key != "sec/medium" {
		t.Fatalf("Lookup after Store = %+v, %v", p, ok)
	}
	second := Build([]*v1alpha1.OrgTrustPolicy{policy("high", 0, "a", true, circl)}, inline)
	if prev := idx.Swap(second); prev != first {
		t.Fatal("Swap did not return the previous snapshot")
	}
	if p, _ := idx.Lookup(circl); p.Key != "sec/high" {
		t.Fatalf("Lookup after Swap = %+v", p)
	}
	if idx.Load() != second {
		t.Fatal("Load does not return the stored snapshot")
	}
	idx.Store(nil)
	if _, ok := idx.Lookup(circl); ok {
		t.Fatal("Store(nil) did not empty the index")
	}
}

func TestDiffListsOrgsWhoseCurationChanges(t *testing.T) {
	medium := policy("medium", 0, "c", false, circl, partner, sub)
	old := Build([]*v1alpha1.OrgTrustPolicy{medium}, inline)
	cases := []struct {
		name string
		new  []*v1alpha1.OrgTrustPolicy
		want []string
	}{
		{"nothing changed", []*v1alpha1.OrgTrustPolicy{medium}, nil},
		{"org promoted to a publishing policy", []*v1alpha1.OrgTrustPolicy{medium, policy("high", 10, "a", true, partner)}, []string{partner}},
		{"new org added", []*v1alpha1.OrgTrustPolicy{policy("medium", 0, "c", false, circl, partner, sub, nobody)}, []string{nobody}},
		{"org removed is not re-curated", []*v1alpha1.OrgTrustPolicy{policy("medium", 0, "c", false, circl, partner)}, nil},
		{"policy renamed with the same tags is not re-curated", []*v1alpha1.OrgTrustPolicy{policy("renamed", 0, "c", false, circl, partner, sub)}, nil},
		{"publish switched on re-curates every org of the policy", []*v1alpha1.OrgTrustPolicy{policy("medium", 0, "c", true, circl, partner, sub)}, []string{partner, circl, sub}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(old, Build(tc.new, inline))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Diff = %v, want %v", got, tc.want)
			}
		})
	}
	if got := Diff(nil, old); len(got) != 3 {
		t.Errorf("Diff from nothing = %v, want every org", got)
	}
	if got := Diff(old, nil); got != nil {
		t.Errorf("Diff to nothing = %v, want nil", got)
	}
}

func TestUUIDKeyRoundTrip(t *testing.T) {
	for _, s := range []string{circl, strings.ToUpper(partner), nobody} {
		k, ok := parseUUID(s)
		if !ok || k.String() != strings.ToLower(s) {
			t.Errorf("parseUUID(%s) → %s, %v", s, k, ok)
		}
	}
	for _, bad := range []string{"", circl[:35], circl + "0", strings.Replace(circl, "-", "x", 1), strings.Replace(circl, "5", "g", 1)} {
		if _, ok := parseUUID(bad); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

// orgsFromLists splits n organisations over a high and a medium policy.
func orgsFromLists(n int) (func(*v1alpha1.OrgTrustPolicy) []trust.Org, []*v1alpha1.OrgTrustPolicy, []string) {
	ps := []*v1alpha1.OrgTrustPolicy{policy("high", 100, "a", true), policy("medium", 50, "c", false)}
	orgs := make([]string, n)
	split := map[string][]trust.Org{}
	for i := range orgs {
		orgs[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		k := "sec/medium"
		if i < n/2 {
			k = "sec/high"
		}
		split[k] = append(split[k], trust.Org{UUID: orgs[i]})
	}
	return func(p *v1alpha1.OrgTrustPolicy) []trust.Org { return split[trust.Key(p)] }, ps, orgs
}

func BenchmarkLookup100k(b *testing.B) {
	orgsOf, ps, orgs := orgsFromLists(100_000)
	var idx Index
	idx.Store(Build(ps, orgsOf))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := idx.Lookup(orgs[i%len(orgs)]); !ok {
			b.Fatal("org not found")
		}
	}
}

func BenchmarkLookupUntrusted(b *testing.B) {
	orgsOf, ps, _ := orgsFromLists(100_000)
	var idx Index
	idx.Store(Build(ps, orgsOf))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := idx.Lookup(nobody); ok {
			b.Fatal("untrusted org found")
		}
	}
}

func BenchmarkBuild100k(b *testing.B) {
	orgsOf, ps, _ := orgsFromLists(100_000)
	b.ReportAllocs()
	for b.Loop() {
		if s := Build(ps, orgsOf); s.Len() != 100_000 {
			b.Fatalf("Len = %d", s.Len())
		}
	}
}
