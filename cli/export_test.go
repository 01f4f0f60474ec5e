package cli

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// policiesOf decodes the OrgTrustPolicies of export's YAML, by name.
func policiesOf(t *testing.T, docs string) map[string]*v1alpha1.OrgTrustPolicy {
	t.Helper()
	objs, err := decodeObjects(strings.NewReader(docs), "export")
	if err != nil {
		t.Fatalf("export printed unreadable YAML: %v\n%s", err, docs)
	}
	out := map[string]*v1alpha1.OrgTrustPolicy{}
	for _, fo := range objs {
		if fo.obj.GetKind() != "OrgTrustPolicy" {
			continue
		}
		var p v1alpha1.OrgTrustPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(fo.obj.Object, &p); err != nil {
			t.Fatal(err)
		}
		out[p.Name] = &p
	}
	return out
}

// The demo's MISP starts with the original script's org-confidence-level-high; the
// controller adopts it from config/samples/. Exporting it and applying the export to a
// rebuilt cluster (the policies gone, a fresh controller) must adopt both lists again
// without a single MISP write.
func TestExportOfTheDemosAdoptedListRoundTripsWithoutMISPWrites(t *testing.T) {
	w := newWorld(t, "")
	seedDemo(t, w.misp)
	stop := w.startController()
	w.applyYAML(samplePolicies(t))
	w.waitSynced("high", "medium")
	ids := map[string]string{}
	for _, name := range []string{"high", "medium"} {
		var p v1alpha1.OrgTrustPolicy
		if err := env.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		ids[name] = p.Status.Warninglist.ID
	}

	writesBefore := w.misp.WriteCalls()
	exported, errOut, code := w.run("export", "--instance", w.ns+"/misp-prod", "--url", w.misp.URL(), "--api-key-file", w.keyFile, "-o", "yaml")
	if code != ExitOK {
		t.Fatalf("export exit code %d: %s", code, errOut)
	}
	got := policiesOf(t, exported)
	samples := policiesOf(t, samplePolicies(t))
	if len(got) != 2 {
		t.Fatalf("exported policies %v, want high and medium:\n%s", reflect.ValueOf(got).MapKeys(), exported)
	}
	for name, want := range samples {
		p := got[name]
		if p == nil {
			t.Fatalf("no exported policy %q:\n%s", name, exported)
		}
		// The samples list their organisations in another order: compare as sets.
		ws := want.Spec.DeepCopy()
		sort.Slice(ws.Organisations, func(i, j int) bool { return ws.Organisations[i].UUID < ws.Organisations[j].UUID })
		if !equality.Semantic.DeepEqual(p.Spec, *ws) || p.Namespace != w.ns {
			t.Errorf("exported %s/%s spec\n%+v\nwant (config/samples)\n%+v", p.Namespace, name, p.Spec, *ws)
		}
	}

	t.Run("through the MISPInstance's Secret the export is the same", func(t *testing.T) {
		var list struct {
			Kind  string           `json:"kind"`
			Items []map[string]any `json:"items"`
		}
		w.runJSON(&list, ExitOK, "export", "--instance", "misp-prod")
		var fromYAML []map[string]any
		for _, doc := range strings.Split(exported, "\n---\n") {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatal(err)
			}
			fromYAML = append(fromYAML, m)
		}
		if list.Kind != "List" || !reflect.DeepEqual(list.Items, fromYAML) {
			t.Errorf("-o json items\n%v\ndiffer from -o yaml\n%v", list.Items, fromYAML)
		}
	})
	t.Run("the table says adoption writes nothing", func(t *testing.T) {
		out, _, code := w.run("export", "--instance", "misp-prod")
		if code != ExitOK {
			t.Fatalf("exit code %d", code)
		}
		for _, line := range []string{"org-confidence-level-high", "org-confidence-level-medium"} {
			if !containsLine(out, line, w.ns+"/", "none") {
				t.Errorf("no row for %s with policy and \"none\":\n%s", line, out)
			}
		}
	})
	if n := w.misp.WriteCalls(); n != writesBefore {
		t.Fatalf("export wrote to MISP: %d write calls\n%s", n-writesBefore, requestLog(w.misp))
	}

	// The cluster is rebuilt from Git: the policies are gone (deletionPolicy Retain keeps
	// the lists), a new controller starts without memory, the export is applied.
	stop()
	for name := range samples {
		if err := env.Client.Delete(w.ctx, &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	waitGone(t, w, "high", "medium")
	w.misp.ResetStats()
	w.startController()
	w.applyYAML(exported)
	w.waitSynced("high", "medium")
	if n := w.misp.WriteCalls(); n != 0 {
		t.Fatalf("adopting the exported lists cost %d MISP writes, want 0:\n%s", n, requestLog(w.misp))
	}
	for name, id := range ids {
		var p v1alpha1.OrgTrustPolicy
		if err := env.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		if p.Status.Warninglist == nil || p.Status.Warninglist.ID != id {
			t.Errorf("%s manages list %+v, want the adopted id %s", name, p.Status.Warninglist, id)
		}
	}
}

// The original script's lists as a team kept them by hand: prefixed entries with names,
// bare UUIDs without names (more than the 500 inline), a list of hostnames next to them.
// Export runs before anything is installed (--url, no cluster), and predicts exactly
// what the controller writes when it adopts: one edit per list, to record the owning
// policy in the description (and, here, rewrite one comment and lower-case one entry).
func TestExportOfTheScriptsListsBeforeInstallPredictsTheAdoptionWrites(t *testing.T) {
	w := newWorld(t, "")
	w.misp.AddOrg("CIRCL", orgCIRCL)
	w.misp.AddOrg("PARTNER-HIGH", orgPartnerHigh)
	high := w.misp.AddWarninglist(misptest.WL{Name: "org-confidence-level-high", Type: "string", Category: "known", Enabled: true,
		Description: "Created by hand for the original curation script", Entries: []misptest.WLEntry{
			{Value: "org_uuid:" + orgCIRCL, Comment: "CIRCL"}, {Value: "org_uuid:" + orgPartnerHigh, Comment: "PARTNER-HIGH # ops"}}})
	var medium []misptest.WLEntry
	for i := 1; i <= 520; i++ {
		medium = append(medium, misptest.WLEntry{Value: uuidN(i)})
	}
	medium[9].Value = strings.ToUpper(medium[9].Value) // 0000000A-…: MISP kept what was typed
	mediumWL := w.misp.AddWarninglist(misptest.WL{Name: "org-confidence-level-medium", Type: "string", Category: "known", Enabled: true,
		Description: "medium trust", Entries: medium})
	w.misp.AddWarninglist(misptest.WL{Name: "corp-hosts", Type: "hostname", Category: "known", Enabled: true,
		Entries: []misptest.WLEntry{{Value: "intranet.example.org"}}})
	w.misp.AddWarninglist(misptest.WL{Name: "List of known IPv4 public DNS resolvers", Default: true, Enabled: true,
		Entries: []misptest.WLEntry{{Value: "8.8.8.8"}}})

	noCluster := []string{"--kubeconfig", "/nonexistent/kubeconfig", "-n", w.ns, "--instance", "misp-prod", "--url", w.misp.URL(), "--api-key-file", w.keyFile}
	var res exportResult
	var table, exported strings.Builder
	for _, format := range []string{"table", "yaml"} {
		b := &table
		if format == "yaml" {
			b = &exported
		}
		var errb strings.Builder
		if code := Main(w.ctx, append(append([]string{"export"}, noCluster...), "-o", format), IO{Out: b, Err: &errb, Prog: "misp-trust-operator"}); code != ExitOK {
			t.Fatalf("export -o %s: exit code %d: %s", format, code, errb.String())
		}
	}
	ex := exporter{api: mustClient(t, w.misp), inst: types.NamespacedName{Namespace: w.ns, Name: "misp-prod"}}
	r, err := ex.run(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	res = *r
	wantWrites := map[string]string{
		// The "#" cannot stay in an organisation name: the entry's comment changes.
		"org-confidence-level-high":   "1 entries missing, 1 unexpected; description changed",
		"org-confidence-level-medium": "1 entries missing, 1 unexpected; description changed",
	}
	for _, l := range res.Lists {
		if l.AdoptionWrites != wantWrites[l.Warninglist] {
			t.Errorf("%s: adoption writes %q, want %q", l.Warninglist, l.AdoptionWrites, wantWrites[l.Warninglist])
		}
	}
	if len(res.Lists) != 2 || len(res.Skipped) != 1 || res.Skipped[0].Warninglist != "corp-hosts" {
		t.Fatalf("lists %+v, skipped %+v", res.Lists, res.Skipped)
	}
	for _, want := range []string{"skipped: corp-hosts: entry \"intranet.example.org\" is not an organisation UUID", "1 ConfigMap",
		"note: org-confidence-level-high: the comment of " + orgPartnerHigh + " is shortened"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	pols := policiesOf(t, exported.String())
	if p := pols["medium"]; p == nil || p.Spec.ValuePrefix == nil || *p.Spec.ValuePrefix != "" || len(p.Spec.Organisations) != 0 ||
		len(p.Spec.OrganisationsFrom) != 1 || p.Spec.SourceReliability != "c" || p.Spec.Publish {
		t.Fatalf("medium policy: %+v", p)
	}
	if p := pols["high"]; p == nil || len(p.Spec.Organisations) != 2 || p.Spec.Organisations[0].Name != "PARTNER-HIGH ops" ||
		p.Spec.SourceReliability != "a" || !p.Spec.Publish {
		t.Fatalf("high policy: %+v", p)
	}
	if n := w.misp.WriteCalls(); n != 0 {
		t.Fatalf("export wrote to MISP:\n%s", requestLog(w.misp))
	}

	// Install, apply the export: the controller adopts both lists, with the writes predicted.
	w.startController()
	w.applyYAML(exported.String())
	w.waitSynced("high", "medium")
	var edits []string
	for _, r := range w.misp.Requests() {
		if r.Method != "GET" && r.Route != "/warninglists/index" && r.Route != "/events/index" {
			edits = append(edits, r.Method+" "+r.Path)
		}
	}
	want := []string{"POST /warninglists/edit/" + high.ID, "POST /warninglists/edit/" + mediumWL.ID}
	sort.Strings(edits)
	if n := w.misp.WriteCalls(); n != 2 || !reflect.DeepEqual(edits, want) {
		t.Fatalf("adoption writes %v (%d write calls), want %v", edits, n, want)
	}
}

func TestParseOrgEntries(t *testing.T) {
	u1, u2 := uuidN(1), uuidN(2)
	cases := []struct {
		name       string
		entries    []misp.WarninglistEntry
		wantPrefix string
		wantOrgs   []trust.Org
		wantSkip   string
		wantNotes  int
	}{
		{"prefixed entries with names", []misp.WarninglistEntry{{Value: "org_uuid:" + u2, Comment: " Two "}, {Value: "org_uuid:" + u1, Comment: "One"}},
			"org_uuid:", []trust.Org{{UUID: u1, Name: "One"}, {UUID: u2, Name: "Two"}}, "", 0},
		{"bare upper-case UUIDs without names", []misp.WarninglistEntry{{Value: strings.ToUpper(u1)}}, "", []trust.Org{{UUID: u1}}, "", 0},
		{"the controller's placeholder is no organisation", []misp.WarninglistEntry{{Value: "org_uuid:" + placeholderUUID, Comment: "placeholder"}, {Value: "org_uuid:" + u1}},
			"org_uuid:", []trust.Org{{UUID: u1}}, "", 1},
		{"a UUID listed twice is kept once", []misp.WarninglistEntry{{Value: u1, Comment: "a"}, {Value: strings.ToUpper(u1), Comment: "b"}}, "", []trust.Org{{UUID: u1, Name: "a"}}, "", 1},
		{"a # in a comment cannot be part of a name", []misp.WarninglistEntry{{Value: u1, Comment: "A#B"}}, "", []trust.Org{{UUID: u1, Name: "A B"}}, "", 1},
		{"mixed prefixes are not one list", []misp.WarninglistEntry{{Value: "org_uuid:" + u1}, {Value: "org:" + u2}}, "", nil, `entries mix the prefixes "org_uuid:" and "org:"`, 0},
		{"hostnames are not organisations", []misp.WarninglistEntry{{Value: "example.org"}}, "", nil, `entry "example.org" is not an organisation UUID (with an optional prefix such as "org_uuid:")`, 0},
		{"a prefix with a space cannot be a valuePrefix", []misp.WarninglistEntry{{Value: "org uuid:" + u1}}, "", nil, `prefix "org uuid:" cannot be a valuePrefix (at most 64 characters, no space or #)`, 0},
		{"an empty list", nil, "", nil, "no entries", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix, orgs, notes, skip := parseOrgEntries(tc.entries)
			if skip != tc.wantSkip {
				t.Fatalf("skip = %q, want %q", skip, tc.wantSkip)
			}
			if skip != "" {
				return
			}
			if prefix != tc.wantPrefix || !reflect.DeepEqual(orgs, tc.wantOrgs) || len(notes) != tc.wantNotes {
				t.Errorf("got %q %+v %q; want %q %+v and %d notes", prefix, orgs, notes, tc.wantPrefix, tc.wantOrgs, tc.wantNotes)
			}
		})
	}
}

// Long lists go to ConfigMaps small enough for kubectl apply, and read back through the
// controller's own parser to the same organisations.
func TestLongListsSplitIntoConfigMapsThatReadBack(t *testing.T) {
	var orgs []trust.Org
	for i := 1; i <= 12000; i++ {
		orgs = append(orgs, trust.Org{UUID: uuidN(i), Name: fmt.Sprintf("Organisation number %d of a large sharing community", i)})
	}
	p := &v1alpha1.OrgTrustPolicy{}
	p.Name, p.Namespace = "community", "sec"
	cms, err := orgConfigMaps(p, orgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(cms) < 2 {
		t.Fatalf("%d ConfigMaps for %d organisations", len(cms), len(orgs))
	}
	for _, cm := range cms {
		if !trust.Allowed(cm) {
			t.Errorf("ConfigMap %s lacks %s=%q: the operator would not read it", cm.Name, trust.AllowLabel, trust.AllowValue)
		}
		if n := len(cm.Data[configMapKey]); n > maxConfigMapData {
			t.Errorf("ConfigMap %s holds %d bytes, more than %d", cm.Name, n, maxConfigMapData)
		}
		p.Spec.OrganisationsFrom = append(p.Spec.OrganisationsFrom, v1alpha1.ConfigMapKeyReference{Name: cm.Name, Key: configMapKey})
	}
	back, problems, err := trust.EffectiveOrgs(p, func(ref v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		for _, cm := range cms {
			if cm.Name == ref.Name {
				return cm.Data[ref.Key], true, nil
			}
		}
		return "", false, nil
	})
	if err != nil || len(problems) > 0 || !reflect.DeepEqual(back, orgs) {
		t.Fatalf("read back %d organisations (%v, %v), want %d", len(back), err, problems, len(orgs))
	}

	many := make([]trust.Org, 0, 200000)
	for i := 1; i <= 200000; i++ {
		many = append(many, trust.Org{UUID: uuidN(i), Name: strings.Repeat("n", 120)})
	}
	if _, err := orgConfigMaps(p, many); err == nil || !strings.Contains(err.Error(), "more than the 32 organisationsFrom references") {
		t.Fatalf("a list beyond 32 ConfigMaps: err = %v", err)
	}
}

func TestPolicyName(t *testing.T) {
	for list, want := range map[string]string{
		"org-confidence-level-low":       "org-confidence-level-low",
		"Partners (EU) / tier 1":         "partners-eu-tier-1",
		"misp-trust-operator/sec/high":   "high",
		"misp-trust-operator/other/high": "misp-trust-operator-other-high",
		"###":                            "trust-list",
		strings.Repeat("a", 70) + ".b":   strings.Repeat("a", 63),
	} {
		if got := policyName(list, "sec"); got != want {
			t.Errorf("policyName(%q) = %q, want %q", list, got, want)
		}
	}
}
