package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// The fixed shape of every managed list (design.md: type string, category
// known; misp-api.md §2.6: category must be "known", not "Known identifier").
const (
	warninglistType     = "string"
	warninglistCategory = "known"
	// placeholderUUID stands in for "no organisation": MISP refuses a list
	// without entries ("Entries cannot be empty.", misp-api.md §2.6) and no
	// organisation has the nil UUID, so the entry never matches an Orgc.
	placeholderUUID = "00000000-0000-0000-0000-000000000000"
)

// matchAll is what MISP stores when matching_attributes is empty (≥ 2.4.178)
// and what the client sends for an empty slice.
var matchAll = []string{"ALL"}

// desiredList is the warninglist a policy should have in MISP.
type desiredList struct {
	Name        string
	Description string
	Entries     []misp.WarninglistEntry // sorted by value
	// EntriesHash digests Entries (status.warninglist.entriesHash).
	EntriesHash string
	// Orgs is the number of entries in the list, creators and sharers (0 with
	// the placeholder).
	Orgs int
}

// warninglistDescription names the managing CR, so a MISP admin knows where
// to make changes.
func warninglistDescription(p *v1alpha1.OrgTrustPolicy) string {
	return fmt.Sprintf("Managed by misp-trust-operator: OrgTrustPolicy %s/%s. Edits in MISP are reverted.", p.Namespace, p.Name)
}

// buildDesiredList turns the organisations a policy wins into entries
// "<valuePrefix><uuid>" with the organisation's name as comment, and the
// sharing organisations it wins into "sharer:<uuid>" (trust.SharerValuePrefix,
// which the API refuses as a valuePrefix, so the two kinds never collide).
func buildDesiredList(p *v1alpha1.OrgTrustPolicy, won []trust.Org, sharers []trust.Sharer) desiredList {
	prefix := trust.ValuePrefix(p)
	d := desiredList{Name: trust.WarninglistName(p), Description: warninglistDescription(p), Orgs: len(won) + len(sharers)}
	if d.Orgs == 0 {
		d.Entries = []misp.WarninglistEntry{{
			Value:   prefix + placeholderUUID,
			Comment: fmt.Sprintf("placeholder: OrgTrustPolicy %s/%s trusts no organisation (MISP refuses an empty list)", p.Namespace, p.Name),
		}}
	} else {
		d.Entries = make([]misp.WarninglistEntry, 0, d.Orgs)
		for _, o := range won {
			// MISP trims comments in the string form of entries (parseFreetext); trim
			// here too, or a name with surrounding spaces would read back as drift.
			d.Entries = append(d.Entries, misp.WarninglistEntry{Value: prefix + o.UUID, Comment: strings.TrimSpace(o.Name)})
		}
		for _, s := range sharers {
			d.Entries = append(d.Entries, misp.WarninglistEntry{Value: trust.SharerValuePrefix + s.UUID, Comment: trust.SharerComment(s)})
		}
		// Creator and sharer entries interleave by value.
		if !slices.IsSortedFunc(d.Entries, compareEntries) {
			slices.SortFunc(d.Entries, compareEntries)
		}
	}
	d.EntriesHash = hashEntries(d.Entries)
	return d
}

// warninglist is the body of add and edit.
func (d desiredList) warninglist() misp.Warninglist {
	return misp.Warninglist{
		Name:               d.Name,
		Type:               warninglistType,
		Category:           warninglistCategory,
		Description:        d.Description,
		MatchingAttributes: matchAll,
		Entries:            d.Entries,
	}
}

func compareEntries(a, b misp.WarninglistEntry) int {
	if c := strings.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	return strings.Compare(a.Comment, b.Comment)
}

// hashEntries is a stable digest of sorted entries.
func hashEntries(entries []misp.WarninglistEntry) string {
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e.Value))
		h.Write([]byte{0})
		h.Write([]byte(e.Comment))
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// listDiff is how a list read from MISP differs from the desired one.
type listDiff struct {
	Missing, Extra int      // entries to add / to remove (a changed comment counts in both)
	Metadata       []string // fields that differ: name, description, type, category, matching attributes
	Disabled       bool
}

func (d listDiff) contentDiffers() bool { return d.Missing > 0 || d.Extra > 0 || len(d.Metadata) > 0 }
func (d listDiff) any() bool            { return d.contentDiffers() || d.Disabled }

// String describes the difference for events and messages.
func (d listDiff) String() string {
	var parts []string
	if d.Missing > 0 || d.Extra > 0 {
		parts = append(parts, fmt.Sprintf("%d entries missing, %d unexpected", d.Missing, d.Extra))
	}
	if len(d.Metadata) > 0 {
		parts = append(parts, strings.Join(d.Metadata, ", ")+" changed")
	}
	if d.Disabled {
		parts = append(parts, "disabled")
	}
	if len(parts) == 0 {
		return "no difference"
	}
	return strings.Join(parts, "; ")
}

// diffList compares a list read with ViewWarninglist to the desired one.
// Entries are compared as sets of (value, comment): MISP keeps insertion
// order, but order carries no meaning.
func diffList(got *misp.Warninglist, want desiredList) listDiff {
	var d listDiff
	if got.Name != want.Name {
		d.Metadata = append(d.Metadata, "name")
	}
	if got.Description != want.Description {
		d.Metadata = append(d.Metadata, "description")
	}
	if got.Type != warninglistType {
		d.Metadata = append(d.Metadata, "type")
	}
	if got.Category != warninglistCategory {
		d.Metadata = append(d.Metadata, "category")
	}
	if !sameSet(got.MatchingAttributes, matchAll) {
		d.Metadata = append(d.Metadata, "matching attributes")
	}
	d.Disabled = !got.Enabled

	have := slices.Clone(got.Entries)
	slices.SortFunc(have, compareEntries)
	i, j := 0, 0
	for i < len(have) && j < len(want.Entries) {
		switch c := compareEntries(have[i], want.Entries[j]); {
		case c == 0:
			i++
			j++
		case c < 0:
			d.Extra++
			i++
		default:
			d.Missing++
			j++
		}
	}
	d.Extra += len(have) - i
	d.Missing += len(want.Entries) - j
	return d
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
