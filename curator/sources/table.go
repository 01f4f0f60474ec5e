// Package sources turns the numeric ids that ZeroMQ messages and event rows carry
// (Event.org_id, the "Server" of *_from_connected_server) into the UUID of the
// partner that shared an event with this MISP, from a per-instance copy of
// /organisations/index and /servers/index. The copy is loaded when the pipeline
// starts and read again on a miss at most once per MinRefresh, so curating an
// event never costs a call of its own.
package sources

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/misptrust/misp-trust-operator/misp"
)

// Defaults of Options.
const (
	DefaultMinRefresh = time.Minute
	DefaultMaxEntries = 100_000
)

// Lister is the part of the MISP client the table reads.
type Lister interface {
	Organisations(ctx context.Context) ([]misp.Organisation, error)
	ServerLinks(ctx context.Context) ([]misp.ServerLink, error)
}

// Options configure a Table; only Lister is required.
type Options struct {
	Lister Lister
	// MinRefresh is the shortest time between two reads of the lists: a miss within it
	// is answered from the copy (the id stays unknown), so a flood of events naming an
	// unknown id costs at most one read per MinRefresh. Default 1m.
	MinRefresh time.Duration
	// MaxEntries bounds the organisations and the servers kept (each): beyond it the
	// rest is dropped and reported. Default 100,000.
	MaxEntries int
	Logger     logr.Logger
	Now        func() time.Time
}

// Table is the id → UUID copy of one MISP instance. Safe for concurrent use.
type Table struct {
	opts Options

	refresh sync.Mutex // one read of the lists at a time
	mu      sync.RWMutex
	orgs    map[string]string // org id → uuid (lower case)
	linkOrg map[string]bool   // org ids owning the events pulled through a server link
	remote  map[string]string // server id → the link's remote org uuid
	last    time.Time         // last read attempt
	loaded  bool
}

// New returns an empty Table; call Load before use (a Table that never loaded reads
// the lists at the first lookup).
func New(opts Options) *Table {
	if opts.Lister == nil {
		panic("sources: Options.Lister is required")
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	return &Table{opts: opts}
}

// Load reads both lists now and returns the number of MISP calls made. A failed list
// keeps its previous copy; the server list needs a site-admin key (ErrForbidden
// otherwise), without it pulled events have no known sharer.
func (t *Table) Load(ctx context.Context) (calls int, err error) {
	t.refresh.Lock()
	defer t.refresh.Unlock()
	return t.loadLocked(ctx)
}

func (t *Table) loadLocked(ctx context.Context) (int, error) {
	t.mu.Lock()
	t.last = t.opts.Now()
	t.mu.Unlock()
	var errs []error
	orgs, err := t.opts.Lister.Organisations(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("read organisations: %w", err))
	}
	links, lerr := t.opts.Lister.ServerLinks(ctx)
	if lerr != nil {
		errs = append(errs, fmt.Errorf("read connected servers: %w", lerr))
	}
	if len(orgs) > t.opts.MaxEntries || len(links) > t.opts.MaxEntries {
		errs = append(errs, fmt.Errorf("%d organisations and %d servers, more than the %d kept: the rest have no known UUID",
			len(orgs), len(links), t.opts.MaxEntries))
		orgs, links = orgs[:min(len(orgs), t.opts.MaxEntries)], links[:min(len(links), t.opts.MaxEntries)]
	}
	t.mu.Lock()
	if err == nil {
		t.orgs = make(map[string]string, len(orgs))
		for _, o := range orgs {
			t.orgs[o.ID] = o.UUID
		}
	}
	if lerr == nil {
		t.linkOrg = make(map[string]bool, len(links))
		t.remote = make(map[string]string, len(links))
		for _, l := range links {
			t.linkOrg[l.OrgID] = true
			if l.RemoteOrgUUID != "" {
				t.remote[l.ID] = l.RemoteOrgUUID
			}
		}
	}
	t.loaded = t.loaded || err == nil || lerr == nil
	t.mu.Unlock()
	return 2, errors.Join(errs...)
}

// Sharer returns the partner that shared an event with this MISP:
//   - serverID set (a pull, from *_from_connected_server): the remote org of that link;
//   - else ownerID (Event.org_id): its organisation, unless it is the local org of a
//     server link — then the event was pulled and its server is not known here, and
//     the sharer is "" (known).
//
// known is false when an id is not in the copy even after a read (at most one per
// MinRefresh); calls is the number of MISP calls that read made (0 almost always).
func (t *Table) Sharer(ctx context.Context, ownerID, serverID string) (uuid string, known bool, calls int) {
	if uuid, known, ok := t.lookup(ownerID, serverID); ok {
		return uuid, known, 0
	}
	t.refresh.Lock()
	defer t.refresh.Unlock()
	// Another worker may have read the lists while this one waited.
	if uuid, known, ok := t.lookup(ownerID, serverID); ok {
		return uuid, known, 0
	}
	t.mu.RLock()
	recent := t.loaded && t.opts.Now().Sub(t.last) < t.opts.MinRefresh
	t.mu.RUnlock()
	if recent {
		return "", false, 0
	}
	calls, err := t.loadLocked(ctx)
	if err != nil {
		t.opts.Logger.Error(err, "cannot read the organisations or connected servers of MISP; sharers named by id stay unknown until the next read",
			"ownerID", ownerID, "serverID", serverID)
	}
	uuid, known, _ = t.lookup(ownerID, serverID)
	return uuid, known, calls
}

// lookup answers from the copy; ok is false on a miss.
func (t *Table) lookup(ownerID, serverID string) (uuid string, known, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch {
	case serverID != "":
		uuid, ok = t.remote[serverID]
		return uuid, ok, ok
	case ownerID == "":
		return "", false, true // nothing to look up
	case t.linkOrg[ownerID]:
		return "", true, true
	}
	uuid, ok = t.orgs[ownerID]
	return uuid, ok, ok
}
