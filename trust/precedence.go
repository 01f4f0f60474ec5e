package trust

import (
	"container/heap"
	"fmt"
	"slices"
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
	p := Partition(cands, 0)
	size := 0
	for _, won := range p.Won {
		size += len(won)
	}
	res := Resolution{Winner: make(map[string]string, size), Losses: p.Losses}
	for key, won := range p.Won {
		for _, o := range won {
			res.Winner[o.UUID] = key
		}
	}
	return res
}

// Partitioned is the precedence rule's outcome in the shape the components
// use: what each policy wins and loses, without a map over every organisation.
type Partitioned struct {
	// Won lists, per policy key, the organisations it wins, sorted by UUID.
	// Every candidate has an entry, possibly empty.
	Won map[string][]Org
	// Losses lists, per policy key, organisations it lists but loses, sorted
	// by UUID: all of them, or the first maxLosses (LossCount has the total).
	Losses    map[string][]Loss
	LossCount map[string]int
}

// Partition applies the precedence rule to the policies of one instance by
// merging their organisation lists in UUID order: its memory is the result
// (what each policy wins), not a map over every organisation. maxLosses > 0
// keeps only the first maxLosses losses of each policy (a condition lists a
// few; the count is kept whole).
func Partition(cands []Candidate, maxLosses int) Partitioned {
	ordered := make([]Candidate, len(cands))
	copy(ordered, cands)
	sort.SliceStable(ordered, func(i, j int) bool { return Beats(ordered[i], ordered[j]) })
	for i := range ordered {
		ordered[i].Orgs = sortedOrgs(ordered[i].Orgs)
	}
	out := Partitioned{Won: make(map[string][]Org, len(cands)), Losses: map[string][]Loss{}, LossCount: map[string]int{}}

	// Two walks: the first counts, so that a policy that wins every organisation
	// it lists (the usual case) shares its own list instead of a copy.
	wins := make([]int, len(ordered))
	walk(ordered, func(org Org, winner, loser int) {
		if loser < 0 {
			wins[winner]++
		}
	})
	won := make([][]Org, len(ordered))
	share := make([]bool, len(ordered))
	for i, c := range ordered {
		if wins[i] == len(c.Orgs) {
			won[i], share[i] = c.Orgs, true
		} else {
			won[i] = make([]Org, 0, wins[i])
		}
	}
	walk(ordered, func(org Org, winner, loser int) {
		if loser < 0 {
			if !share[winner] {
				won[winner] = append(won[winner], org)
			}
			return
		}
		key, wkey := ordered[loser].Key, ordered[winner].Key
		if key == wkey {
			return
		}
		out.LossCount[key]++
		if maxLosses <= 0 || len(out.Losses[key]) < maxLosses {
			out.Losses[key] = append(out.Losses[key], Loss{OrgUUID: org.UUID, Winner: wkey})
		}
	})
	for i, c := range ordered {
		switch prev, seen := out.Won[c.Key]; {
		case !seen || len(prev) == 0:
			out.Won[c.Key] = won[i]
		case len(won[i]) > 0: // the same key twice (a caller's merge): both lists
			out.Won[c.Key] = append(slices.Clip(prev), won[i]...)
		}
	}
	return out
}

// walk merges the candidates' sorted lists in UUID order and calls visit once
// per organisation with its winner (loser -1), then once per candidate that
// also lists it and loses it.
func walk(ordered []Candidate, visit func(org Org, winner, loser int)) {
	h := make(cursorHeap, 0, len(ordered))
	for rank, c := range ordered {
		if len(c.Orgs) > 0 {
			h = append(h, &cursor{rank: rank, orgs: c.Orgs})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		// The lowest UUID; among equal UUIDs the best-ranked candidate first.
		top := h[0]
		org := top.orgs[top.pos]
		visit(org, top.rank, -1)
		for h.Len() > 0 && h[0].orgs[h[0].pos].UUID == org.UUID {
			c := h[0]
			if c != top {
				visit(org, top.rank, c.rank)
			}
			// Skip this UUID in the candidate (it may list it more than once).
			for c.pos < len(c.orgs) && c.orgs[c.pos].UUID == org.UUID {
				c.pos++
			}
			if c.pos == len(c.orgs) {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
		}
	}
}

// cursor walks one candidate's organisations in UUID order.
type cursor struct {
	rank int // position in precedence order: lower wins
	orgs []Org
	pos  int
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].orgs[h[i].pos].UUID, h[j].orgs[h[j].pos].UUID
	if a != b {
		return a < b
	}
	return h[i].rank < h[j].rank
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
