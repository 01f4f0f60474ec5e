package cli

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// extraPolicy lists CIRCL too, at high's priority with a lower grade: high wins it.
const extraPolicy = `apiVersion: misptrust.io/v1alpha1
kind: OrgTrustPolicy
metadata:
  name: extra
spec:
  instanceRef: {name: misp-prod}
  priority: 100
  sourceReliability: b
  organisations:
    - {uuid: 5cf66e53-b5f8-43e7-be9a-49880a3b4631, name: CIRCL}
`

// explain for a pulled, a pushed, an untrusted and a conflicting-org event: the winner
// and why, the tags, and the calls — which must be exactly the calls the real curation
// engine then makes on the MISP double; afterwards every trusted one is settled.
func TestExplainMatchesWhatTheEngineDoes(t *testing.T) {
	w := newWorld(t, "")
	seedDemo(t, w.misp)
	w.applyYAML(samplePolicies(t) + "\n---\n" + extraPolicy)
	ns := w.ns
	incomplete := trust.TagWorkflowIncomplete

	pulled := w.misp.SimulatePull(misptest.Event{Orgc: misptest.Org{UUID: orgPartnerHigh, Name: "PARTNER-HIGH"}, Published: true,
		Tags: []misptest.EventTag{{Name: incomplete}, {Name: "tlp:green"}}})
	pushed := w.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: orgPartnerMedium, Name: "PARTNER-MEDIUM"}})
	untrusted := w.misp.SimulatePull(misptest.Event{Orgc: misptest.Org{UUID: orgUnknownFeed, Name: "UNKNOWN-FEED"}, Published: true})
	conflicting := w.misp.SimulatePull(misptest.Event{Orgc: misptest.Org{UUID: orgCIRCL, Name: "CIRCL"}, Published: true})
	local := w.misp.AddEvent(misptest.Event{Orgc: misptest.Org{UUID: orgCIRCL, Name: "CIRCL"}, Published: true})

	claim := func(policy string, prio int32, grade string, publish, wins bool, why string) policyClaim {
		p := &v1alpha1.OrgTrustPolicy{Spec: v1alpha1.OrgTrustPolicySpec{SourceReliability: grade, Publish: publish}}
		return policyClaim{Policy: ns + "/" + policy, Priority: prio, SourceReliability: grade, Publish: publish, Tags: trust.Tags(p), Wins: wins, Why: why, Via: trust.ViaCreator}
	}
	publish := func(e misptest.Event) string { return "/events/publish/" + e.UUID }
	cases := []struct {
		name      string
		event     misptest.Event
		ref       string
		policies  []policyClaim
		winner    string
		winnerWhy string
		local     []string
		global    []string
		calls     []string // "METHOD path", in order
		state     string
	}{
		{name: "pulled, high trust, with the partner's incomplete tag", event: pulled, ref: pulled.UUID,
			policies: []policyClaim{claim("high", 100, "a", true, true, "")}, winner: ns + "/high", winnerWhy: "the only policy listing the organisation",
			global: []string{incomplete, "tlp:green"}, local: []string{},
			calls: []string{"POST /tags/attachTagToObject", "POST /tags/removeTagFromObject", "POST " + publish(pulled)}, state: statePending},
		{name: "pushed, medium trust, by its numeric id", event: pushed, ref: pushed.ID,
			policies: []policyClaim{claim("medium", 50, "c", false, true, "")}, winner: ns + "/medium", winnerWhy: "the only policy listing the organisation",
			global: []string{}, local: []string{}, calls: []string{"POST /tags/attachTagToObject"}, state: statePending},
		{name: "untrusted", event: untrusted, ref: untrusted.UUID, policies: []policyClaim{}, global: []string{}, local: []string{}, calls: []string{}, state: stateNotCurated},
		{name: "conflicting organisation: high wins on the grade", event: conflicting, ref: conflicting.UUID,
			policies: []policyClaim{claim("extra", 100, "b", false, false, "same priority 100, grade a before b"), claim("high", 100, "a", true, true, "")},
			winner:   ns + "/high", winnerWhy: "over " + ns + "/extra: same priority 100, grade a before b",
			global: []string{}, local: []string{}, calls: []string{"POST /tags/attachTagToObject"}, state: statePending},
		{name: "created on this MISP", event: local, ref: local.UUID, policies: []policyClaim{claim("extra", 100, "b", false, false, "same priority 100, grade a before b"), claim("high", 100, "a", true, true, "")},
			winner: ns + "/high", winnerWhy: "over " + ns + "/extra: same priority 100, grade a before b", global: []string{}, local: []string{}, calls: []string{}, state: stateNotCurated},
	}

	// The real engine, with the instance's trust index built as the curator builds it.
	var list v1alpha1.OrgTrustPolicyList
	if err := env.Client.List(w.ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var pols []*v1alpha1.OrgTrustPolicy
	for i := range list.Items {
		pols = append(pols, &list.Items[i])
	}
	var idx index.Index
	idx.Store(index.Build(pols, func(p *v1alpha1.OrgTrustPolicy) []trust.Org {
		orgs, _, _ := trust.EffectiveOrgs(p, nil)
		return orgs
	}))
	outcomes := make(chan engine.Outcome, 10)
	eng := engine.New(engine.Options{Instance: ns + "/misp-prod", Index: &idx, MISP: mustClient(t, w.misp), OnOutcome: func(o engine.Outcome) { outcomes <- o }})
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	go eng.Run(ctx)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.misp.ResetStats()
			var res explainResult
			w.runJSON(&res, ExitOK, "explain", tc.ref, "--instance", "misp-prod")
			if res.Event.UUID != tc.event.UUID || res.Event.OrgUUID != tc.event.Orgc.UUID || res.Event.OrgName != tc.event.Orgc.Name {
				t.Errorf("event %+v, want %s of %s (%s)", res.Event, tc.event.UUID, tc.event.Orgc.UUID, tc.event.Orgc.Name)
			}
			if !reflect.DeepEqual(res.Policies, tc.policies) || res.Winner != tc.winner || res.WinnerWhy != tc.winnerWhy {
				t.Errorf("policies %+v\nwinner %q (%s)\nwant %+v\n%q (%s)", res.Policies, res.Winner, res.WinnerWhy, tc.policies, tc.winner, tc.winnerWhy)
			}
			if !reflect.DeepEqual(res.GlobalTags, tc.global) || !reflect.DeepEqual(res.LocalTags, tc.local) {
				t.Errorf("tags: local %q global %q, want %q %q", res.LocalTags, res.GlobalTags, tc.local, tc.global)
			}
			var calls []string
			for _, c := range res.Calls {
				calls = append(calls, c.Method+" "+c.Path)
			}
			if calls == nil {
				calls = []string{}
			}
			if !reflect.DeepEqual(calls, tc.calls) || res.State != tc.state {
				t.Fatalf("calls %q, state %q (%s); want %q, %q", calls, res.State, res.StateDetail, tc.calls, tc.state)
			}
			if n := w.misp.WriteCalls(); n != 0 {
				t.Fatalf("explain wrote to MISP:\n%s", requestLog(w.misp))
			}
			t.Logf("explain: %d MISP request(s) %v", len(w.misp.Requests()), w.misp.CallsByRoute())
			if tc.state != statePending {
				return
			}

			// The engine curates the event: its writes are the calls explain announced.
			w.misp.ResetStats()
			eng.Enqueue(tc.event.UUID, engine.Hint{Source: engine.SourceCatchUp})
			select {
			case o := <-outcomes:
				if o.Err != nil {
					t.Fatalf("curation failed: %v", o.Err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the engine did not curate the event")
			}
			var made []string
			for _, r := range w.misp.Requests() {
				if r.Route != "/events/index" {
					made = append(made, r.Method+" "+r.Path)
				}
			}
			if !reflect.DeepEqual(made, tc.calls) {
				t.Fatalf("the engine made %q, explain announced %q", made, tc.calls)
			}
			w.runJSON(&res, ExitOK, "explain", tc.ref, "--instance", "misp-prod")
			if res.State != stateSettled || len(res.Calls) != 0 {
				t.Fatalf("after the curation: state %q, calls %+v", res.State, res.Calls)
			}
			for _, tag := range res.ShouldHave {
				if !contains(res.LocalTags, tag) && !contains(res.GlobalTags, tag) {
					t.Errorf("settled without %s: local %q global %q", tag, res.LocalTags, res.GlobalTags)
				}
			}
		})
	}
	t.Run("a failure the curator recorded in the policy status", func(t *testing.T) {
		ev := w.misp.SimulatePull(misptest.Event{Orgc: misptest.Org{UUID: orgPartnerHigh, Name: "PARTNER-HIGH"}})
		var p v1alpha1.OrgTrustPolicy
		if err := env.Client.Get(w.ctx, types.NamespacedName{Namespace: ns, Name: "high"}, &p); err != nil {
			t.Fatal(err)
		}
		orig := p.DeepCopy()
		now := metav1.Now()
		p.Status.Curation = &v1alpha1.CurationStatus{Failed: 1, LastEventTime: &now,
			LastError: "publish: misp: publish event " + ev.UUID + ": POST /events/publish/{id}: HTTP 405 (not allowed): You don't have permission to do that."}
		if err := env.Client.Status().Patch(w.ctx, &p, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		out, _, code := w.run("explain", ev.UUID, "--instance", ns+"/misp-prod")
		if code != ExitOK || !strings.Contains(out, "State: failed: the curator's last attempt failed: publish: misp: publish event "+ev.UUID) {
			t.Fatalf("exit code %d:\n%s", code, out)
		}
	})
	t.Run("an unknown event is an error", func(t *testing.T) {
		_, errOut, code := w.run("explain", "99999", "--instance", "misp-prod")
		if code != ExitError || !strings.Contains(errOut, "event 99999: not found in MISP") {
			t.Fatalf("exit code %d: %s", code, errOut)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
