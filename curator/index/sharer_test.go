package index

import (
	"testing"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

const hub = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5"

func sharing(p *v1alpha1.OrgTrustPolicy, uuid string, servers ...string) *v1alpha1.OrgTrustPolicy {
	p.Spec.SharingOrganisations = append(p.Spec.SharingOrganisations, v1alpha1.SharingOrganisation{UUID: uuid, Servers: servers})
	return p
}

// The index answers what trust.Match decides, for every source: the curator and the
// controller/plan apply one precedence rule.
func TestLookupSourceAgreesWithTrustMatch(t *testing.T) {
	policies := []*v1alpha1.OrgTrustPolicy{
		policy("member", 0, "b", false, circl),
		sharing(policy("hub", 10, "c", false), hub),
		sharing(policy("via-2", 20, "a", true), hub, "2"),
		sharing(policy("partner", 0, "d", false, partner), partner),
	}
	snap := Build(policies, inline)
	var cands []trust.Candidate
	for _, p := range policies {
		sh, _ := trust.EffectiveSharers(p)
		cands = append(cands, trust.Candidate{Key: trust.Key(p), Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability, Orgs: inline(p), Sharers: sh})
	}
	cases := []struct {
		name string
		src  trust.Source
		want string
		via  trust.Via
	}{
		{"trusted creator, no sharer known", trust.Source{Creator: circl}, "sec/member", trust.ViaCreator},
		{"member's event re-shared by the hub: hub's higher priority wins", trust.Source{Creator: circl, Sharer: hub}, "sec/hub", trust.ViaSharer},
		{"pushed by the hub, creator untrusted", trust.Source{Creator: nobody, Sharer: hub}, "sec/hub", trust.ViaSharer},
		{"pulled through server 2: the narrowed rule wins", trust.Source{Creator: circl, Sharer: hub, Server: "2"}, "sec/via-2", trust.ViaSharer},
		{"pulled through server 1", trust.Source{Creator: nobody, Sharer: hub, Server: "1"}, "sec/hub", trust.ViaSharer},
		{"creator and sharer are the same policy", trust.Source{Creator: partner, Sharer: partner}, "sec/partner", trust.ViaCreator},
		{"both untrusted", trust.Source{Creator: nobody, Sharer: sub}, "", ""},
		{"upper-case UUIDs", trust.Source{Creator: "FFFFFFFF-0000-4000-8000-00000000FFFF", Sharer: "2B6F0C1E-3D4A-4C5B-8E9F-A0B1C2D3E4F5"}, "sec/hub", trust.ViaSharer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, via, ok := snap.LookupSource(tc.src)
			if (p.Key != tc.want) || via != tc.via || ok != (tc.want != "") {
				t.Fatalf("LookupSource = %q via %q (%t), want %q via %q", p.Key, via, ok, tc.want, tc.via)
			}
			w, mvia := trust.Match(cands, tc.src)
			mk := ""
			if w >= 0 {
				mk = cands[w].Key
			}
			if mk != p.Key || mvia != via {
				t.Fatalf("trust.Match = %q via %q, index = %q via %q", mk, mvia, p.Key, via)
			}
		})
	}
	if !snap.HasSharers() || Build(policies[:1], inline).HasSharers() {
		t.Error("HasSharers wrong")
	}
}

func BenchmarkLookupSourceUntrusted(b *testing.B) {
	snap := Build([]*v1alpha1.OrgTrustPolicy{sharing(policy("hub", 0, "c", false, circl), hub)}, inline)
	src := trust.Source{Creator: nobody, Sharer: sub, Server: "1"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, ok := snap.LookupSource(src); ok {
			b.Fatal("trusted")
		}
	}
}
