package trust

import (
	"fmt"
	"sort"
)

// Candidate is one policy of an instance as the precedence rule sees it.
type Candidate struct {
	Key               string // "namespace/name", see Key
	Priority          int32
	SourceReliability string   // a..g
	Orgs              []Org    // creator rules
	Sharers           []Sharer // sharer rules (match.go)
}

// Beats reports whether a wins an organisation listed in both a and b: the
// highest priority, then the more reliable grade (a before b ... g), then the
// policy key in alphabetical order. The rule is total, so every process that
// applies it to the same policies reaches the same result.
func Beats(a, b Candidate) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.SourceReliability != b.SourceReliability {
		return a.SourceReliability < b.SourceReliability
	}
	return a.Key < b.Key
}

// Why says which step of Beats decides between a and b, for a person reading a
// plan or an explanation: "priority 100 > 50", "grade a before c" or "name
// ns/alpha before ns/beta". It names the winner's value first; the caller knows
// which one won (Beats). Kept next to Beats so the explanation cannot drift
// from the rule.
func Why(a, b Candidate) string {
	w, l := a, b
	if Beats(b, a) {
		w, l = b, a
	}
	switch {
	case w.Priority != l.Priority:
		return fmt.Sprintf("priority %d > %d", w.Priority, l.Priority)
	case w.SourceReliability != l.SourceReliability:
		return fmt.Sprintf("same priority %d, grade %s before %s", w.Priority, w.SourceReliability, l.SourceReliability)
	}
	return fmt.Sprintf("same priority %d and grade %s, name %s before %s", w.Priority, w.SourceReliability, w.Key, l.Key)
}

// Loss is an organisation a policy lists but another policy wins.
type Loss struct {
	OrgUUID string
	Winner  string // key of the winning policy
}

// Resolution is the outcome of the precedence rule over the policies of one
// instance.
type Resolution struct {
	// Winner maps each organisation UUID to the key of the policy that wins it.
	Winner map[string]string
	// Losses lists, per policy key, the organisations it lists but loses,
	// sorted by UUID.
	Losses map[string][]Loss
}

// Resolve applies the precedence rule to the policies of one instance.
func Resolve(cands []Candidate) Resolution {
	ordered := make([]Candidate, len(cands))
	copy(ordered, cands)
	sort.SliceStable(ordered, func(i, j int) bool { return Beats(ordered[i], ordered[j]) })

	size := 0
	for _, c := range ordered {
		size += len(c.Orgs)
	}
	res := Resolution{Winner: make(map[string]string, size), Losses: map[string][]Loss{}}
	for _, c := range ordered {
		for _, o := range c.Orgs {
			if w, taken := res.Winner[o.UUID]; taken {
				if w != c.Key {
					res.Losses[c.Key] = append(res.Losses[c.Key], Loss{OrgUUID: o.UUID, Winner: w})
				}
				continue
			}
			res.Winner[o.UUID] = c.Key
		}
	}
	for k := range res.Losses {
		l := res.Losses[k]
		sort.Slice(l, func(i, j int) bool { return l[i].OrgUUID < l[j].OrgUUID })
	}
	return res
}
