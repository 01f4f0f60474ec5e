// Package index is the curator's in-memory trust index of one MISPInstance: creator
// organisation UUID → the effective curation policy of that organisation.
//
// A Snapshot is immutable and built in one go from the instance's OrgTrustPolicies with
// the shared precedence rule of package trust (trust.Partition), so the curator tags with
// exactly the policy the controller reports as the winner. An Index holds the current
// Snapshot behind an atomic pointer: lookups never take a lock and a policy change
// swaps the whole snapshot at once, so a curation never sees half of an update.
//
// Memory: organisations are keyed by their 16 UUID bytes and point at a shared,
// per-policy entry, so 100,000 organisations cost a few MiB (see BenchmarkBuild).
package index

import (
	"slices"
	"sort"
	"sync/atomic"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Policy is the effective curation policy of an organisation: what the curator does to
// the events it creates.
type Policy struct {
	// Key is the winning OrgTrustPolicy, "namespace/name" (trust.Key).
	Key string
	// Tags are attached as local tags, in trust.Tags order; for a publishing policy they
	// include workflow:state="complete". Shared between lookups: do not modify.
	Tags []string
	// Publish: remove workflow:state="incomplete" and publish the event.
	Publish bool
}

// Equal reports whether two policies curate events identically (same key, tags and publish).
func (p Policy) Equal(q Policy) bool {
	return p.Key == q.Key && p.Publish == q.Publish && slices.Equal(p.Tags, q.Tags)
}

// sameEffect reports whether two policies leave an event in the same state (the key,
// which only matters for status attribution, is ignored).
func (p Policy) sameEffect(q Policy) bool {
	return p.Publish == q.Publish && slices.Equal(p.Tags, q.Tags)
}

// uuidKey is a UUID as 16 bytes: a third of the size of its text as a map key.
type uuidKey [16]byte

// parseUUID reads a UUID in any case (8-4-4-4-12 hex digits).
func parseUUID(s string) (uuidKey, bool) {
	var k uuidKey
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return k, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[j] = hi<<4 | lo
		j++
		i += 2
	}
	return k, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// String formats the key as a lower-case UUID, as MISP writes them.
func (k uuidKey) String() string {
	var b [36]byte
	j := 0
	for i, v := range k {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[v>>4], hexDigits[v&0xf]
		j += 2
	}
	return string(b[:])
}

// Snapshot is the immutable trust index of one instance at one point in time.
type Snapshot struct {
	orgs map[uuidKey]int32 // org → index in policies
	// sharers: sharing org → its sharer rules, best first by trust.Beats (LookupSource).
	sharers  map[uuidKey][]sharerRule
	cands    []trust.Candidate // per policy index: priority, grade, key (no orgs) for trust.Beats
	policies []Policy          // sorted by key
	counts   []int             // organisations won, per policy
}

// Build resolves the policies of ONE instance into a Snapshot. orgsOf returns a policy's
// effective organisations (trust.EffectiveOrgs, already read by the caller, which owns
// the ConfigMap lookups and their errors). Policies being deleted (deletionTimestamp
// set) are left out: they stop applying as soon as their deletion starts. Organisation
// UUIDs that are not UUIDs are ignored (the schema and trust.ParseOrgList refuse them).
// An organisation listed in several policies goes to the winner of trust.Partition.
func Build(policies []*v1alpha1.OrgTrustPolicy, orgsOf func(*v1alpha1.OrgTrustPolicy) []trust.Org) *Snapshot {
	cands := make([]trust.Candidate, 0, len(policies))
	byKey := make(map[string]*v1alpha1.OrgTrustPolicy, len(policies))
	for _, p := range policies {
		if p == nil || p.DeletionTimestamp != nil {
			continue
		}
		key := trust.Key(p)
		if _, dup := byKey[key]; dup {
			continue // the same object twice (a caller's list merge): keep the first
		}
		byKey[key] = p
		cands = append(cands, trust.Candidate{
			Key:               key,
			Priority:          trust.Priority(p),
			SourceReliability: p.Spec.SourceReliability,
			Orgs:              orgsOf(p),
		})
	}
	// Partition, not Resolve: no map from every UUID string to a policy key is built
	// on the way to the compact one below.
	res := trust.Partition(cands, 1)
	size := 0
	for _, won := range res.Won {
		size += len(won)
	}
	sort.SliceStable(cands, func(i, j int) bool { return trust.Beats(cands[i], cands[j]) })

	s := &Snapshot{orgs: make(map[uuidKey]int32, size)}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pos := make(map[string]int32, len(keys))
	for i, k := range keys {
		p := byKey[k]
		s.policies = append(s.policies, Policy{Key: k, Tags: trust.Tags(p), Publish: p.Spec.Publish})
		s.cands = append(s.cands, trust.Candidate{Key: k, Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability})
		pos[k] = int32(i)
	}
	// cands is in precedence order, so each org's rule list is best first.
	for _, c := range cands {
		sharers, _ := trust.EffectiveSharers(byKey[c.Key])
		for _, sh := range sharers {
			k, ok := parseUUID(sh.UUID)
			if !ok {
				continue
			}
			if s.sharers == nil {
				s.sharers = map[uuidKey][]sharerRule{}
			}
			s.sharers[k] = append(s.sharers[k], sharerRule{policy: pos[c.Key], rule: sh})
		}
	}
	s.counts = make([]int, len(keys))
	for winner, won := range res.Won {
		i := pos[winner]
		for _, o := range won {
			k, ok := parseUUID(o.UUID)
			if !ok {
				continue
			}
			s.orgs[k] = i
			s.counts[i]++
		}
	}
	return s
}

// Lookup returns the effective policy of an organisation (UUID in any case). A nil
// Snapshot knows no organisation.
func (s *Snapshot) Lookup(orgUUID string) (Policy, bool) {
	if s == nil {
		return Policy{}, false
	}
	k, ok := parseUUID(orgUUID)
	if !ok {
		return Policy{}, false
	}
	i, ok := s.orgs[k]
	if !ok {
		return Policy{}, false
	}
	return s.policies[i], true
}

type sharerRule struct {
	policy int32
	rule   trust.Sharer
}

// LookupSource returns the policy that curates an event from src: the winner of
// trust.Match between the creator's policy and the sharer rules matching the
// sharer (and server), without a lock or an allocation. via says which rule matched.
func (s *Snapshot) LookupSource(src trust.Source) (p Policy, via trust.Via, ok bool) {
	if s == nil {
		return Policy{}, "", false
	}
	best := int32(-1)
	if k, valid := parseUUID(src.Creator); valid {
		if i, found := s.orgs[k]; found {
			best, via = i, trust.ViaCreator
		}
	}
	if k, valid := parseUUID(src.Sharer); valid && len(s.sharers) > 0 {
		for _, r := range s.sharers[k] {
			if !r.rule.Matches(src) {
				continue
			}
			// Rules are best first: the first match is the best sharer rule.
			if best < 0 || (r.policy != best && trust.Beats(s.cands[r.policy], s.cands[best])) {
				best, via = r.policy, trust.ViaSharer
			}
			break
		}
	}
	if best < 0 {
		return Policy{}, "", false
	}
	return s.policies[best], via, true
}

// HasSharers reports whether any policy has a sharer rule (when none has, the
// sharer of an event never needs to be known).
func (s *Snapshot) HasSharers() bool { return s != nil && len(s.sharers) > 0 }

// Len is the number of organisations with a policy.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.orgs)
}

// Policies returns every policy of the snapshot, sorted by key (policies that win no
// organisation included).
func (s *Snapshot) Policies() []Policy {
	if s == nil {
		return nil
	}
	return slices.Clone(s.policies)
}

// Orgs returns the organisations won by the policy key, sorted (for catch-up searches
// by creator org).
func (s *Snapshot) Orgs(key string) []string {
	if s == nil {
		return nil
	}
	i, found := slices.BinarySearchFunc(s.policies, key, func(p Policy, k string) int {
		switch {
		case p.Key < k:
			return -1
		case p.Key > k:
			return 1
		}
		return 0
	})
	if !found {
		return nil
	}
	out := make([]string, 0, s.counts[i])
	for k, pi := range s.orgs {
		if int(pi) == i {
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return out
}

// Index is the current trust index of one MISPInstance. The zero value is ready and
// knows no organisation. Safe for concurrent use; Lookup takes no lock.
type Index struct {
	cur atomic.Pointer[Snapshot]
}

// Store makes s the current snapshot (atomically; nil empties the index).
func (i *Index) Store(s *Snapshot) { i.cur.Store(s) }

// Load returns the current snapshot (nil before the first Store).
func (i *Index) Load() *Snapshot { return i.cur.Load() }

// Swap stores s and returns the previous snapshot, for Diff.
func (i *Index) Swap(s *Snapshot) *Snapshot { return i.cur.Swap(s) }

// Lookup returns the effective policy of an organisation in the current snapshot.
func (i *Index) Lookup(orgUUID string) (Policy, bool) {
	return i.cur.Load().Lookup(orgUUID)
}

// HasSharers is Snapshot.HasSharers on the current snapshot.
func (i *Index) HasSharers() bool { return i.cur.Load().HasSharers() }

// LookupSource is Snapshot.LookupSource on the current snapshot.
func (i *Index) LookupSource(src trust.Source) (Policy, trust.Via, bool) {
	return i.cur.Load().LookupSource(src)
}

// Diff returns the organisations (lower-case UUIDs, sorted) whose events must be curated
// again after old was replaced by new: those that have a policy in new and had none in
// old, or whose tags or publish flag changed. Organisations that lost their policy are
// not listed: the curator never removes tags it attached. A change of the winning
// policy's name alone (same tags, same publish) needs no re-curation and is not listed.
// Either snapshot may be nil.
func Diff(old, new *Snapshot) []string {
	if new == nil {
		return nil
	}
	var out []string
	for k, i := range new.orgs {
		np := new.policies[i]
		if old != nil {
			if j, ok := old.orgs[k]; ok && old.policies[j].sameEffect(np) {
				continue
			}
		}
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}
