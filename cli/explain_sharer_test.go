package cli

import (
	"testing"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const hubPolicy = `apiVersion: misptrust.io/v1alpha1
kind: OrgTrustPolicy
metadata:
  name: hub
spec:
  instanceRef: {name: misp-prod}
  priority: 200
  sourceReliability: b
  sharingOrganisations:
    - {uuid: 2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5, name: HUB}
`

// explain decides with trust.Match too: an event the hub pushed goes to the hub's sharer
// policy (priority 200) even when its creator is trusted by high (100); an untrusted
// creator pushed by the hub is curated; a pull is matched by creator only (no column
// names its server).
func TestExplainMatchesSharers(t *testing.T) {
	w := newWorld(t, "")
	seedDemo(t, w.misp)
	w.applyYAML(samplePolicies(t) + "\n---\n" + hubPolicy)
	hub := w.misp.AddOrg("HUB", "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5")
	w.misp.AddServer("hub", hub)
	ns := w.ns

	byHub := w.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: orgPartnerHigh, Name: "PARTNER-HIGH"}, Org: hub, Published: true})
	strangerByHub := w.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: orgUnknownFeed, Name: "UNKNOWN-FEED"}, Org: hub, Published: true})
	pulled := w.misp.SimulatePullWith(misptest.Event{Orgc: misptest.Org{UUID: orgUnknownFeed, Name: "UNKNOWN-FEED"}, Published: true},
		misptest.PullOptions{ServerID: "1"})
	cases := []struct {
		name   string
		uuid   string
		winner string
		via    trust.Via
		claims map[string]trust.Via
	}{
		{"trusted creator pushed by the hub: the hub's higher priority wins", byHub.UUID, ns + "/hub", trust.ViaSharer,
			map[string]trust.Via{ns + "/high": trust.ViaCreator, ns + "/hub": trust.ViaSharer}},
		{"untrusted creator pushed by the hub", strangerByHub.UUID, ns + "/hub", trust.ViaSharer,
			map[string]trust.Via{ns + "/hub": trust.ViaSharer}},
		{"pulled through the hub's link: no sharer known to explain", pulled.UUID, "", "", map[string]trust.Via{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res explainResult
			w.runJSON(&res, ExitOK, "explain", tc.uuid, "--instance", "misp-prod")
			got := map[string]trust.Via{}
			for _, c := range res.Policies {
				got[c.Policy] = c.Via
			}
			if res.Winner != tc.winner || res.Via != tc.via || len(got) != len(tc.claims) {
				t.Fatalf("winner %q via %q, claims %v; want %q via %q, %v", res.Winner, res.Via, got, tc.winner, tc.via, tc.claims)
			}
			for k, v := range tc.claims {
				if got[k] != v {
					t.Fatalf("claims %v, want %v", got, tc.claims)
				}
			}
			if n := w.misp.WriteCalls(); n != 0 {
				t.Fatal("explain wrote to MISP")
			}
		})
	}
}
