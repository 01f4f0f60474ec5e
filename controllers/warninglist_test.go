package controllers

import (
	"errors"
	"hash/maphash"
	"strings"
	"testing"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

func testPolicy() *v1alpha1.OrgTrustPolicy {
	return &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "high"}}
}

// testOwner is the owner testPolicy's lists record.
var testOwner = listOwner{Policy: "ns/high", Instance: "ns/misp", InstanceUID: "inst-uid"}

func TestBuildDesiredList(t *testing.T) {
	orgs := []trust.Org{{UUID: uuidN(2), Name: " Two "}, {UUID: uuidN(1), Name: "One"}}
	t.Run("entries are prefixed, commented with the trimmed name and sorted", func(t *testing.T) {
		d := buildDesiredList(testPolicy(), testOwner, orgs, nil)
		want := []misp.WarninglistEntry{{Value: "org_uuid:" + uuidN(1), Comment: "One"}, {Value: "org_uuid:" + uuidN(2), Comment: "Two"}}
		if e := d.entries(); len(e) != 2 || e[0] != want[0] || e[1] != want[1] {
			t.Errorf("entries = %v, want %v", e, want)
		}
		if d.Name != "misp-trust-operator/ns/high" || d.Orgs != 2 {
			t.Errorf("name %q orgs %d", d.Name, d.Orgs)
		}
		if want := "Managed by misp-trust-operator: OrgTrustPolicy ns/high of MISPInstance ns/misp (uid inst-uid). Edits in MISP are reverted. Entries: " +
			d.EntriesHash + "."; d.Description != want {
			t.Errorf("description %q, want %q", d.Description, want)
		}
		if o, ok := parseOwner(d.Description); !ok || o != testOwner {
			t.Errorf("parseOwner = %+v, %t; want %+v", o, ok, testOwner)
		}
		wl := d.warninglist()
		if wl.Type != "string" || wl.Category != "known" || len(wl.MatchingAttributes) != 1 || wl.MatchingAttributes[0] != "ALL" {
			t.Errorf("warninglist body %+v", wl)
		}
	})
	t.Run("the hash does not depend on input order and changes with any entry", func(t *testing.T) {
		a := buildDesiredList(testPolicy(), testOwner, orgs, nil)
		b := buildDesiredList(testPolicy(), testOwner, []trust.Org{orgs[1], orgs[0]}, nil)
		if a.EntriesHash != b.EntriesHash {
			t.Error("same organisations, different hash")
		}
		c := buildDesiredList(testPolicy(), testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}, {UUID: uuidN(2), Name: "Two!"}}, nil)
		if c.EntriesHash == a.EntriesHash {
			t.Error("changed comment, same hash")
		}
	})
	t.Run("the value prefix is configurable, empty included", func(t *testing.T) {
		p := testPolicy()
		p.Spec.ValuePrefix = ptr.To("")
		p.Spec.WarninglistName = "org-confidence-level-high"
		d := buildDesiredList(p, testOwner, orgs[:1], nil)
		if d.entries()[0].Value != uuidN(2) || d.Name != "org-confidence-level-high" {
			t.Errorf("entry %q name %q", d.entries()[0].Value, d.Name)
		}
	})
	t.Run("no organisation gives the placeholder MISP accepts", func(t *testing.T) {
		d := buildDesiredList(testPolicy(), testOwner, nil, nil)
		if e := d.entries(); len(e) != 1 || e[0].Value != "org_uuid:"+placeholderUUID || d.Orgs != 0 {
			t.Errorf("entries %v orgs %d", e, d.Orgs)
		}
	})
}

func TestDiffList(t *testing.T) {
	want := buildDesiredList(testPolicy(), testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}, {UUID: uuidN(2), Name: "Two"}}, nil)
	same := func() *misp.Warninglist {
		e := want.entries()
		return &misp.Warninglist{ID: "137", Name: want.Name, Description: want.Description, Type: "string", Category: "known",
			MatchingAttributes: []string{"ALL"}, Enabled: true,
			// MISP order is insertion order; reversed here to show order does not matter.
			Entries: []misp.WarninglistEntry{e[1], e[0]}}
	}
	cases := []struct {
		name   string
		mutate func(*misp.Warninglist)
		want   string
	}{
		{"identical in another order", func(*misp.Warninglist) {}, "no difference"},
		{"disabled", func(w *misp.Warninglist) { w.Enabled = false }, "disabled"},
		{"an entry removed", func(w *misp.Warninglist) { w.Entries = w.Entries[:1] }, "1 entries missing, 0 unexpected"},
		{"an entry added", func(w *misp.Warninglist) { w.Entries = append(w.Entries, misp.WarninglistEntry{Value: "x"}) }, "0 entries missing, 1 unexpected"},
		{"a duplicate entry", func(w *misp.Warninglist) { w.Entries = append(w.Entries, w.Entries[0]) }, "0 entries missing, 1 unexpected"},
		{"a comment changed", func(w *misp.Warninglist) { w.Entries[0].Comment = "renamed" }, "1 entries missing, 1 unexpected"},
		{"metadata changed", func(w *misp.Warninglist) {
			w.Name, w.Type, w.MatchingAttributes = "other", "substring", []string{"domain"}
		}, "name, type, matching attributes changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := same()
			c.mutate(got)
			// As ScanWarninglist hands them over: one entry at a time.
			have := entryDigests{seed: maphash.MakeSeed()}
			visit := have.collector()
			for _, e := range got.Entries {
				visit(e)
			}
			got.Entries = nil
			d := diffList(got, have, want, want.digests(have.seed).sums)
			if d.String() != c.want {
				t.Errorf("diff = %q, want %q", d.String(), c.want)
			}
			if d.any() != (c.want != "no difference") {
				t.Errorf("any() = %t", d.any())
			}
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	cases := []struct {
		v          string
		ok, parsed bool
	}{
		{"2.5.1", true, true}, {"2.4.145", true, true}, {"2.4.144", false, true}, {"2.4.199-rc1", true, true},
		{"3.0.0", true, true}, {"1.9.999", false, true}, {"v2.4.150", true, true}, {"2.4", false, false}, {"dev", false, false},
	}
	for _, c := range cases {
		ok, parsed := versionAtLeast(c.v, minVersion)
		if ok != c.ok || parsed != c.parsed {
			t.Errorf("versionAtLeast(%q) = %t, %t; want %t, %t", c.v, ok, parsed, c.ok, c.parsed)
		}
	}
}

func TestMergeConditionsKeepsTransitionTimeOnNoOp(t *testing.T) {
	then := metav1.NewTime(metav1.Now().Add(-3600e9).Truncate(1e9))
	now := metav1.Now()
	existing := []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", Message: "ok.", ObservedGeneration: 2, LastTransitionTime: then},
		{Type: "FeedConnected", Status: metav1.ConditionTrue, Reason: "Connected", Message: "curator's."},
	}
	t.Run("nothing changed", func(t *testing.T) {
		out, changed := mergeConditions(existing, []metav1.Condition{cond("Ready", metav1.ConditionTrue, "Synced", "ok.")}, 2, now)
		if changed || len(out) != 1 || !out[0].LastTransitionTime.Equal(&then) {
			t.Errorf("changed %t, out %+v", changed, out)
		}
	})
	t.Run("message changed, status same: time kept", func(t *testing.T) {
		out, changed := mergeConditions(existing, []metav1.Condition{cond("Ready", metav1.ConditionTrue, "Synced", "other.")}, 2, now)
		if !changed || !out[0].LastTransitionTime.Equal(&then) || out[0].Message != "other." {
			t.Errorf("changed %t, out %+v", changed, out)
		}
	})
	t.Run("new generation: changed, time kept", func(t *testing.T) {
		out, changed := mergeConditions(existing, []metav1.Condition{cond("Ready", metav1.ConditionTrue, "Synced", "ok.")}, 3, now)
		if !changed || out[0].ObservedGeneration != 3 || !out[0].LastTransitionTime.Equal(&then) {
			t.Errorf("changed %t, out %+v", changed, out)
		}
	})
	t.Run("status changed: new time", func(t *testing.T) {
		out, changed := mergeConditions(existing, []metav1.Condition{cond("Ready", metav1.ConditionFalse, "X", "bad.")}, 2, now)
		if !changed || !out[0].LastTransitionTime.Equal(&now) {
			t.Errorf("changed %t, out %+v", changed, out)
		}
	})
	t.Run("only the wanted types are returned, the curator's are left alone", func(t *testing.T) {
		out, _ := mergeConditions(existing, []metav1.Condition{cond("Synced", metav1.ConditionTrue, "Synced", "ok.")}, 2, now)
		if len(out) != 1 || out[0].Type != "Synced" {
			t.Errorf("out %+v", out)
		}
	})
}

func TestReadyCondition(t *testing.T) {
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	mk := func(reach, auth, host, admin, perm metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{
			cond(v1alpha1.ConditionReachable, reach, "R", "r."), cond(v1alpha1.ConditionAuthenticated, auth, "A", "a."),
			cond(v1alpha1.ConditionHostOrg, host, "H", "h."), cond(v1alpha1.ConditionSiteAdmin, admin, "S", "s."),
			cond(v1alpha1.ConditionWarninglistPermission, perm, "W", "w."),
		}
	}
	cases := []struct {
		name   string
		conds  []metav1.Condition
		status metav1.ConditionStatus
		reason string
	}{
		{"everything", mk(T, T, T, T, T), T, ReasonReady},
		{"not host org, not site admin: still manages lists", mk(T, T, F, F, T), T, ReasonLimitedCapabilities},
		{"host org unknown", mk(T, T, U, T, T), T, ReasonLimitedCapabilities},
		{"no warninglist permission", mk(T, T, T, T, F), F, "W"},
		{"unreachable first", mk(F, U, U, U, U), F, "R"},
		{"key rejected", mk(T, F, U, U, U), F, "A"},
	}
	for _, c := range cases {
		r := readyCondition(c.conds)
		if r.Status != c.status || r.Reason != c.reason {
			t.Errorf("%s: Ready = %s/%s, want %s/%s", c.name, r.Status, r.Reason, c.status, c.reason)
		}
	}
}

func TestListCapped(t *testing.T) {
	items := strings.Split("a b c d e", " ")
	if got := listCapped(items, 3); got != "a; b; c (and 2 more)" {
		t.Errorf("got %q", got)
	}
	if got := listCapped(items[:2], 3); got != "a; b" {
		t.Errorf("got %q", got)
	}
}

func TestTruncateNote(t *testing.T) {
	long := strings.Repeat("é", 800) // 1,600 bytes
	got := truncateNote(long)
	if len(got) > maxNote || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("truncated to %d bytes, valid UTF-8 %t", len(got), utf8.ValidString(got))
	}
	if truncateNote("short.") != "short." {
		t.Error("a short note was changed")
	}
}

func TestMISPStringsInConditionsAreBounded(t *testing.T) {
	long := strings.Repeat("ü", 5000)
	if got := truncateMISP(long); len(got) > maxMISPString+len("…") || !utf8.ValidString(got) {
		t.Errorf("truncateMISP: %d bytes, valid %t", len(got), utf8.ValidString(got))
	}
	if got := trimDot(errors.New("misp: edit: " + long)); len(got) > maxMISPError+len("…") || !utf8.ValidString(got) {
		t.Errorf("trimDot: %d bytes", len(got))
	}
	if truncateMISP("short") != "short" {
		t.Error("a short string changed")
	}
}
