package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// resolution is what the precedence rule decides for one policy.
type resolution struct {
	Orgs     int             // organisations the policy lists (deduplicated)
	Problems []trust.Problem // organisation source problems (capped per source)
	Won      []trust.Org     // the organisations it wins: its warninglist entries, sorted
	// Losses are the first organisations other policies win (maxListed of
	// them); LossCount counts them all.
	Losses    []trust.Loss
	LossCount int
	// Unusable is the first organisationsFrom source that could not be read at
	// all (missing, or its ConfigMap did not opt in): the list is then left as
	// it is (see orgtrustpolicy_controller.go).
	Unusable *trust.Problem
	// Sharers are the policy's sharing organisations; WonSharers those whose
	// "sharer:" entry is in its list; Overlaps the organisations that are a
	// creator here and a sharer elsewhere (or the reverse).
	Sharers    []trust.Sharer
	WonSharers []trust.Sharer
	Overlaps   []trust.Overlap
	// NameOwner is the key of an older sibling policy that manages the same
	// warninglist name, when there is one.
	NameOwner string
}

// precedence applies the precedence rule once per MISPInstance and keeps the
// outcome until one of its inputs changes: a policy of the instance (added,
// deleted, its spec) or a ConfigMap one of them reads (its resourceVersion).
// A change of one policy reconciles all its siblings; each of them then
// reuses the one computation instead of parsing every sibling's organisations
// again (O(P²·N) per change otherwise).
type precedence struct {
	sources *trust.ConfigMapOrgs

	mu sync.Mutex
	m  map[types.NamespacedName]*instancePrecedence
	// instanceOf remembers each policy's instance, so the entry of an instance
	// whose last policy is deleted does not stay in memory.
	instanceOf map[types.NamespacedName]types.NamespacedName
	// computed counts the computations (tests).
	computed atomic.Int64
}

type instancePrecedence struct {
	mu       sync.Mutex // held while computing, so concurrent siblings compute once
	sig      string
	byPolicy map[string]*resolution // by trust.Key, without NameOwner
}

func newPrecedence(sources *trust.ConfigMapOrgs) *precedence {
	return &precedence{sources: sources, m: map[types.NamespacedName]*instancePrecedence{},
		instanceOf: map[types.NamespacedName]types.NamespacedName{}}
}

func (pr *precedence) entry(policy, inst types.NamespacedName) *instancePrecedence {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.instanceOf[policy] = inst
	e := pr.m[inst]
	if e == nil {
		e = &instancePrecedence{}
		pr.m[inst] = e
	}
	return e
}

// forgetPolicy drops what was computed for the instance of a deleted policy:
// its siblings (if any) compute again without it.
func (pr *precedence) forgetPolicy(policy types.NamespacedName) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if inst, ok := pr.instanceOf[policy]; ok {
		delete(pr.instanceOf, policy)
		delete(pr.m, inst)
	}
}

// resolve computes the policy's organisations and applies the precedence rule
// over the live (not being deleted) policies of the same instance.
func (r *OrgTrustPolicyReconciler) resolve(ctx context.Context, p *v1alpha1.OrgTrustPolicy) (resolution, error) {
	var siblings v1alpha1.OrgTrustPolicyList
	if err := r.client.List(ctx, &siblings, client.InNamespace(p.Namespace), client.MatchingFields{indexPolicyInstance: p.Spec.InstanceRef.Name}); err != nil {
		return resolution{}, fmt.Errorf("list OrgTrustPolicies of MISPInstance %s/%s: %w", p.Namespace, p.Spec.InstanceRef.Name, err)
	}
	self := trust.Key(p)
	live := []*v1alpha1.OrgTrustPolicy{p}
	for i := range siblings.Items {
		s := &siblings.Items[i]
		if s.UID == p.UID || trust.Key(s) == self || !s.DeletionTimestamp.IsZero() {
			continue
		}
		live = append(live, s)
	}
	sort.Slice(live, func(i, j int) bool { return trust.Key(live[i]) < trust.Key(live[j]) })

	instKey := types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.InstanceRef.Name}
	byPolicy, err := r.precedence.compute(ctx, client.ObjectKeyFromObject(p), instKey, live)
	if err != nil {
		return resolution{}, err
	}
	res := *byPolicy[self]
	res.NameOwner = nameOwner(p, live)
	return res, nil
}

// compute returns the resolution of every live policy of one instance, from
// the cache when no input changed.
func (pr *precedence) compute(ctx context.Context, policy, inst types.NamespacedName, live []*v1alpha1.OrgTrustPolicy) (map[string]*resolution, error) {
	sig, err := pr.signature(ctx, inst.Namespace, live)
	if err != nil {
		return nil, err
	}
	e := pr.entry(policy, inst)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sig == sig && e.byPolicy != nil {
		return e.byPolicy, nil
	}
	read := pr.sources.Reader(ctx, inst.Namespace)
	cands := make([]trust.Candidate, 0, len(live))
	byPolicy := make(map[string]*resolution, len(live))
	for _, s := range live {
		orgs, problems, err := trust.EffectiveOrgsFrom(s, read)
		if err != nil {
			return nil, fmt.Errorf("organisations of OrgTrustPolicy %s: %w", trust.Key(s), err)
		}
		sharers, sharerProblems := trust.EffectiveSharers(s)
		problems = append(problems, sharerProblems...)
		res := &resolution{Orgs: len(orgs), Problems: problems, Sharers: sharers}
		for i := range problems {
			if problems[i].Unusable() {
				res.Unusable = &problems[i]
				break
			}
		}
		byPolicy[trust.Key(s)] = res
		cands = append(cands, trust.Candidate{Key: trust.Key(s), Priority: trust.Priority(s), SourceReliability: s.Spec.SourceReliability, Orgs: orgs, Sharers: sharers})
	}
	pr.computed.Add(1)
	part := trust.Partition(cands, maxListed)
	// Sharer lists are short (spec.sharingOrganisations, bounded by the CRD):
	// the map-based rule is fine for them.
	ss := trust.ResolveSharers(cands)
	overlaps := trust.Overlaps(cands)
	for _, c := range cands {
		res := byPolicy[c.Key]
		res.Won = part.Won[c.Key]
		res.Losses, res.LossCount = part.Losses[c.Key], part.LossCount[c.Key]
		// Sharer losses are reported like creator losses, within the same cap.
		lost := ss.Losses[c.Key]
		res.LossCount += len(lost)
		if room := maxListed - len(res.Losses); room > 0 {
			res.Losses = append(slices.Clip(res.Losses), lost[:min(room, len(lost))]...)
		}
		res.WonSharers = trust.WonSharers(ss, c)
		res.Overlaps = overlaps[c.Key]
	}
	e.sig, e.byPolicy = sig, byPolicy
	return byPolicy, nil
}

// signature identifies every input of the rule for one instance: each live
// policy (uid and generation: its spec) and each ConfigMap they read (uid and
// resourceVersion: its data and its opt-in label).
func (pr *precedence) signature(ctx context.Context, ns string, live []*v1alpha1.OrgTrustPolicy) (string, error) {
	var b strings.Builder
	var names []string
	for _, s := range live {
		fmt.Fprintf(&b, "%s/%s/%d;", trust.Key(s), s.UID, s.Generation)
		for _, ref := range s.Spec.OrganisationsFrom {
			if !slices.Contains(names, ref.Name) {
				names = append(names, ref.Name)
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		v, err := pr.sources.Version(ctx, ns, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "cm:%s=%s;", n, v)
	}
	return b.String(), nil
}

// nameOwner returns the key of the policy that keeps p's warninglist name when
// several live policies of the instance use it: the oldest (then the policy
// key), so a new policy that copies a name never takes the list over.
func nameOwner(p *v1alpha1.OrgTrustPolicy, live []*v1alpha1.OrgTrustPolicy) string {
	name := trust.WarninglistName(p)
	var users []*v1alpha1.OrgTrustPolicy
	for _, s := range live {
		if trust.WarninglistName(s) == name {
			users = append(users, s)
		}
	}
	if len(users) < 2 {
		return ""
	}
	sort.SliceStable(users, func(i, j int) bool {
		a, b := users[i], users[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return trust.Key(a) < trust.Key(b)
	})
	if owner := users[0]; owner != p {
		return trust.Key(owner)
	}
	return ""
}
