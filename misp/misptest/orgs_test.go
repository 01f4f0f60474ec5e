package misptest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// The double answers /organisations/index/scope:all and /servers/index in the shapes
// the client decodes from the real captures (sync/api/56, sync/api/32).
func TestOrgsAndServerLinksThroughTheClient(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	t.Cleanup(srv.Close)
	partner := srv.AddOrg("PARTNER-HIGH", "1521ae8b-48de-4766-8b2a-fdecef763fa8")
	link := srv.AddServer("PARTNER-HIGH (instance B)", partner)
	admin := srv.AddUser(srv.HostOrg(), misptest.Role{SiteAdmin: true})
	c, err := misp.New(misp.Options{URL: srv.URL(), APIKey: admin, MaxRetries: -1, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	orgs, err := c.Organisations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]misp.Organisation{}
	for _, o := range orgs {
		byID[o.ID] = o
	}
	host := srv.HostOrg()
	if o := byID[host.ID]; o.UUID != host.UUID || !o.Local {
		t.Errorf("host org = %+v, want %+v local", o, host)
	}
	if o := byID[partner.ID]; o.UUID != partner.UUID || o.Local {
		t.Errorf("partner org = %+v, want %+v not local (scope:all lists external orgs)", o, partner)
	}
	links, err := c.ServerLinks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := misp.ServerLink{ID: link.ID, Name: link.Name, OrgID: host.ID, RemoteOrgUUID: partner.UUID, RemoteOrgName: "PARTNER-HIGH"}
	if len(links) != 1 || links[0] != want {
		t.Fatalf("links = %+v, want [%+v]", links, want)
	}

	// Only site admins see the server links.
	tagger := srv.AddUser(host, misptest.Role{Tagger: true})
	c2, _ := misp.New(misp.Options{URL: srv.URL(), APIKey: tagger, MaxRetries: -1, QPS: -1})
	if _, err := c2.ServerLinks(ctx); !errors.Is(err, misp.ErrForbidden) {
		t.Fatalf("ServerLinks as a tagger: %v, want ErrForbidden", err)
	}
}
