package misp

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestOrganisationsDecodesTheCapturedAnswer(t *testing.T) {
	f := newFake(t).on(http.MethodGet, "/organisations/index/scope:all", replay(t, "real/sync/api/56_A_organisations_index_all.json"))
	c, _ := f.client()
	got, err := c.Organisations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Organisation{
		{ID: "1", UUID: "997004a6-e769-4ab8-b467-a1ca84cf0666", Name: "ORGNAME", Local: true},
		{ID: "2", UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", Name: "PARTNER-HIGH"},
		{ID: "3", UUID: "ae01a99a-c08b-4ac3-9e55-69166dad84e9", Name: "PARTNER-SUB"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Organisations = %+v\nwant %+v", got, want)
	}
}

func TestServerLinksDecodesTheCapturedAnswer(t *testing.T) {
	f := newFake(t).on(http.MethodGet, "/servers/index", replay(t, "real/sync/api/32_A_servers_index.json"))
	c, _ := f.client()
	got, err := c.ServerLinks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerLink{{ID: "1", Name: "PARTNER-HIGH (instance B)", OrgID: "1",
		RemoteOrgUUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", RemoteOrgName: "PARTNER-HIGH"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ServerLinks = %+v\nwant %+v", got, want)
	}
}

func TestOrgAndServerListsRefuseBadAnswers(t *testing.T) {
	cases := []struct {
		name, path, body string
		status           int
		kind             error
	}{
		{"orgs: not an array", "/organisations/index/scope:all", `{"Organisation":{}}`, 200, ErrUnexpectedResponse},
		{"orgs: row without uuid", "/organisations/index/scope:all", `[{"Organisation":{"id":"1","name":"x"}}]`, 200, ErrUnexpectedResponse},
		{"servers: not site admin", "/servers/index", `{"name":"You do not have permission to use this functionality.","message":"x","url":"/servers/index"}`, 403, ErrForbidden},
		{"servers: row without id", "/servers/index", `[{"Server":{"name":"x"}}]`, 200, ErrUnexpectedResponse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t).on(http.MethodGet, tc.path, answer(tc.status, tc.body))
			c, _ := f.client()
			var err error
			if tc.path == "/servers/index" {
				_, err = c.ServerLinks(context.Background())
			} else {
				_, err = c.Organisations(context.Background())
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
		})
	}
}

func TestEventMetaCarriesTheOwnerOrg(t *testing.T) {
	f := newFake(t).on(http.MethodPost, "/events/index", replay(t, "real/sync/api/51_A_events_index_eventid_e1.json"))
	c, _ := f.client()
	evs, err := c.SearchEvents(context.Background(), EventSearch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || evs[0].OrgID != "1" {
		t.Fatalf("events = %+v, want the owner org id 1 (a pulled event is owned by the server link's org)", evs)
	}
}

// The decoders never panic and keep their promises (numeric ids, lower-case UUIDs) on any
// body; the captures are the seed corpus.
func FuzzDecodeOrganisationsAndServers(f *testing.F) {
	if addCaptures(f, "", "/organisations/index")+addCaptures(f, "", "/servers/index") < 2 {
		f.Fatal("no organisations or servers capture")
	}
	for _, s := range []string{`[]`, `[null]`, `[{"Organisation":null}]`, `[{"Server":{"id":1},"RemoteOrg":{"uuid":"A"}}]`, `{}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if orgs, err := decodeOrganisations(body); err == nil {
			for _, o := range orgs {
				if !isID(o.ID) || !isUUID(o.UUID) || o.UUID != strings.ToLower(o.UUID) {
					t.Fatalf("bad organisation %+v", o)
				}
			}
		}
		if links, err := decodeServerLinks(body); err == nil {
			for _, l := range links {
				if !isID(l.ID) || (l.RemoteOrgUUID != "" && l.RemoteOrgUUID != strings.ToLower(l.RemoteOrgUUID)) {
					t.Fatalf("bad server link %+v", l)
				}
			}
		}
	})
}
