package trust

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// Org is one trusted organisation, UUID in lower case.
type Org struct {
	UUID string
	Name string
}

// Problem is one organisation source the policy could not use entirely: a bad
// line of an organisationsFrom key, a missing ConfigMap or key, or a UUID
// listed twice in different case.
type Problem struct {
	Source string // "spec.organisations" or "configmap/<name>/<key>"
	Line   int    // 1-based; 0 when the whole source is concerned
	Reason string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", p.Source, p.Line, p.Reason)
	}
	return fmt.Sprintf("%s: %s", p.Source, p.Reason)
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsUUID reports whether s is a UUID in any case.
func IsUUID(s string) bool { return uuidRE.MatchString(s) }

// ParseOrgList reads an organisationsFrom value: one UUID per line, optionally
// followed by "# name"; blank lines and lines starting with # are ignored.
// Invalid lines are returned as problems with their line number, never
// silently dropped.
func ParseOrgList(source, data string) ([]Org, []Problem) {
	var orgs []Org
	var problems []Problem
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		value, name, _ := strings.Cut(line, "#")
		value = strings.TrimSpace(value)
		if !IsUUID(value) {
			shown := value
			if len(shown) > 40 {
				shown = shown[:40] + "…"
			}
			problems = append(problems, Problem{Source: source, Line: i + 1, Reason: fmt.Sprintf("%q is not an organisation UUID", shown)})
			continue
		}
		orgs = append(orgs, Org{UUID: NormalizeUUID(value), Name: strings.TrimSpace(name)})
	}
	return orgs, problems
}

// ConfigMapSource names an organisationsFrom entry in problems.
func ConfigMapSource(ref v1alpha1.ConfigMapKeyReference) string {
	return "configmap/" + ref.Name + "/" + ref.Key
}

// LookupFunc returns the value of a ConfigMap key and whether it exists; an
// error means the ConfigMap could not be read (the caller retries).
type LookupFunc func(ref v1alpha1.ConfigMapKeyReference) (value string, found bool, err error)

// EffectiveOrgs returns the policy's organisations (inline first, then each
// organisationsFrom key in order), deduplicated by lower-case UUID and sorted
// by UUID, with every problem met on the way. A name given inline wins over
// one from a ConfigMap.
func EffectiveOrgs(p *v1alpha1.OrgTrustPolicy, lookup LookupFunc) ([]Org, []Problem, error) {
	seen := make(map[string]int, len(p.Spec.Organisations))
	var orgs []Org
	var problems []Problem
	add := func(source string, o Org) {
		if i, dup := seen[o.UUID]; dup {
			if orgs[i].Name == "" {
				orgs[i].Name = o.Name
			}
			if source == "spec.organisations" {
				problems = append(problems, Problem{Source: source, Reason: fmt.Sprintf("%s is listed twice (UUIDs are compared in lower case)", o.UUID)})
			}
			return
		}
		seen[o.UUID] = len(orgs)
		orgs = append(orgs, o)
	}
	for _, o := range p.Spec.Organisations {
		add("spec.organisations", Org{UUID: NormalizeUUID(o.UUID), Name: o.Name})
	}
	for _, ref := range p.Spec.OrganisationsFrom {
		source := ConfigMapSource(ref)
		value, found, err := lookup(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", source, err)
		}
		if !found {
			problems = append(problems, Problem{Source: source, Reason: "ConfigMap or key not found"})
			continue
		}
		list, bad := ParseOrgList(source, value)
		problems = append(problems, bad...)
		for _, o := range list {
			add(source, o)
		}
	}
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].UUID < orgs[j].UUID })
	return orgs, problems, nil
}
