package trust

import (
	"cmp"
	"container/heap"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// Org is one trusted organisation, UUID in lower case.
type Org struct {
	UUID string
	Name string
}

// ProblemKind says what a Problem is about.
type ProblemKind string

const (
	// ProblemLine: one line of a source is invalid (Line says which).
	ProblemLine ProblemKind = ""
	// ProblemMoreLines: Omitted more invalid lines of the source, not listed one
	// by one (MaxProblemsPerSource): a 1 MiB ConfigMap of junk must not become
	// half a million records.
	ProblemMoreLines ProblemKind = "MoreLines"
	// ProblemDuplicate: an inline UUID listed twice in different case.
	ProblemDuplicate ProblemKind = "Duplicate"
	// ProblemMissing: the ConfigMap or key does not exist.
	ProblemMissing ProblemKind = "Missing"
	// ProblemNotAllowed: the ConfigMap exists but does not carry the opt-in label
	// (AllowLabel), so it is not read.
	ProblemNotAllowed ProblemKind = "NotAllowed"
)

// Problem is one organisation source the policy could not use entirely: a bad
// line of an organisationsFrom key, a missing ConfigMap or key, a ConfigMap
// that did not opt in, or a UUID listed twice in different case.
type Problem struct {
	Source  string // "spec.organisations" or "configmap/<name>/<key>"
	Kind    ProblemKind
	Line    int // 1-based, for ProblemLine
	Reason  string
	Omitted int // for ProblemMoreLines: how many lines are not listed
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", p.Source, p.Line, p.Reason)
	}
	return fmt.Sprintf("%s: %s", p.Source, p.Reason)
}

// Count is the number of problems p stands for (Omitted for a summary).
func (p Problem) Count() int {
	if p.Kind == ProblemMoreLines {
		return p.Omitted
	}
	return 1
}

// Unusable reports whether the whole source could not be read (missing, or not
// opted in): the controller then leaves the warninglist as it is rather than
// dropping the source's organisations.
func (p Problem) Unusable() bool { return p.Kind == ProblemMissing || p.Kind == ProblemNotAllowed }

// CountProblems is the number of problems the list stands for.
func CountProblems(problems []Problem) int {
	n := 0
	for _, p := range problems {
		n += p.Count()
	}
	return n
}

// Bounds of an organisationsFrom value, whatever its size: at most
// MaxProblemsPerSource invalid lines are reported one by one (the rest are
// counted), and a name longer than MaxNameLength makes its line invalid, as it
// would be inline (the CRD's limit).
const (
	MaxProblemsPerSource = 10
	MaxNameLength        = 128
	// shownValue caps how much of an invalid value a problem quotes.
	shownValue = 40
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsUUID reports whether s is a UUID in any case.
func IsUUID(s string) bool { return len(s) == 36 && uuidRE.MatchString(s) }

// ParseOrgList reads an organisationsFrom value: one UUID per line, optionally
// followed by "# name" (the name may itself contain '#': only the first one
// separates, as MISP splits a warninglist entry, misp-api.md §2.6); blank lines
// and lines starting with # are ignored. Invalid lines are returned as problems
// with their line number, never silently dropped; past MaxProblemsPerSource
// they are counted in one last problem.
//
// The result does not reference data: the organisations' UUIDs and names are
// copied into one string of their own, so a cache of parsed lists does not
// keep the ConfigMap's text alive.
func ParseOrgList(source, data string) ([]Org, []Problem) {
	type span struct{ uuid, nameStart, nameEnd int }
	var spans []span
	var arena strings.Builder
	// What is kept of a line is never longer than the line: one allocation.
	arena.Grow(len(data))
	var problems []Problem
	omitted := 0
	bad := func(line int, reason string) {
		if len(problems) < MaxProblemsPerSource {
			problems = append(problems, Problem{Source: source, Line: line, Reason: reason})
			return
		}
		omitted++
	}
	lineNo := 0
	for rest := data; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		lineNo++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		value, name, _ := strings.Cut(line, "#")
		value, name = strings.TrimSpace(value), strings.TrimSpace(name)
		switch {
		case !IsUUID(value):
			bad(lineNo, fmt.Sprintf("%q is not an organisation UUID", clip(value, shownValue)))
			continue
		case len(name) > MaxNameLength:
			bad(lineNo, fmt.Sprintf("the name is longer than %d bytes", MaxNameLength))
			continue
		}
		s := span{uuid: arena.Len()}
		for i := 0; i < len(value); i++ {
			c := value[i]
			if 'A' <= c && c <= 'F' {
				c += 'a' - 'A'
			}
			arena.WriteByte(c)
		}
		s.nameStart = arena.Len()
		arena.WriteString(name)
		s.nameEnd = arena.Len()
		spans = append(spans, s)
	}
	if omitted > 0 {
		problems = append(problems, Problem{Source: source, Kind: ProblemMoreLines, Omitted: omitted,
			Reason: fmt.Sprintf("%d more invalid lines (the first %d are listed)", omitted, MaxProblemsPerSource)})
	}
	text := arena.String()
	orgs := make([]Org, len(spans))
	for i, s := range spans {
		orgs[i] = Org{UUID: text[s.uuid : s.uuid+36], Name: text[s.nameStart:s.nameEnd]}
	}
	return orgs, problems
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ConfigMapSource names an organisationsFrom entry in problems.
func ConfigMapSource(ref v1alpha1.ConfigMapKeyReference) string {
	return "configmap/" + ref.Name + "/" + ref.Key
}

// LookupFunc returns the value of a ConfigMap key and whether it exists; an
// error means the ConfigMap could not be read (the caller retries).
type LookupFunc func(ref v1alpha1.ConfigMapKeyReference) (value string, found bool, err error)

// OrgSource is one organisationsFrom entry as read: its organisations, or the
// problems that kept some (or all) of them out.
type OrgSource struct {
	Orgs     []Org
	Problems []Problem
}

// SourceFunc reads one organisationsFrom entry (ParseOrgList over a ConfigMap
// key, usually through a cache; see ConfigMapOrgs). An error means it could not
// be read now (the caller retries); a missing or not opted-in ConfigMap is a
// Problem in the OrgSource.
type SourceFunc func(ref v1alpha1.ConfigMapKeyReference) (OrgSource, error)

// EffectiveOrgs returns the policy's organisations (inline first, then each
// organisationsFrom key in order), deduplicated by lower-case UUID and sorted
// by UUID, with every problem met on the way. A name given inline wins over
// one from a ConfigMap.
func EffectiveOrgs(p *v1alpha1.OrgTrustPolicy, lookup LookupFunc) ([]Org, []Problem, error) {
	return EffectiveOrgsFrom(p, func(ref v1alpha1.ConfigMapKeyReference) (OrgSource, error) {
		value, found, err := lookup(ref)
		if err != nil || !found {
			return OrgSource{Problems: missing(ref)}, err
		}
		orgs, problems := ParseOrgList(ConfigMapSource(ref), value)
		return OrgSource{Orgs: orgs, Problems: problems}, nil
	})
}

func missing(ref v1alpha1.ConfigMapKeyReference) []Problem {
	return []Problem{{Source: ConfigMapSource(ref), Kind: ProblemMissing, Reason: "ConfigMap or key not found"}}
}

// MissingSource is the OrgSource of an organisationsFrom entry whose ConfigMap or
// key does not exist.
func MissingSource(ref v1alpha1.ConfigMapKeyReference) OrgSource {
	return OrgSource{Problems: missing(ref)}
}

// EffectiveOrgsFrom is EffectiveOrgs over already parsed sources. An entry
// listed several times in organisationsFrom is read once. The Orgs slices of
// the sources are not modified; when one source holds every organisation,
// sorted and without duplicates, its slice is returned as it is.
//
// The sources are merged in UUID order (each sorted on its own, which
// ConfigMapOrgs already did): the only memory it takes is the result.
func EffectiveOrgsFrom(p *v1alpha1.OrgTrustPolicy, read SourceFunc) ([]Org, []Problem, error) {
	var problems []Problem
	inline := make([]Org, 0, len(p.Spec.Organisations))
	for _, o := range p.Spec.Organisations {
		inline = append(inline, Org{UUID: NormalizeUUID(o.UUID), Name: o.Name})
	}
	lists := [][]Org{sortedOrgs(inline)}
	refs := make([]v1alpha1.ConfigMapKeyReference, 0, len(p.Spec.OrganisationsFrom))
	for _, ref := range p.Spec.OrganisationsFrom {
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	total := len(inline)
	for _, ref := range refs {
		src, err := read(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ConfigMapSource(ref), err)
		}
		problems = append(problems, src.Problems...)
		lists = append(lists, sortedOrgs(src.Orgs))
		total += len(src.Orgs)
	}

	nonEmpty := 0
	var only []Org
	for _, l := range lists {
		if len(l) > 0 {
			nonEmpty++
			only = l
		}
	}
	if nonEmpty == 1 && len(inline) == 0 && !hasDuplicates(only) {
		return only, problems, nil
	}

	// A k-way merge; among equal UUIDs the earliest source (inline first) and,
	// within a source, the earliest line comes first: it wins, with its name
	// unless it has none.
	h := make(orgCursors, 0, len(lists))
	for i, l := range lists {
		if len(l) > 0 {
			h = append(h, &orgCursor{src: i, orgs: l})
		}
	}
	heap.Init(&h)
	orgs := make([]Org, 0, total)
	for h.Len() > 0 {
		first := h[0].orgs[h[0].pos]
		inlineCount := 0
		for h.Len() > 0 && h[0].orgs[h[0].pos].UUID == first.UUID {
			c := h[0]
			for c.pos < len(c.orgs) && c.orgs[c.pos].UUID == first.UUID {
				if first.Name == "" {
					first.Name = c.orgs[c.pos].Name
				}
				if c.src == 0 {
					inlineCount++
				}
				c.pos++
			}
			if c.pos == len(c.orgs) {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
		}
		for ; inlineCount > 1; inlineCount-- {
			problems = append(problems, Problem{Source: "spec.organisations", Kind: ProblemDuplicate,
				Reason: fmt.Sprintf("%s is listed twice (UUIDs are compared in lower case)", first.UUID)})
		}
		orgs = append(orgs, first)
	}
	return orgs, problems, nil
}

// sortedOrgs returns orgs sorted by UUID, keeping the order of equal UUIDs: orgs
// itself when it already is.
func sortedOrgs(orgs []Org) []Org {
	if slices.IsSortedFunc(orgs, compareOrgs) {
		return orgs
	}
	out := slices.Clone(orgs)
	slices.SortStableFunc(out, compareOrgs)
	return out
}

// SortOrgs sorts orgs by UUID in place, keeping the order of equal UUIDs.
func SortOrgs(orgs []Org) { slices.SortStableFunc(orgs, compareOrgs) }

func hasDuplicates(sorted []Org) bool {
	for i := 1; i < len(sorted); i++ {
		if sorted[i].UUID == sorted[i-1].UUID {
			return true
		}
	}
	return false
}

func compareOrgs(a, b Org) int { return cmp.Compare(a.UUID, b.UUID) }

// orgCursor walks one sorted source.
type orgCursor struct {
	src  int
	orgs []Org
	pos  int
}

type orgCursors []*orgCursor

func (h orgCursors) Len() int { return len(h) }
func (h orgCursors) Less(i, j int) bool {
	a, b := h[i].orgs[h[i].pos].UUID, h[j].orgs[h[j].pos].UUID
	if a != b {
		return a < b
	}
	return h[i].src < h[j].src
}
func (h orgCursors) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *orgCursors) Push(x any)   { *h = append(*h, x.(*orgCursor)) }
func (h *orgCursors) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
