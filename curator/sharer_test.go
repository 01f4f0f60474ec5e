package curator

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const hubOrg = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5"

// The whole pipeline with a sharer policy: the curator reads the double's organisations
// and server links, then curates a pull through the hub's link and a push by the hub
// (both created by an untrusted org) with the hub policy, and a pull through another
// partner's link costs no call.
func TestSharerPolicyThroughThePipeline(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	hub := e.misp.AddOrg("HUB", hubOrg)
	hubLink := e.misp.AddServer("hub", hub)
	otherLink := e.misp.AddServer("other", e.misp.AddOrg("OTHER", ""))
	e.instance("misp", nil)
	e.create(&v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "hub"},
		Spec: v1alpha1.OrgTrustPolicySpec{InstanceRef: v1alpha1.InstanceReference{Name: "misp"}, SourceReliability: "b",
			SharingOrganisations: []v1alpha1.SharingOrganisation{{UUID: hubOrg, Name: "HUB"}}}})
	e.start(e.config())
	e.waitSubscribed(1)

	tagB := trust.SourceReliabilityTag("b")
	pulled := e.misp.SimulatePullWith(pulledEvent(untrustedOrg, true, "tlp:green"), misptest.PullOptions{ServerID: hubLink.ID})
	pushed := e.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: untrustedOrg}, Org: hub, Published: true, Attributes: 1})
	other := e.misp.SimulatePullWith(pulledEvent(untrustedOrg, true, "tlp:green"), misptest.PullOptions{ServerID: otherLink.ID})
	eventually(t, "the event pulled through the hub's link tagged", func() (bool, string) { return e.curated(pulled.UUID, false, tagB) })
	eventually(t, "the event pushed by the hub tagged", func() (bool, string) { return e.curated(pushed.UUID, false, tagB) })
	time.Sleep(500 * time.Millisecond)
	if reqs := e.requestsAbout(other.UUID); len(reqs) != 0 {
		t.Errorf("event pulled through another partner's link cost %d calls, want 0", len(reqs))
	}
	if n := e.misp.Calls("/organisations/index"); n != 1 {
		t.Errorf("organisations read %d times, want once at the start", n)
	}
}
