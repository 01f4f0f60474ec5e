package catchup

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/sources"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

const hubOrg = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5"

// Catch-up matches pushed events by sharer through their owner org; pulled events are
// owned by the server link's org and no search column names their server, so they are
// matched by creator only (the feed matches them by sharer).
func TestCatchUpMatchesPushedEventsBySharer(t *testing.T) {
	var tab *sources.Table
	h := newHarness(t, func(o *Options) { o.Sharers = sharersOf(&tab) })
	tab = sources.New(sources.Options{Lister: h.client})
	hub := h.misp.AddOrg("HUB", hubOrg)
	h.misp.AddServer("hub", hub)
	sharer := policyObj("hub", "b", false)
	sharer.Spec.SharingOrganisations = []v1alpha1.SharingOrganisation{{UUID: hubOrg}}
	h.idx.Store(build(policyObj("high", "a", true, highOrg), sharer))
	if _, err := tab.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	pushed := h.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: untrustedOrg}, Org: hub, Locked: true,
		Published: true, Timestamp: h.clk.Now().Add(-time.Hour), Attributes: 1})
	// Owned by the host org, the org of the hub's server link: a pull.
	h.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: untrustedOrg}, Locked: true,
		Published: true, Timestamp: h.clk.Now().Add(-time.Hour), Attributes: 1})
	trusted := h.event(highOrg, time.Hour, true)

	h.start()
	h.nextPass()
	got := fmt.Sprint(uuids(h.rec.take()))
	want := fmt.Sprint(sortedStrings(pushed.UUID, trusted))
	if got != want {
		t.Fatalf("enqueued %s, want %s (the hub's push and the trusted creator's event)", got, want)
	}
}

func sortedStrings(s ...string) []string {
	sort.Strings(s)
	return s
}

// sharersOf lets the table be built after the harness (it needs the harness's client).
type lateTable struct{ t **sources.Table }

func sharersOf(t **sources.Table) lateTable { return lateTable{t} }

func (l lateTable) Sharer(ctx context.Context, owner, server string) (string, bool, int) {
	return (*l.t).Sharer(ctx, owner, server)
}
