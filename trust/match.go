package trust

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// SharerValuePrefix starts the warninglist entry of a sharing organisation. The
// API refuses it as a valuePrefix, so a sharer entry never reads as a creator
// entry (creator entries are "<valuePrefix><uuid>", "org_uuid:<uuid>" by default).
const SharerValuePrefix = "sharer:"

// Sharer is one sharing-organisation rule of a policy: the sync partner that
// shared an event with our MISP, optionally narrowed to connected servers.
type Sharer struct {
	UUID    string   // lower case
	Name    string   //
	Servers []string // local server ids; empty = any server and pushes
}

// Source is where an event came from, as far as the curator knows.
type Source struct {
	// Creator is the Orgc UUID.
	Creator string
	// Sharer is the partner organisation's UUID: for a pushed event the owner org
	// (Event.org_id), for a pulled event the remote org of the connected server.
	// Empty when unknown (a local event, or catch-up of a pulled event).
	Sharer string
	// Server is the local id of the connected server a pulled event came
	// through; empty for a pushed event.
	Server string
}

// Matches reports whether the rule matches an event shared by s.Sharer through s.Server.
func (r Sharer) Matches(s Source) bool {
	if s.Sharer == "" || r.UUID != NormalizeUUID(s.Sharer) {
		return false
	}
	return len(r.Servers) == 0 || (s.Server != "" && slices.Contains(r.Servers, s.Server))
}

// EffectiveSharers returns the policy's sharing organisations, deduplicated by
// lower-case UUID and sorted by UUID, with their server lists sorted.
func EffectiveSharers(p *v1alpha1.OrgTrustPolicy) ([]Sharer, []Problem) {
	var out []Sharer
	var problems []Problem
	seen := map[string]bool{}
	for _, s := range p.Spec.SharingOrganisations {
		u := NormalizeUUID(s.UUID)
		if seen[u] {
			problems = append(problems, Problem{Source: "spec.sharingOrganisations", Reason: fmt.Sprintf("%s is listed twice (UUIDs are compared in lower case)", u)})
			continue
		}
		seen[u] = true
		servers := slices.Clone(s.Servers)
		sort.Strings(servers)
		out = append(out, Sharer{UUID: u, Name: s.Name, Servers: slices.Compact(servers)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out, problems
}

// Via says which rule of the winning policy matched an event.
type Via string

const (
	ViaCreator Via = "creator"
	ViaSharer  Via = "sharer"
)

// Match is the precedence rule for one event: every policy whose creator rule
// (Orgs) or sharer rule (Sharers) matches the source is a candidate, and the one
// that Beats all others wins. Creator and sharer rules are NOT ranked against
// each other by kind: priority, then grade, then name decide, exactly as between
// two creator rules, so one total order serves the controller, the curator and
// plan/explain. To grade a hub's re-shares below what its members send directly,
// give the hub's sharer policy the higher priority. When the winner matches by
// both rules, Via is ViaCreator. The index returned is into cands; -1 when no
// policy matches.
func Match(cands []Candidate, s Source) (winner int, via Via) {
	winner = -1
	creator := NormalizeUUID(s.Creator)
	for i, c := range cands {
		v := Via("")
		if creator != "" && hasOrg(c.Orgs, creator) {
			v = ViaCreator
		} else if matchesAny(c.Sharers, s) {
			v = ViaSharer
		}
		if v == "" {
			continue
		}
		if winner < 0 || Beats(c, cands[winner]) {
			winner, via = i, v
		}
	}
	return winner, via
}

// Overlap is an organisation that is a creator in one policy and a sharer in
// another (or the same): its own events, shared by itself, match both.
type Overlap struct {
	OrgUUID string
	Creator string // key of the policy listing it as creator
	Sharer  string // key of the policy listing it as sharer
	Winner  string // who curates an event created and pushed by the organisation
}

// String is the sentence shown in the SourceOverlaps condition.
func (o Overlap) String() string {
	return fmt.Sprintf("%s is a creator in %s and a sharer in %s: its own shared events go to %s", o.OrgUUID, o.Creator, o.Sharer, o.Winner)
}

// Overlaps lists, per policy key, the overlaps the policy takes part in, sorted
// by organisation then policies. Winner is computed with Match for an event the
// organisation created and pushed itself, so it is the policy the curator uses.
func Overlaps(cands []Candidate) map[string][]Overlap {
	sharers := map[string][]string{} // org → keys listing it as sharer
	for _, c := range cands {
		for _, s := range c.Sharers {
			sharers[s.UUID] = append(sharers[s.UUID], c.Key)
		}
	}
	out := map[string][]Overlap{}
	if len(sharers) == 0 {
		return out
	}
	for _, c := range cands {
		for _, o := range c.Orgs {
			for _, sk := range sharers[o.UUID] {
				w, _ := Match(cands, Source{Creator: o.UUID, Sharer: o.UUID})
				ov := Overlap{OrgUUID: o.UUID, Creator: c.Key, Sharer: sk, Winner: cands[w].Key}
				out[c.Key] = append(out[c.Key], ov)
				if sk != c.Key {
					out[sk] = append(out[sk], ov)
				}
			}
		}
	}
	for k, l := range out {
		sort.Slice(l, func(i, j int) bool {
			a, b := l[i], l[j]
			if a.OrgUUID != b.OrgUUID {
				return a.OrgUUID < b.OrgUUID
			}
			return a.Creator+"\x00"+a.Sharer < b.Creator+"\x00"+b.Sharer
		})
		out[k] = l
	}
	return out
}

// ResolveSharers decides, per sharing organisation, which policy's warninglist
// holds its "sharer:" entry: the first by Beats among the policies listing it
// (the policy that curates its shares when no server narrowing intervenes).
// Losses are reported like creator losses.
func ResolveSharers(cands []Candidate) Resolution {
	asOrgs := make([]Candidate, len(cands))
	for i, c := range cands {
		asOrgs[i] = c
		asOrgs[i].Orgs = make([]Org, len(c.Sharers))
		for j, s := range c.Sharers {
			asOrgs[i].Orgs[j] = Org{UUID: s.UUID, Name: s.Name}
		}
	}
	return Resolve(asOrgs)
}

// WonSharers returns the sharers of candidate key that ResolveSharers gives it,
// in the candidate's order.
func WonSharers(res Resolution, c Candidate) []Sharer {
	var out []Sharer
	for _, s := range c.Sharers {
		if res.Winner[s.UUID] == c.Key {
			out = append(out, s)
		}
	}
	return out
}

// SharerComment is the warninglist comment of a sharer entry: the name, and the
// servers it is narrowed to.
func SharerComment(s Sharer) string {
	c := strings.TrimSpace(s.Name)
	if len(s.Servers) > 0 {
		via := "via server " + strings.Join(s.Servers, ", ")
		if c == "" {
			return via
		}
		c += " (" + via + ")"
	}
	return c
}

func hasOrg(orgs []Org, uuid string) bool {
	return slices.ContainsFunc(orgs, func(o Org) bool { return o.UUID == uuid })
}

func matchesAny(rules []Sharer, s Source) bool {
	for _, r := range rules {
		if r.Matches(s) {
			return true
		}
	}
	return false
}
