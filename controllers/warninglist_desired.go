package controllers

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The warninglist rules the read-only Git-workflow commands (package cli: export, plan)
// compare MISP with. They call these instead of restating the list's shape, so a plan
// always shows what this controller would really write.

// DesiredWarninglist is the warninglist the controller keeps in MISP for policy p when p
// wins the organisations won and the sharing organisations sharers (trust.WonSharers):
// name, description, type, category, matching attributes and entries (the placeholder
// entry when both are empty).
func DesiredWarninglist(p *v1alpha1.OrgTrustPolicy, won []trust.Org, sharers []trust.Sharer) misp.Warninglist {
	return buildDesiredList(p, won, sharers).warninglist()
}

// WarninglistDifference says what the controller would change in got (a list read with
// ViewWarninglist) to make it the list of p winning won and sharers: "" when it would
// write nothing, else e.g. "1 entries missing, 0 unexpected; description changed; disabled".
func WarninglistDifference(got *misp.Warninglist, p *v1alpha1.OrgTrustPolicy, won []trust.Org, sharers []trust.Sharer) string {
	d := diffList(got, buildDesiredList(p, won, sharers))
	if !d.any() {
		return ""
	}
	return d.String()
}

// ManagingPolicy returns the OrgTrustPolicy named by the description the controller
// writes on the lists it manages (warninglistDescription); ok is false for any other
// description (a list made by hand or by another tool).
func ManagingPolicy(description string) (namespace, name string, ok bool) {
	const prefix = "Managed by misp-trust-operator: OrgTrustPolicy "
	rest, found := strings.CutPrefix(description, prefix)
	if !found {
		return "", "", false
	}
	// Names may hold dots, never "/" nor spaces: the key ends at the first space.
	key, _, _ := strings.Cut(rest, " ")
	namespace, name, found = strings.Cut(strings.TrimSuffix(key, "."), "/")
	if !found || namespace == "" || name == "" {
		return "", "", false
	}
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if warninglistDescription(p) != description {
		return "", "", false
	}
	return namespace, name, true
}
