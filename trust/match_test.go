package trust

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

const hub = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5"

func TestMatchPrecedenceTable(t *testing.T) {
	member := Candidate{Key: "sec/member", SourceReliability: "b", Orgs: []Org{org(circl)}}
	hubLow := Candidate{Key: "sec/hub", Priority: 10, SourceReliability: "c", Sharers: []Sharer{{UUID: hub}}}
	hubEqual := Candidate{Key: "sec/hub", SourceReliability: "c", Sharers: []Sharer{{UUID: hub}}}
	viaServer2 := Candidate{Key: "sec/pulled-from-2", Priority: 20, SourceReliability: "a", Sharers: []Sharer{{UUID: hub, Servers: []string{"2"}}}}
	both := Candidate{Key: "sec/both", SourceReliability: "d", Orgs: []Org{org(hub)}, Sharers: []Sharer{{UUID: hub}}}
	cases := []struct {
		name  string
		cands []Candidate
		src   Source
		want  string
		via   Via
	}{
		{"creator rule only: today's behaviour", []Candidate{member}, Source{Creator: circl, Sharer: hub}, "sec/member", ViaCreator},
		{"sharer rule only: trusted partner, unknown creator", []Candidate{hubEqual}, Source{Creator: other, Sharer: hub}, "sec/hub", ViaSharer},
		{"both match, sharer policy has the higher priority", []Candidate{member, hubLow}, Source{Creator: circl, Sharer: hub}, "sec/hub", ViaSharer},
		{"both match at equal priority: the better grade wins", []Candidate{hubEqual, member}, Source{Creator: circl, Sharer: hub}, "sec/member", ViaCreator},
		{"server narrowing: pulled through server 2", []Candidate{hubEqual, viaServer2}, Source{Creator: other, Sharer: hub, Server: "2"}, "sec/pulled-from-2", ViaSharer},
		{"server narrowing: pulled through server 1 does not match it", []Candidate{hubEqual, viaServer2}, Source{Creator: other, Sharer: hub, Server: "1"}, "sec/hub", ViaSharer},
		{"server narrowing: a push names no server", []Candidate{viaServer2}, Source{Creator: other, Sharer: hub}, "", ""},
		{"one policy matching by both rules reports creator", []Candidate{both}, Source{Creator: hub, Sharer: hub}, "sec/both", ViaCreator},
		{"unknown sharer never matches", []Candidate{hubEqual}, Source{Creator: other}, "", ""},
		{"nothing matches", []Candidate{member, hubEqual}, Source{Creator: other, Sharer: third}, "", ""},
		{"UUIDs in any case", []Candidate{hubEqual}, Source{Creator: other, Sharer: "2B6F0C1E-3D4A-4C5B-8E9F-A0B1C2D3E4F5"}, "sec/hub", ViaSharer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][]Candidate{tc.cands, reversed(tc.cands)} {
				w, via := Match(order, tc.src)
				got := ""
				if w >= 0 {
					got = order[w].Key
				}
				if got != tc.want || via != tc.via {
					t.Fatalf("Match = %q via %q, want %q via %q", got, via, tc.want, tc.via)
				}
			}
		})
	}
}

func reversed(c []Candidate) []Candidate {
	out := make([]Candidate, len(c))
	for i := range c {
		out[len(c)-1-i] = c[i]
	}
	return out
}

func TestOverlapsNameBothPoliciesAndTheWinner(t *testing.T) {
	high := Candidate{Key: "sec/high", Priority: 100, SourceReliability: "a", Orgs: []Org{org(circl), org(other)}}
	hubs := Candidate{Key: "sec/hubs", SourceReliability: "c", Sharers: []Sharer{{UUID: circl}, {UUID: hub}}}
	got := Overlaps([]Candidate{high, hubs})
	ov := Overlap{OrgUUID: circl, Creator: "sec/high", Sharer: "sec/hubs", Winner: "sec/high"}
	want := map[string][]Overlap{"sec/high": {ov}, "sec/hubs": {ov}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Overlaps = %+v, want %+v", got, want)
	}
	if s := ov.String(); s != circl+" is a creator in sec/high and a sharer in sec/hubs: its own shared events go to sec/high" {
		t.Errorf("String = %q", s)
	}
	if got := Overlaps([]Candidate{high, {Key: "sec/x", SourceReliability: "a", Sharers: []Sharer{{UUID: hub}}}}); len(got) != 0 {
		t.Errorf("no common organisation, got %+v", got)
	}
}

func TestEffectiveSharersAndResolveSharers(t *testing.T) {
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "hub"}, Spec: v1alpha1.OrgTrustPolicySpec{
		SharingOrganisations: []v1alpha1.SharingOrganisation{{UUID: "2B6F0C1E-3D4A-4C5B-8E9F-A0B1C2D3E4F5", Name: "Hub", Servers: []string{"3", "1", "3"}}, {UUID: circl}},
	}}
	got, problems := EffectiveSharers(p)
	want := []Sharer{{UUID: hub, Name: "Hub", Servers: []string{"1", "3"}}, {UUID: circl}}
	if !reflect.DeepEqual(got, want) || len(problems) != 0 {
		t.Fatalf("EffectiveSharers = %+v %v, want %+v", got, problems, want)
	}
	if c := SharerComment(got[0]); c != "Hub (via server 1, 3)" {
		t.Errorf("SharerComment = %q", c)
	}
	res := ResolveSharers([]Candidate{{Key: "sec/a", SourceReliability: "c", Sharers: want}, {Key: "sec/b", SourceReliability: "b", Sharers: []Sharer{{UUID: hub}}}})
	if res.Winner[hub] != "sec/b" || res.Winner[circl] != "sec/a" || len(res.Losses["sec/a"]) != 1 {
		t.Errorf("ResolveSharers = %+v", res)
	}
}
