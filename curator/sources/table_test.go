package sources

import (
	"context"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

const (
	partnerUUID = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
	hubUUID     = "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5"
	lateUUID    = "ae01a99a-c08b-4ac3-9e55-69166dad84e9"
)

func TestSharerResolvesOwnersAndServersFromTheDouble(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	t.Cleanup(srv.Close)
	partner := srv.AddOrg("PARTNER-HIGH", partnerUUID)
	hub := srv.AddOrg("HUB", hubUUID)
	link := srv.AddServer("hub", hub)
	c, err := misp.New(misp.Options{URL: srv.URL(), APIKey: srv.AdminKey(), MaxRetries: -1, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tab := New(Options{Lister: c, MinRefresh: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	if calls, err := tab.Load(ctx); err != nil || calls != 2 {
		t.Fatalf("Load = %d calls, %v", calls, err)
	}
	cases := []struct {
		name          string
		owner, server string
		want          string
		known         bool
	}{
		{"pushed by the partner: the owner org", partner.ID, "", partnerUUID, true},
		{"pulled through the hub's link: its remote org", srv.HostOrg().ID, link.ID, hubUUID, true},
		{"pulled, server not known: the link's org is no sharer", srv.HostOrg().ID, "", "", true},
		{"nothing known", "", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, known, calls := tab.Sharer(ctx, tc.owner, tc.server)
			if got != tc.want || known != tc.known || calls != 0 {
				t.Fatalf("Sharer = %q known %t (%d calls), want %q known %t with 0 calls", got, known, calls, tc.want, tc.known)
			}
		})
	}

	// An organisation created after the load: one read finds it, and a flood of
	// unknown ids costs no more than one read per MinRefresh.
	late := srv.AddOrg("LATE", lateUUID)
	now = now.Add(2 * time.Minute)
	if got, known, calls := tab.Sharer(ctx, late.ID, ""); got != lateUUID || !known || calls != 2 {
		t.Fatalf("new org: Sharer = %q known %t (%d calls), want %s after one read", got, known, calls, lateUUID)
	}
	before := srv.Calls("/organisations/index")
	for i := 0; i < 100; i++ {
		if _, known, _ := tab.Sharer(ctx, "999", ""); known {
			t.Fatal("unknown org id reported known")
		}
		if _, known, _ := tab.Sharer(ctx, "", "42"); known {
			t.Fatal("unknown server id reported known")
		}
	}
	if n := srv.Calls("/organisations/index") - before; n != 0 {
		t.Fatalf("%d reads within MinRefresh, want 0", n)
	}
	now = now.Add(2 * time.Minute)
	tab.Sharer(ctx, "999", "")
	if n := srv.Calls("/organisations/index") - before; n != 1 {
		t.Fatalf("%d reads after MinRefresh, want 1", n)
	}
}

// Without site admin the server list is refused: owners still resolve, pulls have no
// known sharer, and Load reports why.
func TestSharerWithoutServerLinks(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	t.Cleanup(srv.Close)
	partner := srv.AddOrg("PARTNER-HIGH", partnerUUID)
	srv.AddServer("partner", partner)
	key := srv.AddUser(srv.HostOrg(), misptest.Role{Tagger: true, Publish: true})
	c, _ := misp.New(misp.Options{URL: srv.URL(), APIKey: key, MaxRetries: -1, QPS: -1})
	tab := New(Options{Lister: c})
	if _, err := tab.Load(context.Background()); err == nil {
		t.Fatal("Load without site admin: no error")
	}
	if got, known, _ := tab.Sharer(context.Background(), partner.ID, ""); got != partnerUUID || !known {
		t.Fatalf("owner: %q %t", got, known)
	}
	if _, known, _ := tab.Sharer(context.Background(), "", "1"); known {
		t.Fatal("server known without the server list")
	}
}
