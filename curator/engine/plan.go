package engine

import (
	"strings"

	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// eventState is what a plan is derived from: the event's tags (with their locality) and
// its published flag, read from MISP or learnt from the feed.
type eventState struct {
	Tags      []misp.Tag
	Published bool
}

// has reports whether a tag of that name is attached, local or global. MISP matches tag
// names case-insensitively (Tag.name LIKE, misp-api.md §2.4) and counts a tag attached
// with the other locality as already attached, so either copy satisfies the policy.
func (s eventState) has(name string) bool {
	for _, t := range s.Tags {
		if strings.EqualFold(t.Name, name) {
			return true
		}
	}
	return false
}

// gradePrefixes are the exclusive admiralty-scale predicates (misp-api.md §3.1): an
// event keeps one grade of each, the one of its creator org's current policy.
const (
	gradeReliability = "admiralty-scale:source-reliability="
	gradeCredibility = "admiralty-scale:information-credibility="
)

func isGrade(name string) bool {
	for _, p := range [...]string{gradeReliability, gradeCredibility} {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// makePlan derives the steps that bring an event to its policy's state, skipping every
// step whose result is already there (design.md §3):
//
//   - attach the missing policy tags (local) in one call;
//   - remove LOCAL admiralty-scale grades the policy does not give (left by an earlier
//     policy of the org, e.g. before a promotion; a grade predicate is exclusive). Global
//     ones belong to the partner and removing them would unpublish the event;
//   - for publishing policies remove workflow:state="incomplete" (local or global) and
//     publish when the event is unpublished — unless a publish of ours is queued in MISP
//     and not confirmed yet (publishInFlight, publish.go) — or when the removal of a
//     GLOBAL incomplete tag will unpublish it (misp-api.md §1.10; sync/api/59–60).
func makePlan(pol index.Policy, st eventState, publishInFlight bool) Plan {
	var p Plan
	for _, t := range pol.Tags {
		if !st.has(t) {
			p.Attach = append(p.Attach, t)
		}
	}
	for _, t := range st.Tags {
		if t.Local && isGrade(t.Name) && !containsFold(pol.Tags, t.Name) {
			p.Remove = append(p.Remove, t.Name)
		}
	}
	if !pol.Publish {
		return p
	}
	unpublishes := false
	for _, t := range st.Tags {
		if strings.EqualFold(t.Name, trust.TagWorkflowIncomplete) {
			p.Remove = append(p.Remove, t.Name)
			unpublishes = unpublishes || !t.Local
		}
	}
	switch {
	case !st.Published && !publishInFlight:
		p.Publish = true
	case unpublishes:
		p.PublishIfUnpublished = true
	}
	return p
}

// removalUnpublishes reports whether removing the tag named name unpublishes the event:
// only global tags do (misp-api.md §1.10).
func (s eventState) removalUnpublishes(name string) bool {
	for _, t := range s.Tags {
		if strings.EqualFold(t.Name, name) {
			return !t.Local
		}
	}
	return false
}

// after is the state once the plan has run: attached tags added (local), removed tags
// gone, published when we published or it was published and no global removal
// unpublished it.
func (s eventState) after(attached, removed []string, unpublished, published bool) eventState {
	out := eventState{Published: published || (s.Published && !unpublished)}
	for _, t := range s.Tags {
		if !containsFold(removed, t.Name) {
			out.Tags = append(out.Tags, t)
		}
	}
	for _, name := range attached {
		out.Tags = append(out.Tags, misp.Tag{Name: name, Local: true})
	}
	return out
}

// PlanFor is the plan the engine would follow for an event in the state m (as
// misp.Client.EventMeta or SearchEvents report it) under policy p, ignoring the
// engine's unconfirmed publishes. An empty plan means the event is
// curated: catch-up can use it to skip events that need nothing.
func PlanFor(p index.Policy, m misp.EventMeta) Plan {
	return makePlan(p, stateOf(m), false)
}
