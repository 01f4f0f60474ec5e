package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

const orgNew = "9b2f4c1e-6a3d-4e5f-8a7b-1c2d3e4f5a6b"

// writeFiles writes policy files into a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const planHigh = `apiVersion: misptrust.io/v1alpha1
kind: OrgTrustPolicy
metadata:
  name: high
spec:
  instanceRef: {name: misp-prod}
  warninglistName: org-confidence-level-high
  priority: 100
  sourceReliability: a
  publish: true
  organisations:
    - {uuid: 5cf66e53-b5f8-43e7-be9a-49880a3b4631, name: CIRCL}
    - {uuid: 7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19, name: PARTNER-MEDIUM}
`

const planMedium = `apiVersion: misptrust.io/v1alpha1
kind: OrgTrustPolicy
metadata:
  name: medium
spec:
  instanceRef: {name: misp-prod}
  warninglistName: org-confidence-level-medium
  priority: 50
  sourceReliability: c
  organisations:
    - {uuid: 5cf66e53-b5f8-43e7-be9a-49880a3b4631, name: CIRCL}
    - {uuid: 9b2f4c1e-6a3d-4e5f-8a7b-1c2d3e4f5a6b, name: NEW-PARTNER}
`

// A pull request promotes PARTNER-MEDIUM to high, drops PARTNER-HIGH, adds a new
// partner to medium and lists CIRCL in medium too. The plan is checked event by event
// against the events the demo's MISP would hold.
func TestPlanOfAPromotionListsEveryAffectedEvent(t *testing.T) {
	w := newWorld(t, "")
	seedDemo(t, w.misp)
	w.startController()
	w.applyYAML(samplePolicies(t))
	w.waitSynced("high", "medium")

	now := time.Now()
	add := func(org, name string, e misptest.Event) misptest.Event {
		e.Orgc = misptest.Org{UUID: org, Name: name}
		if e.Timestamp.IsZero() {
			e.Timestamp = now.Add(-time.Hour)
		}
		return w.misp.AddEvent(e)
	}
	gradeA, gradeC := trust.SourceReliabilityTag("a"), trust.SourceReliabilityTag("c")
	complete, incomplete := trust.TagWorkflowComplete, trust.TagWorkflowIncomplete
	curatedMedium := add(orgPartnerMedium, "PARTNER-MEDIUM", misptest.Event{Locked: true, Published: true, Tags: []misptest.EventTag{{Name: gradeC, Local: true}}})
	incompleteMedium := add(orgPartnerMedium, "PARTNER-MEDIUM", misptest.Event{Locked: true, Tags: []misptest.EventTag{{Name: incomplete}}, Timestamp: now.Add(-2 * time.Hour)})
	add(orgPartnerMedium, "PARTNER-MEDIUM", misptest.Event{Published: true}) // created here: never curated
	add(orgPartnerMedium, "PARTNER-MEDIUM", misptest.Event{Locked: true, Published: true, Timestamp: now.Add(-72 * time.Hour)})
	newPartner := add(orgNew, "NEW-PARTNER", misptest.Event{Locked: true, Published: true})
	dropped := add(orgPartnerHigh, "PARTNER-HIGH", misptest.Event{Locked: true, Published: true, Tags: []misptest.EventTag{{Name: gradeA, Local: true}, {Name: complete, Local: true}}})
	add(orgCIRCL, "CIRCL", misptest.Event{Locked: true, Published: true, Tags: []misptest.EventTag{{Name: gradeA, Local: true}, {Name: complete, Local: true}}})
	add(orgUnknownFeed, "UNKNOWN-FEED", misptest.Event{Locked: true, Published: true})

	dir := writeFiles(t, map[string]string{"high.yaml": planHigh, "medium.yaml": planMedium})
	versions := policyVersions(t, w)
	w.misp.ResetStats()
	var res planResult
	w.runJSON(&res, ExitChanges, "plan", "-f", dir)
	t.Logf("plan: %d MISP requests %v, none a write", len(w.misp.Requests()), w.misp.CallsByRoute())

	ns := w.ns
	wantEvents := []eventImpact{
		{ID: curatedMedium.ID, UUID: curatedMedium.UUID, OrgUUID: orgPartnerMedium, From: ns + "/medium", To: ns + "/high",
			Attach: []string{gradeA, complete}, Remove: []string{gradeC}, Publish: "no",
			Effect: `changes grade source-reliability="c" → source-reliability="a"; +workflow:state="complete"`},
		{ID: incompleteMedium.ID, UUID: incompleteMedium.UUID, OrgUUID: orgPartnerMedium, From: ns + "/medium", To: ns + "/high",
			Attach: []string{gradeA, complete}, Remove: []string{incomplete}, Publish: "yes",
			Effect: `gains source-reliability="a"; +workflow:state="complete"; incomplete → complete; published`},
		{ID: newPartner.ID, UUID: newPartner.UUID, OrgUUID: orgNew, To: ns + "/medium", Attach: []string{gradeC}, Publish: "no",
			Effect: `gains source-reliability="c"`},
		{ID: dropped.ID, UUID: dropped.UUID, OrgUUID: orgPartnerHigh, From: ns + "/high", Publish: "no",
			Effect: "untrusted from now on: keeps its tags, no MISP call"},
	}
	byUUID := map[string]eventImpact{}
	for _, e := range res.Events {
		byUUID[e.UUID] = e
	}
	if len(res.Events) != len(wantEvents) {
		t.Errorf("%d events in the plan, want %d: %+v", len(res.Events), len(wantEvents), res.Events)
	}
	for _, want := range wantEvents {
		got, ok := byUUID[want.UUID]
		if !ok {
			t.Errorf("event %s (id %s, org %s) missing from the plan", want.UUID, want.ID, want.OrgUUID)
			continue
		}
		got.Instance, got.OrgName, got.Timestamp = "", "", time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %s:\n got %+v\nwant %+v", want.ID, got, want)
		}
	}

	wantMoves := []orgMove{
		{UUID: orgPartnerHigh, Name: "PARTNER-HIGH", From: ns + "/high", Reason: ns + "/high no longer lists it; untrusted from now on (tags already attached stay)"},
		{UUID: orgPartnerMedium, Name: "PARTNER-MEDIUM", From: ns + "/medium", To: ns + "/high", Reason: ns + "/medium no longer lists it; only " + ns + "/high lists it"},
		{UUID: orgNew, Name: "NEW-PARTNER", To: ns + "/medium", Reason: "only " + ns + "/medium lists it"},
	}
	for i := range res.Moves {
		res.Moves[i].Instance = ""
	}
	if !reflect.DeepEqual(res.Moves, wantMoves) {
		t.Errorf("moves\n%+v\nwant\n%+v", res.Moves, wantMoves)
	}
	wantConflicts := []conflictRow{{UUID: orgCIRCL, Name: "CIRCL", Policy: ns + "/medium", Winner: ns + "/high", Reason: "priority 100 > 50", New: true}}
	for i := range res.Conflicts {
		res.Conflicts[i].Instance = ""
	}
	if !reflect.DeepEqual(res.Conflicts, wantConflicts) {
		t.Errorf("conflicts\n%+v\nwant\n%+v", res.Conflicts, wantConflicts)
	}
	lists := map[string]listChange{}
	for _, l := range res.Warninglists {
		lists[l.Policy] = l
	}
	if l := lists[ns+"/high"]; l.Action != "update" || !reflect.DeepEqual(l.Added, []string{"org_uuid:" + orgPartnerMedium + " # PARTNER-MEDIUM"}) ||
		!reflect.DeepEqual(l.Removed, []string{"org_uuid:" + orgPartnerHigh + " # PARTNER-HIGH"}) {
		t.Errorf("high's list: %+v", l)
	}
	if l := lists[ns+"/medium"]; l.Action != "update" || !reflect.DeepEqual(l.Added, []string{"org_uuid:" + orgNew + " # NEW-PARTNER"}) ||
		!reflect.DeepEqual(l.Removed, []string{"org_uuid:" + orgPartnerMedium + " # PARTNER-MEDIUM"}) {
		t.Errorf("medium's list: %+v", l)
	}
	if len(res.Objects) != 2 || res.Objects[0].Action != "update" || res.Objects[1].Action != "update" {
		t.Errorf("objects: %+v", res.Objects)
	}

	t.Run("the table shows the same plan", func(t *testing.T) {
		out, _, code := w.run("plan", "-f", dir)
		if code != ExitChanges {
			t.Fatalf("exit code %d", code)
		}
		for _, parts := range [][]string{
			{incompleteMedium.ID, incompleteMedium.UUID, "PARTNER-MEDIUM", ns + "/medium", ns + "/high", "incomplete → complete; published", "yes"},
			{dropped.ID, "PARTNER-HIGH", ns + "/high", "(untrusted)", "keeps its tags"},
			{orgCIRCL, "CIRCL", ns + "/medium", ns + "/high", "priority 100 > 50", "yes"},
			{"+ org_uuid:" + orgNew + " # NEW-PARTNER"},
			{"Plan: 2 object changes, 3 organisation moves, 1 conflict, 2 warninglist changes, 4 events affected."},
		} {
			if !containsLine(out, parts...) {
				t.Errorf("no line with %q:\n%s", parts, out)
			}
		}
	})
	t.Run("the cluster's own policies plan no change", func(t *testing.T) {
		samples := writeFiles(t, map[string]string{"s.yaml": samplePolicies(t)})
		out, errOut, code := w.run("plan", "-f", samples)
		if code != ExitOK {
			t.Fatalf("exit code %d, want 0:\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("--prune plans the deletion of a policy the files no longer hold", func(t *testing.T) {
		var res planResult
		w.runJSON(&res, ExitChanges, "plan", "-f", filepath.Join(dir, "high.yaml"), "--prune")
		found := false
		for _, o := range res.Objects {
			found = found || (o.Name == "medium" && o.Action == "delete")
		}
		retained := false
		for _, l := range res.Warninglists {
			retained = retained || (l.Policy == ns+"/medium" && l.Action == "retain")
		}
		if !found || !retained {
			t.Errorf("objects %+v\nlists %+v", res.Objects, res.Warninglists)
		}
	})
	t.Run("invalid files are refused as the apiserver refuses them", func(t *testing.T) {
		bad := writeFiles(t, map[string]string{
			"grade.yaml":  strings.Replace(planHigh, "sourceReliability: a", "sourceReliability: z", 1),
			"field.yaml":  strings.Replace(strings.Replace(planMedium, "name: medium", "name: other", 1), "priority: 50", "priority: 50\n  colour: red", 1),
			"notes.yaml":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}]}\n",
			"README.md":   "not read",
			"broken.json": "",
		})
		out, errOut, code := w.run("plan", "-f", bad)
		if code != ExitError {
			t.Fatalf("exit code %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{`Unsupported value: "z"`, ".spec.colour: field not declared in schema", "Service x ignored"} {
			if !strings.Contains(out+errOut, want) {
				t.Errorf("output lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
	})

	if n := w.misp.WriteCalls(); n != 0 {
		t.Errorf("plan wrote to MISP:\n%s", requestLog(w.misp))
	}
	if after := policyVersions(t, w); !reflect.DeepEqual(after, versions) {
		t.Errorf("plan changed the cluster: resourceVersions %v, were %v", after, versions)
	}
}

// policyVersions are the resourceVersions of the world's policies and ConfigMaps.
func policyVersions(t *testing.T, w *world) map[string]string {
	t.Helper()
	var list v1alpha1.OrgTrustPolicyList
	if err := env.Client.List(w.ctx, &list, inNamespace(w.ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		out[p.Name] = p.ResourceVersion
	}
	return out
}
