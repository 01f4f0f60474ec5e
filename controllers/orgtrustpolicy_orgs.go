package controllers

import (
	"context"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// configMapData serves organisationsFrom lookups. ConfigMaps are watched as
// metadata only (the controller does not keep every ConfigMap of the cluster
// in memory); the data of the referenced ones is read from the API server
// and kept until their resourceVersion changes, so sibling policies and
// resyncs do not re-read a 10,000-line list.
type configMapData struct {
	meta client.Reader
	live client.Reader

	mu sync.Mutex
	m  map[types.NamespacedName]configMapEntry
}

type configMapEntry struct {
	rv   string
	data map[string]string
}

func newConfigMapData(meta, live client.Reader) *configMapData {
	return &configMapData{meta: meta, live: live, m: map[types.NamespacedName]configMapEntry{}}
}

// lookup returns a trust.LookupFunc for ConfigMaps of namespace ns.
func (c *configMapData) lookup(ctx context.Context, ns string) trust.LookupFunc {
	return func(ref v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		data, found, err := c.get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name})
		if err != nil || !found {
			return "", false, err
		}
		v, ok := data[ref.Key]
		return v, ok, nil
	}
}

func (c *configMapData) get(ctx context.Context, name types.NamespacedName) (map[string]string, bool, error) {
	var pm metav1.PartialObjectMetadata
	pm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := c.meta.Get(ctx, name, &pm); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read metadata of ConfigMap %s: %w", name, err)
	}
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && e.rv == pm.ResourceVersion {
		return e.data, true, nil
	}
	var cm corev1.ConfigMap
	if err := c.live.Get(ctx, name, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read ConfigMap %s: %w", name, err)
	}
	c.mu.Lock()
	c.m[name] = configMapEntry{rv: cm.ResourceVersion, data: cm.Data}
	c.mu.Unlock()
	return cm.Data, true, nil
}

func (c *configMapData) forget(name types.NamespacedName) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// resolution is what the precedence rule decides for one policy.
type resolution struct {
	Orgs     []trust.Org     // every organisation the policy lists (deduplicated, sorted)
	Problems []trust.Problem // organisationsFrom problems
	Won      []trust.Org     // the organisations it wins: its warninglist entries
	Losses   []trust.Loss    // the organisations other policies win
	// Sharers are the policy's sharing organisations; WonSharers those whose
	// "sharer:" entry is in its list; Overlaps the organisations that are a
	// creator here and a sharer elsewhere (or the reverse).
	Sharers    []trust.Sharer
	WonSharers []trust.Sharer
	Overlaps   []trust.Overlap
	// SourceMissing is set when an organisationsFrom ConfigMap or key is
	// missing: the list is then left as it is (see orgtrustpolicy_controller.go).
	SourceMissing bool
	// NameOwner is the key of an older sibling policy that manages the same
	// warninglist name, when there is one.
	NameOwner string
}

// resolve computes the policy's organisations and applies trust.Resolve over
// the live (not being deleted) policies of the same instance.
func (r *OrgTrustPolicyReconciler) resolve(ctx context.Context, p *v1alpha1.OrgTrustPolicy) (resolution, error) {
	var res resolution
	lookup := r.configMaps.lookup(ctx, p.Namespace)
	orgs, problems, err := trust.EffectiveOrgs(p, lookup)
	if err != nil {
		return res, fmt.Errorf("organisations of OrgTrustPolicy %s/%s: %w", p.Namespace, p.Name, err)
	}
	sharers, sharerProblems := trust.EffectiveSharers(p)
	problems = append(problems, sharerProblems...)
	res.Orgs, res.Problems, res.Sharers = orgs, problems, sharers
	for _, pr := range problems {
		if pr.Line == 0 && pr.Source != "spec.organisations" {
			res.SourceMissing = true
		}
	}

	var siblings v1alpha1.OrgTrustPolicyList
	if err := r.client.List(ctx, &siblings, client.InNamespace(p.Namespace), client.MatchingFields{indexPolicyInstance: p.Spec.InstanceRef.Name}); err != nil {
		return res, fmt.Errorf("list OrgTrustPolicies of MISPInstance %s/%s: %w", p.Namespace, p.Spec.InstanceRef.Name, err)
	}
	self := trust.Key(p)
	cands := []trust.Candidate{{Key: self, Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability, Orgs: orgs, Sharers: sharers}}
	name := trust.WarninglistName(p)
	var nameUsers []*v1alpha1.OrgTrustPolicy
	for i := range siblings.Items {
		s := &siblings.Items[i]
		if s.UID == p.UID || trust.Key(s) == self || !s.DeletionTimestamp.IsZero() {
			continue
		}
		sOrgs, _, err := trust.EffectiveOrgs(s, lookup)
		if err != nil {
			return res, fmt.Errorf("organisations of sibling OrgTrustPolicy %s: %w", trust.Key(s), err)
		}
		sSharers, _ := trust.EffectiveSharers(s)
		cands = append(cands, trust.Candidate{Key: trust.Key(s), Priority: trust.Priority(s), SourceReliability: s.Spec.SourceReliability, Orgs: sOrgs, Sharers: sSharers})
		if trust.WarninglistName(s) == name {
			nameUsers = append(nameUsers, s)
		}
	}
	rs := trust.Resolve(cands)
	res.Losses = rs.Losses[self]
	ss := trust.ResolveSharers(cands)
	res.Losses = append(res.Losses, ss.Losses[self]...)
	res.WonSharers = trust.WonSharers(ss, cands[0])
	res.Overlaps = trust.Overlaps(cands)[self]
	res.Won = make([]trust.Org, 0, len(orgs))
	for _, o := range orgs {
		if rs.Winner[o.UUID] == self {
			res.Won = append(res.Won, o)
		}
	}
	if len(nameUsers) > 0 {
		// The oldest policy keeps a warninglist name (then the policy key): a new
		// policy that copies a name never takes the list over.
		nameUsers = append(nameUsers, p)
		sort.SliceStable(nameUsers, func(i, j int) bool {
			a, b := nameUsers[i], nameUsers[j]
			if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
				return a.CreationTimestamp.Before(&b.CreationTimestamp)
			}
			return trust.Key(a) < trust.Key(b)
		})
		if owner := nameUsers[0]; owner != p {
			res.NameOwner = trust.Key(owner)
		}
	}
	return res, nil
}
