package controllers

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/misp"
)

// warninglistAPI is what the OrgTrustPolicy reconciler asks MISP, in the
// shape of a Crossplane external client: observe (Find, Scan), create (Add,
// then enable), update (Update, enable) and delete. Contract relied on:
// AddWarninglist returns the id of a list created by an earlier attempt that
// failed in transit; DeleteWarninglist succeeds when the list is already gone.
type warninglistAPI interface {
	FindWarninglist(ctx context.Context, name string) (*misp.Warninglist, error)
	ScanWarninglist(ctx context.Context, id string, start func() func(misp.WarninglistEntry)) (*misp.Warninglist, error)
	AddWarninglist(ctx context.Context, wl misp.Warninglist) (string, error)
	UpdateWarninglist(ctx context.Context, id string, wl misp.Warninglist) (int, error)
	SetWarninglistEnabled(ctx context.Context, id string, enabled bool) error
	DeleteWarninglist(ctx context.Context, id string) error
}

// listRecord is what is known of a policy's list in MISP: the reconciler's
// memory of its last visit, or (after a restart) the policy's status.
type listRecord struct {
	ID, Name    string
	EntriesHash string
	Description string
	// Version is the list's version in MISP after the operator's last write or
	// read (0: unknown). MISP increments it at every edit, the UI's included:
	// an unchanged version, entry count and description mean an unchanged
	// list, and a resync needs no download of its entries.
	Version int
	// InSync: the list matched the record when it was made (written and
	// enabled, or read back equal). Differences found later are drift.
	InSync bool
}

// listState is the reconciler's memory of one policy's list.
type listState struct {
	listRecord
	uid       types.UID
	instance  string // MISP identity (instance UID and URL): another MISP invalidates it
	nextCheck time.Time
	deleted   bool // the list was deleted with the policy (deletionPolicy Delete)
}

// listMemory remembers, per policy, the list last known in sync and when to
// read it back. It is what lets an unchanged policy cost no MISP call between
// resyncs; after a restart every policy reads its list once.
type listMemory struct {
	mu sync.Mutex
	m  map[types.NamespacedName]listState
}

func newListMemory() *listMemory { return &listMemory{m: map[types.NamespacedName]listState{}} }

func (l *listMemory) get(name types.NamespacedName, uid types.UID, instance string) (listState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.m[name]
	if !ok || s.uid != uid || s.instance != instance || s.deleted {
		return listState{}, false
	}
	return s, true
}

func (l *listMemory) set(name types.NamespacedName, s listState) {
	l.mu.Lock()
	l.m[name] = s
	l.mu.Unlock()
}

// markDeleted records that the list of the policy with uid was deleted, so a
// second pass over the same deletion (the cache lagging behind the finalizer
// removal) makes no MISP call.
func (l *listMemory) markDeleted(name types.NamespacedName, uid types.UID) {
	l.mu.Lock()
	l.m[name] = listState{uid: uid, deleted: true}
	l.mu.Unlock()
}

func (l *listMemory) deleted(name types.NamespacedName, uid types.UID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.m[name]
	return ok && s.uid == uid && s.deleted
}

func (l *listMemory) forget(name types.NamespacedName) {
	l.mu.Lock()
	delete(l.m, name)
	l.mu.Unlock()
}

// Drift kinds (label of the drift metric).
const (
	driftEntries  = "entries"
	driftMetadata = "metadata"
	driftDisabled = "disabled"
	driftDeleted  = "deleted"
)

// syncOutcome says what syncList did.
type syncOutcome struct {
	ID      string // the list's id, when known (also after a partial failure)
	Created bool
	Adopted bool
	Renamed bool
	Updated bool // content written because the policy changed
	Enabled bool // toggleEnable called
	// Drift lists what was changed in MISP behind the operator's back and
	// repaired (kinds above), with a description.
	Drift       []string
	DriftDetail string
	// Refused is set when the list must not be written (a default list has
	// the name, MISP refuses the name, another object owns the list): Reason
	// and Message for Synced.
	Refused *refusal
	// Version of the list in MISP, when known.
	Version int
}

// refusal says why MISP is not called, or a list not written. Owner is set
// when another policy owns the list (it is told of the clash).
type refusal struct {
	Reason, Message string
	Owner           string
}

// Synced reasons of OrgTrustPolicy.
const (
	ReasonSynced               = "Synced"
	ReasonDefaultList          = "DefaultList"
	ReasonWarninglistNameTaken = "WarninglistNameTaken"
	// ReasonWarninglistOwnedElsewhere: the list's description in MISP names
	// another owner (another policy, or the same name from another instance).
	ReasonWarninglistOwnedElsewhere  = "WarninglistOwnedElsewhere"
	ReasonInstanceNotFound           = "InstanceNotFound"
	ReasonInstanceNotReady           = "InstanceNotReady"
	ReasonOrganisationsSourceMissing = "OrganisationsSourceMissing"
	// ReasonOrganisationsSourceNotAllowed: an organisationsFrom ConfigMap does
	// not carry the opt-in label trust.AllowLabel.
	ReasonOrganisationsSourceNotAllowed = "OrganisationsSourceNotAllowed"
	ReasonMISPUnavailable               = "MISPUnavailable"
	ReasonMISPRejected                  = "MISPRejected"
	ReasonPermissionDenied              = "PermissionDenied"
)

// syncer reconciles one policy's list against one MISP.
type syncer struct {
	api      warninglistAPI
	mem      *listMemory
	metrics  *metrics
	name     types.NamespacedName
	uid      types.UID
	instance string
	// metricsInstance is the MISPInstance ("namespace/name") in the metrics.
	metricsInstance string
	// owner is what the list's description says of this policy; a list whose
	// description names another owner is only written when foreign allows it.
	owner   listOwner
	foreign foreignOwner
	now     time.Time
	// interval is the resync interval (jittered here).
	interval time.Duration
}

// foreignOwner decides about a list whose description names another owner o:
// nil when this policy may take it over (o is gone), else the refusal.
type foreignOwner func(ctx context.Context, wl *misp.Warninglist, o listOwner) (*refusal, error)

// sync makes the list in MISP equal to want, spending as few calls as the
// situation allows:
//
//   - in sync and no resync due: no call;
//   - policy changed, list known: one edit;
//   - resync due, list known: one index lookup (no entries), which shows the
//     list unchanged when its version, entry count and description (which
//     carries the entries' hash) are those last written or read;
//   - otherwise (changed in MISP, new policy, restart without a version):
//     read the list back (streamed: 8 bytes per entry are kept), then edit
//     and/or enable only what differs — a new list costs find + add +
//     toggleEnable.
//
// prev is the status' record, used when the memory has none (restart).
func (s *syncer) sync(ctx context.Context, want desiredList, prev listRecord) (syncOutcome, error) {
	if st, ok := s.mem.get(s.name, s.uid, s.instance); ok && st.InSync && s.now.Before(st.nextCheck) && st.Name == want.Name {
		if st.EntriesHash == want.EntriesHash && st.Description == want.Description {
			return syncOutcome{ID: st.ID}, nil
		}
		version, err := s.api.UpdateWarninglist(ctx, st.ID, want.warninglist())
		if err == nil {
			s.metrics.wrote(s.metricsInstance, s.name.String(), "edit")
			s.remember(st.ID, want, version, true, st.nextCheck)
			return syncOutcome{ID: st.ID, Updated: true, Version: version}, nil
		}
		s.mem.forget(s.name)
		if !errors.Is(err, misp.ErrNotFound) {
			return syncOutcome{ID: st.ID}, fmt.Errorf("edit warninglist %s (%q): %w", st.ID, want.Name, err)
		}
		// Deleted in MISP since the last visit: observe and recreate below.
		prev = st.listRecord
	} else if ok {
		prev = st.listRecord
	}
	if out, done, err := s.check(ctx, want, prev); done || err != nil {
		return out, err
	}
	return s.observeAndRepair(ctx, want, prev)
}

// check looks the list up in MISP's index (no entries) and reports done when
// it is exactly as last written or read.
func (s *syncer) check(ctx context.Context, want desiredList, prev listRecord) (syncOutcome, bool, error) {
	if prev.ID == "" || !prev.InSync || prev.Version <= 0 || prev.Name != want.Name ||
		prev.EntriesHash != want.EntriesHash || prev.Description != want.Description {
		return syncOutcome{}, false, nil
	}
	row, err := s.api.FindWarninglist(ctx, want.Name)
	switch {
	case errors.Is(err, misp.ErrNotFound):
		return syncOutcome{}, false, nil
	case err != nil:
		return syncOutcome{ID: prev.ID}, true, fmt.Errorf("find warninglist %q: %w", want.Name, err)
	case row.Default || row.ID != prev.ID || row.Version != prev.Version || row.EntryCount != want.entryCount() ||
		row.Description != want.Description || !row.Enabled || row.Type != warninglistType ||
		row.Category != warninglistCategory || !sameSet(row.MatchingAttributes, matchAll):
		return syncOutcome{}, false, nil
	}
	s.remember(row.ID, want, row.Version, true, s.now.Add(jittered(s.interval)))
	return syncOutcome{ID: row.ID, Version: row.Version}, true, nil
}

func (s *syncer) observeAndRepair(ctx context.Context, want desiredList, prev listRecord) (syncOutcome, error) {
	var out syncOutcome
	var got *misp.Warninglist
	have := entryDigests{seed: maphash.MakeSeed()}
	deleted := false
	if prev.ID != "" {
		wl, err := s.api.ScanWarninglist(ctx, prev.ID, have.collector)
		switch {
		case errors.Is(err, misp.ErrNotFound):
			deleted = true
		case err != nil:
			return syncOutcome{ID: prev.ID}, fmt.Errorf("view warninglist %s: %w", prev.ID, err)
		case !wl.Default && (wl.Name == want.Name || wl.Name == prev.Name):
			got = wl
		}
		// Any other list under this id is not ours (another MISP behind the same
		// URL, a restored database): it is never touched; the name decides.
	}
	if got == nil || got.Name != want.Name {
		found, err := s.api.FindWarninglist(ctx, want.Name)
		switch {
		case errors.Is(err, misp.ErrNotFound):
			// Nobody has the name: create, or rename ours.
		case err != nil:
			return syncOutcome{ID: prev.ID}, fmt.Errorf("find warninglist %q: %w", want.Name, err)
		case found.Default:
			return syncOutcome{Refused: &refusal{Reason: ReasonDefaultList, Message: fmt.Sprintf(
				"Warninglist %q (id %s) is a default list shipped with MISP; the operator never takes one over. Set spec.warninglistName to another name.", want.Name, found.ID)}}, nil
		case got == nil || found.ID != got.ID:
			// A custom list with the wanted name exists: adopt it (design.md),
			// unless another object owns it.
			if r, err := s.checkOwner(ctx, found); r != nil || err != nil {
				return syncOutcome{Refused: r}, err
			}
			wl, err := s.api.ScanWarninglist(ctx, found.ID, have.collector)
			if err != nil {
				return syncOutcome{ID: prev.ID}, fmt.Errorf("view warninglist %s (%q) to adopt it: %w", found.ID, want.Name, err)
			}
			got, out.Adopted = wl, true
		}
	}
	if got != nil && !out.Adopted {
		// Ours by record, but a list is only ever written by its owner.
		if r, err := s.checkOwner(ctx, got); r != nil || err != nil {
			return syncOutcome{Refused: r}, err
		}
	}

	if got == nil {
		id, err := s.api.AddWarninglist(ctx, want.warninglist())
		if err != nil {
			if r := nameRefusal(err, want.Name); r != nil {
				return syncOutcome{Refused: r}, nil
			}
			return syncOutcome{}, fmt.Errorf("add warninglist %q: %w", want.Name, err)
		}
		out.ID, out.Created = id, true
		s.metrics.wrote(s.metricsInstance, s.name.String(), "add")
		if deleted && prev.InSync {
			out.Drift, out.DriftDetail = []string{driftDeleted}, fmt.Sprintf("list %s was deleted", prev.ID)
		}
		// Not in sync until enabled: a failed enable is retried after a view.
		s.remember(id, want, 0, false, time.Time{})
		// New lists start disabled (misp-api.md §2.6); toggleEnable answers 200
		// even when it fails, so the client checks "saved".
		if err := s.api.SetWarninglistEnabled(ctx, id, true); err != nil {
			return out, fmt.Errorf("enable warninglist %s (%q): %w", id, want.Name, err)
		}
		out.Enabled = true
		s.metrics.wrote(s.metricsInstance, s.name.String(), "enable")
		// A new list has version 1 (the column's default; misp-api.md §2.6). Were
		// it edited meanwhile, the first resync sees another version and reads
		// the list.
		s.remember(id, want, 1, true, s.now.Add(jittered(s.interval)))
		out.Version = 1
		return out, nil
	}

	out.ID, out.Version = got.ID, got.Version
	diff := diffList(got, have, want, want.digests(have.seed).sums)
	wasInSync := prev.InSync && !out.Adopted && prev.ID == got.ID && prev.Name == want.Name &&
		prev.EntriesHash == want.EntriesHash && prev.Description == want.Description
	if diff.contentDiffers() {
		version, err := s.api.UpdateWarninglist(ctx, got.ID, want.warninglist())
		if err != nil {
			if r := nameRefusal(err, want.Name); r != nil {
				return syncOutcome{ID: got.ID, Refused: r}, nil
			}
			return out, fmt.Errorf("edit warninglist %s (%q): %w", got.ID, want.Name, err)
		}
		s.metrics.wrote(s.metricsInstance, s.name.String(), "edit")
		out.Version = version
		out.Renamed = got.Name != want.Name && !out.Adopted
		out.Updated = !wasInSync
	}
	if diff.Disabled {
		s.remember(got.ID, want, out.Version, false, time.Time{})
		if err := s.api.SetWarninglistEnabled(ctx, got.ID, true); err != nil {
			return out, fmt.Errorf("enable warninglist %s (%q): %w", got.ID, want.Name, err)
		}
		s.metrics.wrote(s.metricsInstance, s.name.String(), "enable")
		out.Enabled = true
	}
	if wasInSync && diff.any() {
		if diff.Missing > 0 || diff.Extra > 0 {
			out.Drift = append(out.Drift, driftEntries)
		}
		if len(diff.Metadata) > 0 {
			out.Drift = append(out.Drift, driftMetadata)
		}
		if diff.Disabled {
			out.Drift = append(out.Drift, driftDisabled)
		}
		out.DriftDetail = diff.String()
	}
	s.remember(got.ID, want, out.Version, true, s.now.Add(jittered(s.interval)))
	return out, nil
}

// checkOwner refuses a list whose description names another owner, unless
// foreign lets this policy take it over. A list the operator never wrote (no
// owner in its description) is adoptable by name.
func (s *syncer) checkOwner(ctx context.Context, wl *misp.Warninglist) (*refusal, error) {
	o, ok := parseOwner(wl.Description)
	if !ok || o.Policy == s.owner.Policy {
		return nil, nil
	}
	if s.foreign == nil {
		return ownedElsewhere(wl, o), nil
	}
	return s.foreign(ctx, wl, o)
}

// ownedElsewhere is the refusal to write a list another object owns.
func ownedElsewhere(wl *misp.Warninglist, o listOwner) *refusal {
	// The owner is read from MISP: bounded before it goes into a condition.
	inst := ""
	if o.Instance != "" {
		inst = fmt.Sprintf(" of MISPInstance %s (uid %s)", truncateMISP(o.Instance), truncateMISP(string(o.InstanceUID)))
	}
	return &refusal{Reason: ReasonWarninglistOwnedElsewhere, Owner: o.Policy, Message: fmt.Sprintf(
		"Warninglist %q (id %s) belongs to OrgTrustPolicy %s%s, as its description in MISP says; the operator never rewrites or deletes a list another object owns. Set spec.warninglistName to another name.",
		truncateMISP(wl.Name), truncateMISP(wl.ID), truncateMISP(o.Policy), inst)}
}

func (s *syncer) remember(id string, want desiredList, version int, inSync bool, next time.Time) {
	s.mem.set(s.name, listState{
		listRecord: listRecord{ID: id, Name: want.Name, EntriesHash: want.EntriesHash, Description: want.Description, Version: version, InSync: inSync},
		uid:        s.uid, instance: s.instance, nextCheck: next,
	})
}

// nameRefusal recognises MISP refusing a name that is taken ("Warninglist
// with same name already exists.", misp-api.md §2.6): names are unique in
// MISP's database ignoring case, which an exact-name lookup does not see.
func nameRefusal(err error, name string) *refusal {
	if !errors.Is(err, misp.ErrValidation) || !strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return &refusal{Reason: ReasonWarninglistNameTaken, Message: fmt.Sprintf(
		"MISP refuses the name %q: another warninglist has it (names are unique ignoring case). Set spec.warninglistName to another name.", name)}
}

// deleteList deletes the policy's list, identified by its record or, when
// none, by name — only when its description names owner: a default list, a
// list another object owns and a list the operator never wrote are never
// deleted (kept says why). Calls: view + delete + view (the client confirms
// the 302 with a 404).
func deleteList(ctx context.Context, api warninglistAPI, want desiredList, prev listRecord, owner listOwner) (deletedID, kept string, err error) {
	var wl *misp.Warninglist
	if prev.ID != "" {
		got, err := api.ScanWarninglist(ctx, prev.ID, func() func(misp.WarninglistEntry) { return nil })
		switch {
		case errors.Is(err, misp.ErrNotFound):
		case err != nil:
			return "", "", fmt.Errorf("view warninglist %s before deleting it: %w", prev.ID, err)
		case !got.Default && (got.Name == want.Name || got.Name == prev.Name):
			wl = got
		}
	}
	if wl == nil {
		found, err := api.FindWarninglist(ctx, want.Name)
		switch {
		case errors.Is(err, misp.ErrNotFound):
			return "", "", nil
		case err != nil:
			return "", "", fmt.Errorf("find warninglist %q to delete it: %w", want.Name, err)
		case found.Default:
			return "", "", nil
		}
		wl = found
	}
	switch o, ok := parseOwner(wl.Description); {
	case !ok:
		return "", fmt.Sprintf("warninglist %q (id %s) was not written by the operator (its description names no owner)", truncateMISP(wl.Name), wl.ID), nil
	case o.Policy != owner.Policy:
		return "", fmt.Sprintf("warninglist %q (id %s) belongs to OrgTrustPolicy %s", truncateMISP(wl.Name), wl.ID, truncateMISP(o.Policy)), nil
	}
	if err := api.DeleteWarninglist(ctx, wl.ID); err != nil {
		return "", "", fmt.Errorf("delete warninglist %s (%q): %w", wl.ID, want.Name, err)
	}
	return wl.ID, "", nil
}
