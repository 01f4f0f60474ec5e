package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

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

// desiredList is the warninglist a policy should have in MISP. Its entries are
// not held as strings: a 500,000-organisation list would cost 40 MB per
// reconcile; they are produced from the organisations when a write needs them.
type desiredList struct {
	Name        string
	Description string
	// EntriesHash digests the entries (status.warninglist.entriesHash); the
	// description carries it too, so MISP itself says which entries it was
	// given.
	EntriesHash string
	// Orgs is the number of entries in the list, creators and sharers (0 with
	// the placeholder).
	Orgs int

	prefix      string
	won         []trust.Org    // sorted by UUID
	sharers     []trust.Sharer // sorted by UUID; no won and no sharers: the placeholder
	placeholder string         // the placeholder's comment
}

// listOwner is what a list's description says of the object that manages it
// (design.md §Security model: ownership is recorded in MISP).
type listOwner struct {
	Policy      string // "namespace/name"
	Instance    string // "namespace/name" of the MISPInstance
	InstanceUID types.UID
}

func ownerOf(p *v1alpha1.OrgTrustPolicy, inst *v1alpha1.MISPInstance) listOwner {
	o := listOwner{Policy: trust.Key(p), Instance: p.Namespace + "/" + p.Spec.InstanceRef.Name}
	if inst != nil {
		o.InstanceUID = inst.UID
	}
	return o
}

const descriptionPrefix = "Managed by misp-trust-operator: OrgTrustPolicy "

// warninglistDescription names the managing CR and its MISPInstance's uid, so
// a MISP admin knows where to make changes and no other object takes the list
// over, and the hash of the entries written.
func warninglistDescription(o listOwner, hash string) string {
	return fmt.Sprintf("%s%s of MISPInstance %s (uid %s). Edits in MISP are reverted. Entries: %s.",
		descriptionPrefix, o.Policy, o.Instance, o.InstanceUID, hash)
}

// descriptionRE reads warninglistDescription, and the description written
// before ownership was recorded ("… OrgTrustPolicy ns/name. Edits in MISP are
// reverted."), whose owner has no instance uid.
var descriptionRE = regexp.MustCompile(`^Managed by misp-trust-operator: OrgTrustPolicy (\S+?)(?: of MISPInstance (\S+) \(uid (\S*)\))?\. Edits in MISP are reverted\.`)

// parseOwner returns the owner a list's description names; ok is false for a
// list the operator never wrote (e.g. made by hand, adoptable by name).
func parseOwner(description string) (o listOwner, ok bool) {
	m := descriptionRE.FindStringSubmatch(description)
	if m == nil {
		return o, false
	}
	return listOwner{Policy: m[1], Instance: m[2], InstanceUID: types.UID(m[3])}, true
}

// buildDesiredList turns the organisations a policy wins into entries
// "<valuePrefix><uuid>" with the organisation's name as comment, and the
// sharing organisations it wins into "sharer:<uuid>" (trust.SharerValuePrefix,
// which the API refuses as a valuePrefix, so the two kinds never collide).
// won and sharers must be sorted by UUID (trust.Partition and trust.WonSharers
// sort); they are sorted here otherwise.
func buildDesiredList(p *v1alpha1.OrgTrustPolicy, owner listOwner, won []trust.Org, sharers []trust.Sharer) desiredList {
	d := desiredList{Name: trust.WarninglistName(p), Orgs: len(won) + len(sharers), prefix: trust.ValuePrefix(p), won: won, sharers: sharers}
	if d.Orgs == 0 {
		d.placeholder = fmt.Sprintf("placeholder: OrgTrustPolicy %s/%s trusts no organisation (MISP refuses an empty list)", p.Namespace, p.Name)
	}
	if !slices.IsSortedFunc(won, compareOrgs) {
		d.won = slices.Clone(won)
		slices.SortFunc(d.won, compareOrgs)
	}
	if !slices.IsSortedFunc(sharers, compareSharers) {
		d.sharers = slices.Clone(sharers)
		slices.SortFunc(d.sharers, compareSharers)
	}
	h := sha256.New()
	d.each(func(value1, value2, comment string) {
		h.Write([]byte(value1))
		h.Write([]byte(value2))
		h.Write([]byte{0})
		h.Write([]byte(comment))
		h.Write([]byte{'\n'})
	})
	d.EntriesHash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	d.Description = warninglistDescription(owner, d.EntriesHash)
	return d
}

func compareOrgs(a, b trust.Org) int       { return strings.Compare(a.UUID, b.UUID) }
func compareSharers(a, b trust.Sharer) int { return strings.Compare(a.UUID, b.UUID) }

// each calls fn for every entry, the value given in two parts (prefix and
// UUID) so that no string is built for it: the creator entries by UUID, then
// the sharer entries by UUID. The order only fixes EntriesHash: lists are
// compared as sets (diffList) and MISP keeps insertion order.
func (d desiredList) each(fn func(value1, value2, comment string)) {
	for i, n := 0, d.entryCount(); i < n; i++ {
		fn(d.Entry(i))
	}
}

// entryCount is the number of entries (the placeholder included).
func (d desiredList) entryCount() int { return max(len(d.won)+len(d.sharers), 1) }

// entries builds the entries, for a write.
func (d desiredList) entries() []misp.WarninglistEntry {
	out := make([]misp.WarninglistEntry, 0, d.entryCount())
	d.each(func(v1, v2, comment string) {
		out = append(out, misp.WarninglistEntry{Value: v1 + v2, Comment: comment})
	})
	return out
}

// Len and Entry make the list a misp.EntrySource: a write encodes the entries
// straight from the organisations.
func (d desiredList) Len() int { return d.entryCount() }

func (d desiredList) Entry(i int) (prefix, value, comment string) {
	switch {
	case len(d.won)+len(d.sharers) == 0:
		return d.prefix, placeholderUUID, d.placeholder
	case i < len(d.won):
		// MISP trims comments in the string form of entries (parseFreetext); trim
		// here too, or a name with surrounding spaces would read back as drift.
		return d.prefix, d.won[i].UUID, strings.TrimSpace(d.won[i].Name)
	default:
		s := d.sharers[i-len(d.won)]
		return trust.SharerValuePrefix, s.UUID, trust.SharerComment(s)
	}
}

// warninglist is the body of add and edit.
func (d desiredList) warninglist() misp.Warninglist {
	return misp.Warninglist{
		Name:               d.Name,
		Type:               warninglistType,
		Category:           warninglistCategory,
		Description:        d.Description,
		MatchingAttributes: matchAll,
		Source:             d,
	}
}

// entryDigests are 64-bit digests of entries, sorted: comparing a list read
// from MISP with the desired one costs 8 bytes per entry, whatever the size of
// the list (the view is streamed, misp.Client.ScanWarninglist).
type entryDigests struct {
	seed maphash.Seed
	sums []uint64
	// more counts entries past maxScannedEntries, not digested (a list that
	// long is not ours: it differs anyway).
	more int
}

// maxScannedEntries bounds the digests kept of one list read from MISP.
const maxScannedEntries = 2_000_000

func entryDigest(seed maphash.Seed, v1, v2, comment string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(v1)
	h.WriteString(v2)
	h.WriteByte(0)
	h.WriteString(comment)
	return h.Sum64()
}

// digests of the desired entries.
func (d desiredList) digests(seed maphash.Seed) entryDigests {
	e := entryDigests{seed: seed, sums: make([]uint64, 0, d.entryCount())}
	d.each(func(v1, v2, comment string) { e.sums = append(e.sums, entryDigest(seed, v1, v2, comment)) })
	slices.Sort(e.sums)
	return e
}

// collector returns a fresh digest collector for misp.Client.ScanWarninglist.
func (e *entryDigests) collector() func(misp.WarninglistEntry) {
	e.sums, e.more = e.sums[:0], 0
	return func(en misp.WarninglistEntry) {
		if len(e.sums) >= maxScannedEntries {
			e.more++
			return
		}
		e.sums = append(e.sums, entryDigest(e.seed, en.Value, "", en.Comment))
	}
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

// diffList compares a list read with ScanWarninglist (metadata, and the
// digests of its entries) to the desired one. Entries are compared as sets of
// (value, comment): MISP keeps insertion order, but order carries no meaning.
func diffList(got *misp.Warninglist, have entryDigests, want desiredList, wantSums []uint64) listDiff {
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

	slices.Sort(have.sums)
	i, j := 0, 0
	for i < len(have.sums) && j < len(wantSums) {
		switch a, b := have.sums[i], wantSums[j]; {
		case a == b:
			i++
			j++
		case a < b:
			d.Extra++
			i++
		default:
			d.Missing++
			j++
		}
	}
	d.Extra += len(have.sums) - i + have.more
	d.Missing += len(wantSums) - j
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
