package misp

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// permissionDenied is MISP's ACL answer for a role without the permission
// (ACLComponent.php:L1353, misp-api.md §2.0). Not captured: built from the documented shape.
const permissionDenied = `{"name":"You do not have permission to use this functionality.","message":"You do not have permission to use this functionality.","url":"/servers/getSetting/MISP.host_org_id"}`

func TestVersion(t *testing.T) {
	tests := []struct {
		name     string
		handlers []http.HandlerFunc
		want     ServerVersion
		wantErr  error
		calls    int
	}{
		{name: "admin key reads the version", handlers: []http.HandlerFunc{replay(t, "real/api/01_servers_getVersion.json")},
			want: ServerVersion{Version: "2.5.1", PermSync: true, PermSighting: true}, calls: 1},
		{name: "bad key is unauthorized and not retried", handlers: []http.HandlerFunc{replay(t, "real/api/02_servers_getVersion_badkey.json")},
			wantErr: ErrUnauthorized, calls: 1},
		{name: "missing key is unauthorized", handlers: []http.HandlerFunc{replay(t, "real/api/03_servers_getVersion_nokey.json")},
			wantErr: ErrUnauthorized, calls: 1},
		{name: "500 is retried then succeeds", handlers: []http.HandlerFunc{replay(t, "real/background_jobs/api/07_jobs_index.json"),
			replay(t, "real/api/01_servers_getVersion.json")},
			want: ServerVersion{Version: "2.5.1", PermSync: true, PermSighting: true}, calls: 2},
		{name: "HTML instead of JSON is an unexpected response", handlers: []http.HandlerFunc{
			answer(200, "<html><body>login</body></html>", "Content-Type", "text/html")},
			wantErr: ErrUnexpectedResponse, calls: 1},
		{name: "JSON without a version is an unexpected response", handlers: []http.HandlerFunc{answer(200, `{"perm_sync":false}`)},
			wantErr: ErrUnexpectedResponse, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/servers/getVersion", tt.handlers...)
			c, _ := f.client()
			got, err := c.Version(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if n := f.count("GET", "/servers/getVersion"); n != tt.calls {
				t.Errorf("%d calls, want %d", n, tt.calls)
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    Me
		wantErr error
	}{
		{name: "site admin of the host org", handler: replay(t, "real/api/05_users_view_me.json"), want: Me{
			UserID: "1", Email: "admin@admin.test", OrgID: "1", OrgUUID: "997004a6-e769-4ab8-b467-a1ca84cf0666",
			OrgName: "ORGNAME", RoleName: "admin", SiteAdmin: true, PermAdmin: true, PermPublish: true, PermTagger: true,
			PermTagEditor: true, PermWarninglist: true, PermSync: true}},
		{name: "publisher without tag editor or warninglist permission", handler: replay(t, "real/sync/api/68_A_pub_users_view_me.json"), want: Me{
			UserID: "2", Email: "analyst@orgname-a.test", OrgID: "1", OrgUUID: "997004a6-e769-4ab8-b467-a1ca84cf0666",
			OrgName: "ORGNAME", RoleName: "Publisher", PermPublish: true, PermTagger: true}},
		{name: "ids as numbers and booleans as 0/1 strings", handler: answer(200,
			`{"User":{"id":7,"email":"x@y","org_id":3},"Role":{"name":"r","perm_site_admin":"0","perm_tagger":"1","perm_publish":1},"Organisation":{"id":3,"uuid":"AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE","name":"O"}}`),
			want: Me{UserID: "7", Email: "x@y", OrgID: "3", OrgUUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", OrgName: "O", RoleName: "r", PermTagger: true, PermPublish: true}},
		{name: "bad key", handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
		{name: "no Role in the answer", handler: answer(200, `{"User":{"id":"1"}}`), wantErr: ErrUnexpectedResponse},
		{name: "a list instead of an object", handler: answer(200, `[]`), wantErr: ErrUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/users/view/me", tt.handler)
			c, _ := f.client()
			got, err := c.WhoAmI(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestHostOrgID(t *testing.T) {
	// getSetting answers the setting description (ServersController::getSetting, 2.5.1);
	// the value is whatever config.php holds: a number or a string. Not captured.
	setting := func(value string) http.HandlerFunc {
		return answer(200, `{"level":0,"description":"The hosting organisation of this instance. If this is not selected then replication instances cannot be added.","value":`+value+`,"errorMessage":"","test":"testLocalOrg","type":"numeric","optionsSource":"LocalOrgs","name":"MISP.host_org_id"}`)
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		wantErr error
	}{
		{name: "number", handler: setting(`1`), want: "1"},
		{name: "string", handler: setting(`"12"`), want: "12"},
		{name: "unset (default 0) is empty", handler: setting(`"0"`), want: ""},
		{name: "null is empty", handler: setting(`null`), want: ""},
		{name: "not a number", handler: setting(`"abc"`), wantErr: ErrUnexpectedResponse},
		{name: "no value member", handler: answer(200, `{"name":"MISP.host_org_id"}`), wantErr: ErrUnexpectedResponse},
		{name: "not a site admin", handler: answer(403, permissionDenied), wantErr: ErrForbidden},
		{name: "bad key", handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
		{name: "unknown setting", handler: answer(404, `{"name":"Setting MISP.host_org_id is invalid.","message":"Setting MISP.host_org_id is invalid.","url":"/servers/getSetting/MISP.host_org_id"}`), wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/servers/getSetting/MISP.host_org_id", tt.handler)
			c, _ := f.client()
			got, err := c.HostOrgID(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
