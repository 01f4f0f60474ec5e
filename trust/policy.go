package trust

import (
	"fmt"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// Defaults resolved in code (never written into the spec: GitOps tools would
// show a permanent diff).
const (
	DefaultValuePrefix = "org_uuid:"
	// DefaultWarninglistPrefix starts derived warninglist names; the namespace
	// is part of the name so two namespaces cannot collide in one MISP.
	DefaultWarninglistPrefix = "misp-trust-operator"
)

// Tags from the admiralty-scale and workflow taxonomies (misp-api.md §3).
const (
	TagWorkflowComplete   = `workflow:state="complete"`
	TagWorkflowIncomplete = `workflow:state="incomplete"`
)

// SourceReliabilityTag is the admiralty-scale tag of a grade a..g.
func SourceReliabilityTag(grade string) string {
	return fmt.Sprintf(`admiralty-scale:source-reliability=%q`, grade)
}

// InformationCredibilityTag is the admiralty-scale tag of a credibility 1..6.
func InformationCredibilityTag(level string) string {
	return fmt.Sprintf(`admiralty-scale:information-credibility=%q`, level)
}

// WarninglistName is the MISP warninglist a policy manages.
func WarninglistName(p *v1alpha1.OrgTrustPolicy) string {
	if p.Spec.WarninglistName != "" {
		return p.Spec.WarninglistName
	}
	return DefaultWarninglistPrefix + "/" + p.Namespace + "/" + p.Name
}

// ValuePrefix is written before each UUID in the warninglist.
func ValuePrefix(p *v1alpha1.OrgTrustPolicy) string {
	if p.Spec.ValuePrefix != nil {
		return *p.Spec.ValuePrefix
	}
	return DefaultValuePrefix
}

// Priority of a policy in the precedence rule.
func Priority(p *v1alpha1.OrgTrustPolicy) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// DeletionPolicy of a policy (Retain unless Delete is asked for).
func DeletionPolicy(p *v1alpha1.OrgTrustPolicy) v1alpha1.DeletionPolicy {
	if p.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete {
		return v1alpha1.DeletionPolicyDelete
	}
	return v1alpha1.DeletionPolicyRetain
}

// Tags are the local tags the curator attaches to an event won by the policy,
// in a stable order. For publishing policies workflow:state="complete" is
// included: it is attached in the same call.
func Tags(p *v1alpha1.OrgTrustPolicy) []string {
	tags := []string{SourceReliabilityTag(p.Spec.SourceReliability)}
	if p.Spec.InformationCredibility != "" {
		tags = append(tags, InformationCredibilityTag(p.Spec.InformationCredibility))
	}
	for _, t := range p.Spec.ExtraTags {
		if !contains(tags, t) && extraTagAllowed(t) {
			tags = append(tags, t)
		}
	}
	if p.Spec.Publish && !contains(tags, TagWorkflowComplete) {
		tags = append(tags, TagWorkflowComplete)
	}
	return tags
}

// reservedTagPrefixes are the tags the operator derives from the spec: an extra tag may
// not set them (the CRD refuses it; objects stored before that rule are filtered here).
var reservedTagPrefixes = []string{"admiralty-scale:source-reliability=", "admiralty-scale:information-credibility=", "workflow:state="}

func extraTagAllowed(t string) bool {
	if strings.ContainsAny(t, "\r\n") {
		return false
	}
	for _, p := range reservedTagPrefixes {
		if strings.HasPrefix(t, p) {
			return false
		}
	}
	return true
}

// Key identifies a policy in messages and maps: "namespace/name".
func Key(p *v1alpha1.OrgTrustPolicy) string {
	return p.Namespace + "/" + p.Name
}

// NormalizeUUID lower-cases a UUID: the schema accepts any case, MISP writes
// lower case.
func NormalizeUUID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
