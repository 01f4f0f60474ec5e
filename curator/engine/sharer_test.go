package engine

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/curator/sources"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const (
	orgHub   = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5" // a community hub: trusted as a sharer only
	orgOther = "7c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e" // another partner, trusted nowhere
)

var hubOrg = misptest.Org{Name: "HUB", UUID: orgHub}

const gradeB = `admiralty-scale:source-reliability="b"`

func sharerPolicy(name string, prio int32, grade string, publish bool, sharer string, servers ...string) *v1alpha1.OrgTrustPolicy {
	p := testPolicy(name, prio, grade, publish)
	p.Spec.SharingOrganisations = []v1alpha1.SharingOrganisation{{UUID: sharer, Servers: servers}}
	return p
}

// sharerEnv is newEnv with the source table (curator/sources) loaded from the double
// after setup ran, and policies as the index; MISP statistics are reset after the load.
func sharerEnv(t *testing.T, setup func(*misptest.Server), policies ...*v1alpha1.OrgTrustPolicy) *env {
	t.Helper()
	var tab *sources.Table
	ev := newEnv(t, envConfig{fakeClock: true, opts: func(o *Options) {
		tab = sources.New(sources.Options{Lister: o.MISP.(*misp.Client), MinRefresh: time.Hour})
		o.Sharers = tab
	}})
	ev.idx.Store(index.Build(policies, inlineOrgs))
	if setup != nil {
		setup(ev.srv)
	}
	if _, err := tab.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev.srv.ResetStats()
	return ev
}

// push delivers a pushed event's real sequence and ends its debounce.
func (ev *env) push(e misptest.Event) misptest.Event {
	out := ev.srv.SimulatePush(e)
	ev.deliver(nil)
	ev.advance(5 * time.Second)
	return out
}

// pull delivers a pull's real sequence through server link id.
func (ev *env) pull(e misptest.Event, server string) misptest.Event {
	out := ev.srv.SimulatePullWith(e, misptest.PullOptions{ServerID: server})
	ev.deliver(nil)
	return out
}

func addHubLinks(srv *misptest.Server) {
	srv.AddServer("hub", hubOrg)                                        // id 1
	srv.AddServer("hub (second site)", hubOrg)                          // id 2
	srv.AddServer("other", misptest.Org{Name: "OTHER", UUID: orgOther}) // id 3
}

func TestSharerTrustedEventsGetTheSharerPolicy(t *testing.T) {
	policies := []*v1alpha1.OrgTrustPolicy{
		testPolicy("high", 100, "a", true, orgHigh),
		testPolicy("medium", 50, "c", false, orgMedium),
		sharerPolicy("hub", 10, "b", false, orgHub),
	}
	stranger := partnerEvent(orgUntrusted, true, tlpGreen)
	wantHub := []string{gradeB + " local", "tlp:green global"}
	cases := []struct {
		name string
		run  func(ev *env) misptest.Event
	}{
		{"pushed by the hub (owner org), creator untrusted", func(ev *env) misptest.Event {
			e := stranger
			e.Org = hubOrg
			return ev.push(e)
		}},
		{"pulled through the hub's server link, creator untrusted", func(ev *env) misptest.Event {
			return ev.pull(stranger, "1")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := sharerEnv(t, addHubLinks, policies...)
			e := tc.run(ev)
			o := ev.outcome()
			if o.Err != nil || o.Policy != "sec/hub" || o.Via != trust.ViaSharer || o.SharerUUID != orgHub || !o.Tagged {
				t.Fatalf("outcome %+v", o)
			}
			// The feed said everything (row, tags, misp_json): one attach, no read.
			if o.Calls != 1 || ev.calls() != 1 || ev.srv.Calls("/organisations/index") != 0 {
				t.Errorf("calls: outcome %d, MISP saw %v; want the attach only", o.Calls, ev.srv.CallsByRoute())
			}
			got, _ := ev.srv.Event(e.UUID)
			if !reflect.DeepEqual(tagState(got), wantHub) {
				t.Errorf("tags %q, want %q", tagState(got), wantHub)
			}
		})
	}
}

// A rule narrowed to server 2 curates the hub's events pulled through link 2 only;
// the same hub pulled through link 1, or pushing, is not its sharer.
func TestServerNarrowedSharerRule(t *testing.T) {
	policies := []*v1alpha1.OrgTrustPolicy{sharerPolicy("hub-site-2", 0, "b", false, orgHub, "2")}
	t.Run("through server 2: curated", func(t *testing.T) {
		ev := sharerEnv(t, addHubLinks, policies...)
		ev.pull(partnerEvent(orgUntrusted, true, tlpGreen), "2")
		if o := ev.outcome(); o.Policy != "sec/hub-site-2" || o.Via != trust.ViaSharer || !o.Tagged {
			t.Fatalf("outcome %+v", o)
		}
	})
	t.Run("through server 1: untrusted, no call", func(t *testing.T) {
		ev := sharerEnv(t, addHubLinks, policies...)
		ev.pull(partnerEvent(orgUntrusted, true, tlpGreen), "1")
		if o := ev.outcome(); o.Policy != "" || o.Class != ClassUntrustedPulled || o.Calls != 0 || ev.calls() != 0 {
			t.Fatalf("outcome %+v, calls %v", o, ev.srv.CallsByRoute())
		}
	})
	t.Run("pushed by the hub: untrusted, no call", func(t *testing.T) {
		ev := sharerEnv(t, addHubLinks, policies...)
		e := partnerEvent(orgUntrusted, true, tlpGreen)
		e.Org = hubOrg
		ev.push(e)
		if o := ev.outcome(); o.Policy != "" || o.Class != ClassUntrustedPushed || o.Calls != 0 || ev.calls() != 0 {
			t.Fatalf("outcome %+v, calls %v", o, ev.srv.CallsByRoute())
		}
	})
}

// design.md §3 holds with sharer rules: an event whose creator and sharer are both
// untrusted costs no MISP call, in the real pull and push sequences of the double.
func TestUntrustedCreatorAndSharerCostNoCall(t *testing.T) {
	policies := []*v1alpha1.OrgTrustPolicy{
		testPolicy("high", 100, "a", true, orgHigh),
		sharerPolicy("hub", 10, "b", false, orgHub),
	}
	cases := []struct {
		name  string
		run   func(ev *env)
		class Class
	}{
		{"pull through another partner's link", func(ev *env) {
			ev.pull(partnerEvent(orgUntrusted, true, tlpGreen, incompleteTag), "3")
		}, ClassUntrustedPulled},
		{"pull through another partner's link, unpublished (no misp_json)", func(ev *env) {
			ev.pull(partnerEvent(orgUntrusted, false, tlpGreen), "3")
		}, ClassUntrustedPulled},
		{"push by another partner", func(ev *env) {
			e := partnerEvent(orgUntrusted, true, tlpGreen)
			e.Org = misptest.Org{UUID: orgOther}
			ev.push(e)
		}, ClassUntrustedPushed},
		{"push by the untrusted creator itself, unpublished", func(ev *env) {
			ev.push(partnerEvent(orgUntrusted, false, tlpGreen))
		}, ClassUntrustedPushed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := sharerEnv(t, addHubLinks, policies...)
			tc.run(ev)
			o := ev.outcome()
			ev.idle()
			if o.Class != tc.class || o.Policy != "" || o.Calls != 0 || ev.calls() != 0 {
				t.Fatalf("outcome %+v, MISP saw %v; want no call", o, ev.srv.CallsByRoute())
			}
		})
	}
}

// Precedence through the engine: trust.Match ranks a creator rule and a sharer rule by
// priority, then grade, then name — the same order as between two creator rules.
func TestCreatorAndSharerPrecedence(t *testing.T) {
	cases := []struct {
		name     string
		hubPrio  int32
		want     string
		via      trust.Via
		wantTags []string
	}{
		{"creator's policy has the higher priority", 10, "sec/high", trust.ViaCreator, curatedHigh},
		{"the hub's sharer policy has the higher priority", 200, "sec/hub", trust.ViaSharer, []string{gradeB + " local", "tlp:green global", incomplete + " global"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := sharerEnv(t, addHubLinks,
				testPolicy("high", 100, "a", true, orgHigh),
				sharerPolicy("hub", tc.hubPrio, "b", false, orgHub))
			e := partnerEvent(orgHigh, true, tlpGreen, incompleteTag)
			e.Org = hubOrg
			e = ev.push(e)
			o := ev.outcome()
			if o.Err != nil || o.Policy != tc.want || o.Via != tc.via {
				t.Fatalf("outcome %+v, want %s via %s", o, tc.want, tc.via)
			}
			got, _ := ev.srv.Event(e.UUID)
			if !reflect.DeepEqual(tagState(got), tc.wantTags) {
				t.Errorf("tags %q, want %q", tagState(got), tc.wantTags)
			}
		})
	}
}

// A forced read (no hint: the row message was lost) decides by the owner org that
// /events/index carries.
func TestSharerFromTheMetadataRead(t *testing.T) {
	ev := sharerEnv(t, addHubLinks, sharerPolicy("hub", 10, "b", false, orgHub))
	e := partnerEvent(orgUntrusted, true, tlpGreen)
	e.Org = hubOrg
	e = ev.srv.SimulatePush(e)
	ev.skip()
	ev.eng.Enqueue(e.UUID, Hint{})
	o := ev.outcome()
	if o.Err != nil || o.Policy != "sec/hub" || o.Via != trust.ViaSharer || o.Calls != 2 {
		t.Fatalf("outcome %+v, want the hub's policy after one read and one attach", o)
	}
}

// captureLists answers the table's two reads with the organisations and server link of
// the sync captures (sync/api/56, 32), without a network.
type captureLists struct{}

func (captureLists) Organisations(context.Context) ([]misp.Organisation, error) {
	return []misp.Organisation{{ID: "1", UUID: "997004a6-e769-4ab8-b467-a1ca84cf0666", Local: true},
		{ID: "2", UUID: orgHigh}, {ID: "3", UUID: orgMedium}}, nil
}

func (captureLists) ServerLinks(context.Context) ([]misp.ServerLink, error) {
	return []misp.ServerLink{{ID: "1", OrgID: "1", RemoteOrgUUID: orgHigh}}, nil
}

// BenchmarkUntrustedPullWithSharers is BenchmarkUntrustedPull while a policy has a sharer
// rule: the sharer (the server link's remote org) is resolved from memory, no MISP call.
func BenchmarkUntrustedPullWithSharers(b *testing.B) {
	idx := &index.Index{}
	idx.Store(index.Build([]*v1alpha1.OrgTrustPolicy{
		testPolicy("high", 100, "a", true, orgMedium), sharerPolicy("hub", 10, "b", false, orgHub),
	}, inlineOrgs))
	tab := sources.New(sources.Options{Lister: captureLists{}})
	if _, err := tab.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchUntrustedPulls(b, Options{Index: idx, Sharers: tab}, func(o Outcome) {
		if o.SharerUUID != orgHigh {
			b.Errorf("sharer %q, want the server link's remote org", o.SharerUUID)
		}
	})
}
