package controllers

import (
	"hash/maphash"
	"regexp"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The warninglist rules the read-only Git-workflow commands (package cli: export, plan)
// compare MISP with. They call these instead of restating the list's shape, so a plan
// always shows what this controller would really write.

// DesiredWarninglist is the warninglist the controller keeps in MISP for policy p of
// MISPInstance inst when p wins the organisations won and the sharing organisations
// sharers (trust.WonSharers): name, description (which names inst's uid; nil: unknown),
// type, category, matching attributes and entries (the placeholder entry when both are
// empty).
func DesiredWarninglist(p *v1alpha1.OrgTrustPolicy, inst *v1alpha1.MISPInstance, won []trust.Org, sharers []trust.Sharer) misp.Warninglist {
	d := buildDesiredList(p, ownerOf(p, inst), won, sharers)
	wl := d.warninglist()
	wl.Source, wl.Entries, wl.EntryCount = nil, d.entries(), d.entryCount()
	return wl
}

// WarninglistDifference says what the controller would change in got (a list read with
// ViewWarninglist) to make it the list of p of inst winning won and sharers: "" when it
// would write nothing, else e.g. "1 entries missing, 0 unexpected; description changed; disabled".
func WarninglistDifference(got *misp.Warninglist, p *v1alpha1.OrgTrustPolicy, inst *v1alpha1.MISPInstance, won []trust.Org, sharers []trust.Sharer) string {
	want := buildDesiredList(p, ownerOf(p, inst), won, sharers)
	seed := maphash.MakeSeed()
	have := entryDigests{seed: seed}
	add := have.collector()
	for _, e := range got.Entries {
		add(e)
	}
	d := diffList(got, have, want, want.digests(seed).sums)
	if !d.any() {
		return ""
	}
	return d.String()
}

// ManagingPolicy returns the OrgTrustPolicy named by the description the controller
// writes on the lists it manages (warninglistDescription); ok is false for any other
// description (a list made by hand or by another tool).
func ManagingPolicy(description string) (namespace, name string, ok bool) {
	if !managedDescriptionRE.MatchString(description) {
		return "", "", false
	}
	o, ok := parseOwner(description)
	if !ok {
		return "", "", false
	}
	namespace, name, found := strings.Cut(o.Policy, "/")
	if !found || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return namespace, name, true
}

// managedDescriptionRE is the whole of a description the controller writes
// (warninglistDescription), or wrote before ownership was recorded: nothing
// may follow it.
var managedDescriptionRE = regexp.MustCompile(`^Managed by misp-trust-operator: OrgTrustPolicy [^\s/]+/[^\s/]+(?: of MISPInstance \S+ \(uid \S*\))?\. Edits in MISP are reverted\.(?: Entries: sha256:[0-9a-f]{64}\.)?$`)
