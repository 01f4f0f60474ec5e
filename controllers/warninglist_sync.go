package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/misp"
)

// warninglistAPI is what the OrgTrustPolicy reconciler asks MISP, in the
// shape of a Crossplane external client: observe (Find, View), create (Add,
// then enable), update (Edit, enable) and delete. Contract relied on:
// AddWarninglist returns the id of a list created by an earlier attempt that
// failed in transit; DeleteWarninglist succeeds when the list is already gone.
type warninglistAPI interface {
	FindWarninglist(ctx context.Context, name string) (*misp.Warninglist, error)
	ViewWarninglist(ctx context.Context, id string) (*misp.Warninglist, error)
	AddWarninglist(ctx context.Context, wl misp.Warninglist) (string, error)
	EditWarninglist(ctx context.Context, id string, wl misp.Warninglist) error
	SetWarninglistEnabled(ctx context.Context, id string, enabled bool) error
	DeleteWarninglist(ctx context.Context, id string) error
}

// listRecord is what is known of a policy's list in MISP: the reconciler's
// memory of its last visit, or (after a restart) the policy's status.
type listRecord struct {
	ID, Name    string
	EntriesHash string
	Description string
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
	// the name, or MISP refuses the name): Reason and Message for Synced.
	Refused *refusal
}

type refusal struct{ Reason, Message string }

// Synced reasons of OrgTrustPolicy.
const (
	ReasonSynced                     = "Synced"
	ReasonDefaultList                = "DefaultList"
	ReasonWarninglistNameTaken       = "WarninglistNameTaken"
	ReasonInstanceNotFound           = "InstanceNotFound"
	ReasonInstanceNotReady           = "InstanceNotReady"
	ReasonOrganisationsSourceMissing = "OrganisationsSourceMissing"
	ReasonMISPUnavailable            = "MISPUnavailable"
	ReasonMISPRejected               = "MISPRejected"
	ReasonPermissionDenied           = "PermissionDenied"
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
	now             time.Time
	interval        time.Duration // resync interval (jittered here)
}

// sync makes the list in MISP equal to want, spending as few calls as the
// situation allows:
//
//   - in sync and no resync due: no call;
//   - policy changed, list known: one edit;
//   - resync due, or nothing known (new policy, restart): read the list back
//     (view by id, else find by name), then edit and/or enable only what
//     differs — a new list costs find + add + toggleEnable.
//
// prev is the status' record, used when the memory has none (restart).
func (s *syncer) sync(ctx context.Context, want desiredList, prev listRecord) (syncOutcome, error) {
	if st, ok := s.mem.get(s.name, s.uid, s.instance); ok && st.InSync && s.now.Before(st.nextCheck) && st.Name == want.Name {
		if st.EntriesHash == want.EntriesHash && st.Description == want.Description {
			return syncOutcome{ID: st.ID}, nil
		}
		err := s.api.EditWarninglist(ctx, st.ID, want.warninglist())
		if err == nil {
			s.metrics.wrote(s.metricsInstance, s.name.String(), "edit")
			s.remember(st.ID, want, true, st.nextCheck)
			return syncOutcome{ID: st.ID, Updated: true}, nil
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
	return s.observeAndRepair(ctx, want, prev)
}

func (s *syncer) observeAndRepair(ctx context.Context, want desiredList, prev listRecord) (syncOutcome, error) {
	var out syncOutcome
	var got *misp.Warninglist
	deleted := false
	if prev.ID != "" {
		wl, err := s.api.ViewWarninglist(ctx, prev.ID)
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
			return syncOutcome{Refused: &refusal{ReasonDefaultList, fmt.Sprintf(
				"Warninglist %q (id %s) is a default list shipped with MISP; the operator never takes one over. Set spec.warninglistName to another name.", want.Name, found.ID)}}, nil
		case got == nil || found.ID != got.ID:
			// A custom list with the wanted name exists: adopt it (design.md).
			wl, err := s.api.ViewWarninglist(ctx, found.ID)
			if err != nil {
				return syncOutcome{ID: prev.ID}, fmt.Errorf("view warninglist %s (%q) to adopt it: %w", found.ID, want.Name, err)
			}
			got, out.Adopted = wl, true
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
		s.remember(id, want, false, time.Time{})
		// New lists start disabled (misp-api.md §2.6); toggleEnable answers 200
		// even when it fails, so the client checks "saved".
		if err := s.api.SetWarninglistEnabled(ctx, id, true); err != nil {
			return out, fmt.Errorf("enable warninglist %s (%q): %w", id, want.Name, err)
		}
		out.Enabled = true
		s.metrics.wrote(s.metricsInstance, s.name.String(), "enable")
		s.remember(id, want, true, s.now.Add(jittered(s.interval)))
		return out, nil
	}

	out.ID = got.ID
	diff := diffList(got, want)
	wasInSync := prev.InSync && !out.Adopted && prev.ID == got.ID && prev.Name == want.Name &&
		prev.EntriesHash == want.EntriesHash && prev.Description == want.Description
	if diff.contentDiffers() {
		if err := s.api.EditWarninglist(ctx, got.ID, want.warninglist()); err != nil {
			if r := nameRefusal(err, want.Name); r != nil {
				return syncOutcome{ID: got.ID, Refused: r}, nil
			}
			return out, fmt.Errorf("edit warninglist %s (%q): %w", got.ID, want.Name, err)
		}
		s.metrics.wrote(s.metricsInstance, s.name.String(), "edit")
		out.Renamed = got.Name != want.Name && !out.Adopted
		out.Updated = !wasInSync
	}
	if diff.Disabled {
		s.remember(got.ID, want, false, time.Time{})
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
	s.remember(got.ID, want, true, s.now.Add(jittered(s.interval)))
	return out, nil
}

func (s *syncer) remember(id string, want desiredList, inSync bool, next time.Time) {
	s.mem.set(s.name, listState{
		listRecord: listRecord{ID: id, Name: want.Name, EntriesHash: want.EntriesHash, Description: want.Description, InSync: inSync},
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
	return &refusal{ReasonWarninglistNameTaken, fmt.Sprintf(
		"MISP refuses the name %q: another warninglist has it (names are unique ignoring case). Set spec.warninglistName to another name.", name)}
}

// deleteList deletes the policy's list, identified by its record or, when
// none, by name. A default list, or a list under the recorded id that carries
// another name, is never deleted. Calls: view + delete + view (the client
// confirms the 302 with a 404).
func deleteList(ctx context.Context, api warninglistAPI, want desiredList, prev listRecord) (deletedID string, err error) {
	id := ""
	if prev.ID != "" {
		wl, err := api.ViewWarninglist(ctx, prev.ID)
		switch {
		case errors.Is(err, misp.ErrNotFound):
		case err != nil:
			return "", fmt.Errorf("view warninglist %s before deleting it: %w", prev.ID, err)
		case !wl.Default && (wl.Name == want.Name || wl.Name == prev.Name):
			id = wl.ID
		}
	}
	if id == "" {
		found, err := api.FindWarninglist(ctx, want.Name)
		switch {
		case errors.Is(err, misp.ErrNotFound):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("find warninglist %q to delete it: %w", want.Name, err)
		case found.Default:
			return "", nil
		}
		id = found.ID
	}
	if err := api.DeleteWarninglist(ctx, id); err != nil {
		return "", fmt.Errorf("delete warninglist %s (%q): %w", id, want.Name, err)
	}
	return id, nil
}
