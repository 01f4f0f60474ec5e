package charts_test

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// ruleSet flattens RBAC rules into "group/resource:verb" permissions, with the
// resourceNames they are limited to (nil: any name).
type ruleSet struct {
	perms map[string][]string
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) ruleSet {
	t.Helper()
	var role rbacv1.ClusterRole // Role and ClusterRole share the rules field
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	rs := ruleSet{perms: map[string][]string{}}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					key := g + "/" + res + ":" + v
					if len(r.ResourceNames) == 0 {
						rs.perms[key] = nil
						continue
					}
					if names, ok := rs.perms[key]; ok && names == nil {
						continue // already allowed for any name
					}
					rs.perms[key] = append(rs.perms[key], r.ResourceNames...)
				}
			}
		}
	}
	return rs
}

// allows reports whether perm is granted for every resource name.
func (rs ruleSet) allows(perm string) bool {
	names, ok := rs.perms[perm]
	return ok && names == nil
}

// allowsNamed reports whether perm is granted on the named object.
func (rs ruleSet) allowsNamed(perm, name string) bool {
	names, ok := rs.perms[perm]
	if !ok {
		return false
	}
	if names == nil {
		return true
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// covers reports whether perm is granted on every name in names (nil: on any name).
func (rs ruleSet) covers(perm string, names []string) bool {
	if names == nil {
		return rs.allows(perm)
	}
	for _, n := range names {
		if !rs.allowsNamed(perm, n) {
			return false
		}
	}
	return true
}
