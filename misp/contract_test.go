package misp_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// Contract tests: every client method against the MISP double (package misptest), which
// answers like the captured MISP 2.5.1, with state. They check that what the client sends
// has the effect the operator relies on, and that the double's refusals map to the
// documented error kinds.

const (
	partnerUUID = "1521ae8b-48de-4766-8b2a-fdecef763fa8" // PARTNER-HIGH in the sync captures
	otherUUID   = "ae01a99a-c08b-4ac3-9e55-69166dad84e9"
)

func newDouble(t *testing.T, opts misptest.Options) *misptest.Server {
	t.Helper()
	srv := misptest.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, srv *misptest.Server, key string, mutate ...func(*misp.Options)) *misp.Client {
	t.Helper()
	opts := misp.Options{URL: srv.URL(), APIKey: key, QPS: -1, MaxRetries: 2, RetryBaseDelay: time.Millisecond,
		RetryMaxDelay: 20 * time.Millisecond, Timeout: 10 * time.Second}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := misp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
}

func hasTag(e misptest.Event, name string, local bool) bool {
	return slices.Contains(e.Tags, misptest.EventTag{Name: name, Local: local})
}

func TestContractServerAndIdentity(t *testing.T) {
	srv := newDouble(t, misptest.Options{})
	admin := newClient(t, srv, srv.AdminKey())
	publisherKey := srv.AddUser(srv.HostOrg(), misptest.Role{Publish: true, Tagger: true})
	publisher := newClient(t, srv, publisherKey)

	v, err := admin.Version(ctx(t))
	if err != nil || v.Version != "2.5.1" || !v.PermSync {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	me, err := admin.WhoAmI(ctx(t))
	if err != nil || !me.SiteAdmin || !me.PermWarninglist || me.OrgUUID != srv.HostOrg().UUID || me.OrgID != srv.HostOrg().ID {
		t.Fatalf("admin WhoAmI = %+v, %v", me, err)
	}
	me, err = publisher.WhoAmI(ctx(t))
	if err != nil || me.SiteAdmin || !me.PermPublish || !me.PermTagger || me.PermWarninglist || me.PermTagEditor {
		t.Fatalf("publisher WhoAmI = %+v, %v", me, err)
	}
	id, err := admin.HostOrgID(ctx(t))
	if err != nil || id != srv.HostOrg().ID {
		t.Fatalf("HostOrgID = %q, %v; want %q", id, err, srv.HostOrg().ID)
	}
	_, err = publisher.HostOrgID(ctx(t))
	wantKind(t, err, misp.ErrForbidden)

	bad := newClient(t, srv, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	_, err = bad.Version(ctx(t))
	wantKind(t, err, misp.ErrUnauthorized)
	_, err = bad.WhoAmI(ctx(t))
	wantKind(t, err, misp.ErrUnauthorized)
}

func TestContractEvents(t *testing.T) {
	srv := newDouble(t, misptest.Options{})
	admin := newClient(t, srv, srv.AdminKey())
	partner := srv.AddOrg("PARTNER-HIGH", partnerUUID)
	other := srv.AddOrg("PARTNER-SUB", otherUUID)
	t0 := time.Unix(1795727800, 0)
	pulled := srv.AddEvent(misptest.Event{Info: "pulled", Orgc: partner, Published: true, Locked: true, Timestamp: t0.Add(10 * time.Second),
		Attributes: 3, Tags: []misptest.EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}})
	empty := srv.AddEvent(misptest.Event{Info: "no attributes", Orgc: partner, Locked: true, Timestamp: t0.Add(20 * time.Second)})
	old := srv.AddEvent(misptest.Event{Info: "old", Orgc: other, Locked: true, Timestamp: t0.Add(-time.Hour), Attributes: 1})
	local := srv.AddEvent(misptest.Event{Info: "ours", Timestamp: t0.Add(30 * time.Second), Attributes: 1})

	t.Run("EventMeta", func(t *testing.T) {
		m, err := admin.EventMeta(ctx(t), pulled.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if m.UUID != pulled.UUID || m.ID != pulled.ID || m.OrgcUUID != partnerUUID || m.OrgcName != "PARTNER-HIGH" ||
			!m.Published || !m.Locked || !m.Timestamp.Equal(pulled.Timestamp) || len(m.Tags) != 2 || m.Tags[0].Name != "tlp:green" || m.Tags[0].Local {
			t.Errorf("EventMeta = %+v", m)
		}
		// An event without attributes is found (the minimal index would drop it).
		if m, err := admin.EventMeta(ctx(t), empty.UUID); err != nil || m.UUID != empty.UUID {
			t.Errorf("empty event: %+v, %v", m, err)
		}
		_, err = admin.EventMeta(ctx(t), "00000000-0000-4000-8000-000000000000")
		wantKind(t, err, misp.ErrNotFound)
	})

	t.Run("SearchEvents", func(t *testing.T) {
		uuids := func(events []misp.EventMeta) []string {
			var out []string
			for _, e := range events {
				out = append(out, e.UUID)
			}
			slices.Sort(out)
			return out
		}
		sorted := func(s ...string) []string { slices.Sort(s); return s }
		got, err := admin.SearchEvents(ctx(t), misp.EventSearch{Since: t0})
		if err != nil {
			t.Fatal(err)
		}
		if want := sorted(pulled.UUID, empty.UUID, local.UUID); !slices.Equal(uuids(got), want) {
			t.Errorf("since t0: %v, want %v", uuids(got), want)
		}
		got, err = admin.SearchEvents(ctx(t), misp.EventSearch{OrgUUIDs: []string{partnerUUID, otherUUID}})
		if err != nil {
			t.Fatal(err)
		}
		if want := sorted(pulled.UUID, empty.UUID, old.UUID); !slices.Equal(uuids(got), want) {
			t.Errorf("by org: %v, want %v", uuids(got), want)
		}
		// Paging: every event exactly once over the pages, Total says when to stop.
		var all []misp.EventMeta
		for page := 1; ; page++ {
			p, err := admin.SearchEventsPage(ctx(t), misp.EventSearch{Limit: 3, Page: page})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, p.Events...)
			if p.Total != 4 {
				t.Fatalf("Total = %d, want 4", p.Total)
			}
			if page*3 >= p.Total {
				break
			}
		}
		if want := sorted(pulled.UUID, empty.UUID, old.UUID, local.UUID); !slices.Equal(uuids(all), want) {
			t.Errorf("paged: %v, want %v", uuids(all), want)
		}
	})

	t.Run("tags and publish as site admin", func(t *testing.T) {
		c := ctx(t)
		if err := admin.AttachTags(c, pulled.UUID, []string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, true); err != nil {
			t.Fatal(err)
		}
		ev, _ := srv.Event(pulled.UUID)
		if !hasTag(ev, `admiralty-scale:source-reliability="a"`, true) || !hasTag(ev, `workflow:state="complete"`, true) || !ev.Published {
			t.Fatalf("after local attach: %+v", ev)
		}
		// Already attached: still a success.
		if err := admin.AttachTags(c, pulled.UUID, []string{`workflow:state="complete"`}, true); err != nil {
			t.Fatal(err)
		}
		m, err := admin.EventMeta(c, pulled.UUID)
		if err != nil || len(m.Tags) != 4 {
			t.Fatalf("EventMeta after attach: %+v, %v", m, err)
		}
		if err := admin.RemoveTag(c, pulled.UUID, `workflow:state="incomplete"`); err != nil {
			t.Fatal(err)
		}
		ev, _ = srv.Event(pulled.UUID)
		if hasTag(ev, `workflow:state="incomplete"`, false) || ev.Published {
			t.Fatalf("removing a global tag must detach it and unpublish: %+v", ev)
		}
		wantKind(t, admin.RemoveTag(c, pulled.UUID, `workflow:state="incomplete"`), misp.ErrNotFound) // not attached any more
		wantKind(t, admin.RemoveTag(c, pulled.UUID, "no-such-tag:ever"), misp.ErrNotFound)            // unknown to MISP
		msg, err := admin.Publish(c, pulled.UUID)
		if err != nil || msg != "Event published without alerts" {
			t.Fatalf("Publish = %q, %v", msg, err)
		}
		if ev, _ = srv.Event(pulled.UUID); !ev.Published {
			t.Fatal("not published")
		}
		_, err = admin.Publish(c, "00000000-0000-4000-8000-000000000000")
		wantKind(t, err, misp.ErrNotFound)
		wantKind(t, admin.AttachTags(c, "00000000-0000-4000-8000-000000000000", []string{"tlp:green"}, true), misp.ErrNotFound)
	})

	t.Run("a publisher of the host org", func(t *testing.T) {
		c := ctx(t)
		pub := newClient(t, srv, srv.AddUser(srv.HostOrg(), misptest.Role{Publish: true, Tagger: true}))
		if err := pub.AttachTags(c, old.UUID, []string{"tlp:green"}, true); err != nil {
			t.Fatalf("local tag: %v", err)
		}
		wantKind(t, pub.AttachTags(c, old.UUID, []string{"tlp:amber"}, false), misp.ErrForbidden)
		_, err := pub.Publish(c, old.UUID)
		wantKind(t, err, misp.ErrNotAllowed)
		if ev, _ := srv.Event(old.UUID); !hasTag(ev, "tlp:green", true) || hasTag(ev, "tlp:amber", false) || ev.Published {
			t.Errorf("state after the publisher: %+v", ev)
		}
	})

	t.Run("a tagger outside the host org cannot add local tags", func(t *testing.T) {
		user := newClient(t, srv, srv.AddUser(partner, misptest.Role{Tagger: true, TagEditor: true}))
		err := user.AttachTags(ctx(t), empty.UUID, []string{"tlp:green"}, true)
		wantKind(t, err, misp.ErrValidation)
	})
}

func TestContractBackgroundPublish(t *testing.T) {
	srv := newDouble(t, misptest.Options{BackgroundJobs: true, JobDelay: 10 * time.Millisecond})
	admin := newClient(t, srv, srv.AdminKey())
	ev := srv.AddEvent(misptest.Event{Orgc: srv.AddOrg("PARTNER-HIGH", partnerUUID), Locked: true, Attributes: 1})
	msg, err := admin.Publish(ctx(t), ev.UUID)
	if err != nil || msg != "Job queued" {
		t.Fatalf("Publish = %q, %v", msg, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if e, _ := srv.Event(ev.UUID); e.Published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queued publish never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestContractWarninglists(t *testing.T) {
	srv := newDouble(t, misptest.Options{})
	admin := newClient(t, srv, srv.AdminKey())
	c := ctx(t)
	want := misp.Warninglist{Name: "misp-trust-operator: high-trust orgs", Description: "managed by misp-trust-operator", Type: "string",
		Category: "known", MatchingAttributes: []string{"domain", "ip-dst"},
		Entries: []misp.WarninglistEntry{{Value: "evil.example.com", Comment: "partner"}, {Value: "198.51.100.7"}}}

	id, err := admin.AddWarninglist(c, want)
	if err != nil || id == "" {
		t.Fatalf("AddWarninglist = %q, %v", id, err)
	}
	got, err := admin.ViewWarninglist(c, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.Type != "string" || got.Category != "known" || got.Enabled || got.Default || got.Version != 1 ||
		!slices.Equal(got.MatchingAttributes, want.MatchingAttributes) || !slices.Equal(got.Entries, want.Entries) {
		t.Fatalf("ViewWarninglist = %+v", got)
	}
	found, err := admin.FindWarninglist(c, want.Name)
	if err != nil || found.ID != id {
		t.Fatalf("FindWarninglist = %+v, %v", found, err)
	}
	_, err = admin.FindWarninglist(c, want.Name+" (no)")
	wantKind(t, err, misp.ErrNotFound)
	lists, err := admin.ListWarninglists(c)
	if err != nil || !slices.ContainsFunc(lists, func(w misp.Warninglist) bool { return w.ID == id && w.EntryCount == 2 }) {
		t.Fatalf("ListWarninglists: %d lists, %v", len(lists), err)
	}

	// Disabled lists do not match.
	hits, err := admin.CheckValues(c, []string{"evil.example.com", "clean.example.org"})
	if err != nil || len(hits) != 0 {
		t.Fatalf("CheckValues before enabling = %v, %v", hits, err)
	}
	if err := admin.SetWarninglistEnabled(c, id, true); err != nil {
		t.Fatal(err)
	}
	hits, err = admin.CheckValues(c, []string{"evil.example.com", "clean.example.org"})
	if err != nil || len(hits) != 1 || hits["evil.example.com"][0].ID != id || hits["evil.example.com"][0].Name != want.Name {
		t.Fatalf("CheckValues = %v, %v", hits, err)
	}

	// Edit replaces the entries (one with '#', sent in the array form) and bumps the version.
	edited := want
	edited.Entries = []misp.WarninglistEntry{{Value: "https://example.org/#frag"}, {Value: "203.0.113.9", Comment: "new"}}
	if err := admin.EditWarninglist(c, id, edited); err != nil {
		t.Fatal(err)
	}
	got, err = admin.ViewWarninglist(c, id)
	if err != nil || got.Version != 2 || !got.Enabled || !slices.Equal(got.Entries, edited.Entries) {
		t.Fatalf("after edit: %+v, %v", got, err)
	}

	t.Run("refusals", func(t *testing.T) {
		_, err := admin.AddWarninglist(c, want) // same name
		wantKind(t, err, misp.ErrValidation)
		bad := want
		bad.Name, bad.Category = "bad category", "known_identifier"
		_, err = admin.AddWarninglist(c, bad)
		wantKind(t, err, misp.ErrValidation)
		noEntries := want
		noEntries.Name, noEntries.Entries = "no entries", nil
		_, err = admin.AddWarninglist(c, noEntries)
		wantKind(t, err, misp.ErrValidation)
		wantKind(t, admin.SetWarninglistEnabled(c, "999999", true), misp.ErrNotFound)
		wantKind(t, admin.EditWarninglist(c, "999999", want), misp.ErrNotFound)
		_, err = admin.ViewWarninglist(c, "999999")
		wantKind(t, err, misp.ErrNotFound)

		user := newClient(t, srv, srv.AddUser(srv.HostOrg(), misptest.Role{Tagger: true}))
		other := want
		other.Name = "not allowed"
		_, err = user.AddWarninglist(c, other)
		wantKind(t, err, misp.ErrForbidden)
		wantKind(t, user.SetWarninglistEnabled(c, id, false), misp.ErrForbidden)
		wantKind(t, user.DeleteWarninglist(c, id), misp.ErrForbidden)
	})

	if err := admin.SetWarninglistEnabled(c, id, false); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteWarninglist(c, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.Warninglist(id); ok {
		t.Fatal("still in the double after DeleteWarninglist")
	}
	_, err = admin.ViewWarninglist(c, id)
	wantKind(t, err, misp.ErrNotFound)
	// Deleting again is not an error (idempotent, like MISP's own 302).
	if err := admin.DeleteWarninglist(c, id); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestContractFaults(t *testing.T) {
	srv := newDouble(t, misptest.Options{})
	admin := newClient(t, srv, srv.AdminKey())
	ev := srv.AddEvent(misptest.Event{Attributes: 1})
	tests := []struct {
		name  string
		fault misptest.Fault
		kind  error
	}{
		{name: "500 on every call", fault: misptest.Fault{ErrorStatus: http.StatusInternalServerError}, kind: misp.ErrServer},
		{name: "502 on every call", fault: misptest.Fault{ErrorStatus: http.StatusBadGateway}, kind: misp.ErrServer},
		{name: "429 on every call", fault: misptest.Fault{ErrorStatus: http.StatusTooManyRequests}, kind: misp.ErrRateLimited},
		{name: "dropped connections", fault: misptest.Fault{DropConn: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.ResetStats()
			srv.SetFault("/events/index", tt.fault)
			_, err := admin.EventMeta(ctx(t), ev.UUID)
			srv.SetFault("/events/index", misptest.Fault{})
			if err == nil || (tt.kind != nil && !errors.Is(err, tt.kind)) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			if n := srv.Calls("/events/index"); n != 3 { // MaxRetries 2
				t.Errorf("%d calls, want 3", n)
			}
			if _, err := admin.EventMeta(ctx(t), ev.UUID); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
		})
	}
	t.Run("flaky endpoint: retries get through", func(t *testing.T) {
		flaky := newClient(t, srv, srv.AdminKey(), func(o *misp.Options) { o.MaxRetries = 10 })
		srv.SetFault("/events/index", misptest.Fault{ErrorRate: 0.5, ErrorStatus: http.StatusBadGateway})
		defer srv.SetFault("/events/index", misptest.Fault{})
		for i := 0; i < 20; i++ {
			if _, err := flaky.EventMeta(ctx(t), ev.UUID); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
	})
	t.Run("MISP down", func(t *testing.T) {
		srv.SetDown(true)
		_, err := admin.Version(ctx(t))
		srv.SetDown(false)
		if err == nil {
			t.Fatal("no error while down")
		}
		if _, err := admin.Version(ctx(t)); err != nil {
			t.Fatalf("after down: %v", err)
		}
	})
}
