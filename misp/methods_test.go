package misp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// methodCase is one client method with the route it calls and a real successful answer.
type methodCase struct {
	name         string
	method, path string
	ok           http.HandlerFunc
	extra        func(f *fakeMISP) // other routes the method needs (DeleteWarninglist's view)
	call         func(ctx context.Context, c *Client) error
	// once: a write sent again only when the attempt provably never reached MISP (retry.go).
	once bool
}

func allMethods(t *testing.T) []methodCase {
	hostOrg := answer(200, `{"level":0,"value":"1","type":"numeric","name":"MISP.host_org_id"}`)
	wl := Warninglist{Name: "Local test list", Description: "d", Entries: []WarninglistEntry{{Value: "evil.example.com"}}}
	return []methodCase{
		{name: "Version", method: "GET", path: "/servers/getVersion", ok: replay(t, "real/api/01_servers_getVersion.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.Version(ctx); return err }},
		{name: "WhoAmI", method: "GET", path: "/users/view/me", ok: replay(t, "real/api/05_users_view_me.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.WhoAmI(ctx); return err }},
		{name: "HostOrgID", method: "GET", path: "/servers/getSetting/MISP.host_org_id", ok: hostOrg,
			call: func(ctx context.Context, c *Client) error { _, err := c.HostOrgID(ctx); return err }},
		{name: "EventMeta", method: "POST", path: "/events/index", ok: replay(t, "real/sync/api/51_A_events_index_eventid_e1.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.EventMeta(ctx, e1UUID); return err }},
		{name: "EventMetaByID", method: "POST", path: "/events/index", ok: replay(t, "real/sync/api/51_A_events_index_eventid_e1.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.EventMetaByID(ctx, "13"); return err }},
		{name: "SearchEvents", method: "POST", path: "/events/index", ok: replay(t, "real/sync/api/24_B_events_index.json"),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.SearchEvents(ctx, EventSearch{Since: time.Unix(1795727800, 0), OrgUUIDs: []string{partnerHigh}, Limit: 10})
				return err
			}},
		{name: "AttachTags", once: true, method: "POST", path: "/tags/attachTagToObject", ok: replay(t, "real/sync/api/57_A_admin_tag_e1_local_admiralty_a.json"),
			call: func(ctx context.Context, c *Client) error {
				return c.AttachTags(ctx, e1UUID, []string{`admiralty-scale:source-reliability="a"`}, true)
			}},
		{name: "RemoveTag", once: true, method: "POST", path: "/tags/removeTagFromObject", ok: replay(t, "real/sync/api/59_A_admin_remove_global_workflow_incomplete_e1.json"),
			call: func(ctx context.Context, c *Client) error {
				return c.RemoveTag(ctx, e1UUID, `workflow:state="incomplete"`)
			}},
		{name: "Publish", once: true, method: "POST", path: "/events/publish/" + e1UUID, ok: replay(t, "real/sync/api/63_A_admin_publish_e1.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.Publish(ctx, e1UUID); return err }},
		{name: "ListWarninglists", method: "GET", path: "/warninglists/index", ok: replay(t, "real/api/20_warninglists_index.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.ListWarninglists(ctx); return err }},
		{name: "FindWarninglist", method: "POST", path: "/warninglists/index", ok: replay(t, "real/warninglists_extra/api/26_warninglists_index_after.json"),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.FindWarninglist(ctx, "Custom cidr list")
				return err
			}},
		{name: "ViewWarninglist", method: "GET", path: "/warninglists/view/137", ok: replay(t, "real/api/26_warninglists_view_custom.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.ViewWarninglist(ctx, "137"); return err }},
		{name: "AddWarninglist", method: "POST", path: "/warninglists/add", ok: replay(t, "real/api/24_warninglists_add_custom.json"),
			call: func(ctx context.Context, c *Client) error { _, err := c.AddWarninglist(ctx, wl); return err }},
		{name: "EditWarninglist", method: "POST", path: "/warninglists/edit/137", ok: replay(t, "real/api/28_warninglists_edit_custom.json"),
			call: func(ctx context.Context, c *Client) error { return c.EditWarninglist(ctx, "137", wl) }},
		{name: "SetWarninglistEnabled", method: "POST", path: "/warninglists/toggleEnable", ok: replay(t, "real/api/27_warninglists_toggleEnable_custom.json"),
			call: func(ctx context.Context, c *Client) error { return c.SetWarninglistEnabled(ctx, "137", true) }},
		{name: "DeleteWarninglist", method: "POST", path: "/warninglists/delete/139", ok: replay(t, "real/warninglists_extra/api/23_warninglists_delete_custom_hostname.json"),
			extra: func(f *fakeMISP) {
				f.on("GET", "/warninglists/view/139", replay(t, "real/warninglists_extra/api/25_warninglists_view_deleted.json"))
			},
			call: func(ctx context.Context, c *Client) error { return c.DeleteWarninglist(ctx, "139") }},
		{name: "CheckValues", method: "POST", path: "/warninglists/checkValue", ok: replay(t, "real/api/29_warninglists_checkValue.json"),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CheckValues(ctx, []string{"10.1.2.3"})
				return err
			}},
	}
}

// TestEveryMethodEveryErrorPath runs each client method through each failure MISP (or the
// network) can produce and checks the error kind, the number of attempts and the waits.
func TestEveryMethodEveryErrorPath(t *testing.T) {
	saveFail := `{"saved":false,"name":"Could not save","message":"Could not save","url":"/x","errors":{"name":["Warninglist with same name already exists."]}}`
	paths := []struct {
		name      string
		handlers  func(ok http.HandlerFunc) []http.HandlerFunc
		canceled  bool
		wantErr   error
		wantCalls int
		wantWaits []time.Duration // nil: any backoff waits; checked when set
		// What a write that is not repeatable (methodCase.once) gets instead, when
		// onceCalls > 0: one attempt and onceErr (nil: a transport error), whose outcome
		// OutcomeUnknown reports as unknown.
		onceCalls int
		onceErr   error
	}{
		{name: "success", handlers: func(ok http.HandlerFunc) []http.HandlerFunc { return []http.HandlerFunc{ok} }, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "bad key 403", handlers: func(http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{replay(t, "real/api/02_servers_getVersion_badkey.json")}
		}, wantErr: ErrUnauthorized, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "permission 403", handlers: func(http.HandlerFunc) []http.HandlerFunc { return []http.HandlerFunc{answer(403, permissionDenied)} },
			wantErr: ErrForbidden, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "validation 403", handlers: func(http.HandlerFunc) []http.HandlerFunc { return []http.HandlerFunc{answer(403, saveFail)} },
			wantErr: ErrValidation, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "404", handlers: func(http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{replay(t, "real/api/61_events_view_404.json")}
		}, wantErr: ErrNotFound, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "405", handlers: func(http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{replay(t, "real/sync/api/76_A_pub_publish_e2.json")}
		}, wantErr: ErrNotAllowed, wantCalls: 1, wantWaits: []time.Duration{}},
		{name: "500 then success", handlers: func(ok http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{replay(t, "real/background_jobs/api/07_jobs_index.json"), ok}
		}, wantCalls: 2, onceCalls: 1, onceErr: ErrServer},
		{name: "429 with Retry-After then success", handlers: func(ok http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{answer(429, `{"name":"Too Many Requests","message":"Too Many Requests","url":"/"}`, "Retry-After", "2"), ok}
		}, wantCalls: 2, wantWaits: []time.Duration{2 * time.Second}},
		{name: "network error then success", handlers: func(ok http.HandlerFunc) []http.HandlerFunc { return []http.HandlerFunc{dropConnection, ok} },
			wantCalls: 2, onceCalls: 1},
		{name: "5xx until the retries are spent", handlers: func(http.HandlerFunc) []http.HandlerFunc {
			return []http.HandlerFunc{answer(503, `{"name":"x","message":"x","url":"/"}`)}
		}, wantErr: ErrServer, wantCalls: 3, onceCalls: 1, onceErr: ErrServer},
		{name: "canceled context", handlers: func(ok http.HandlerFunc) []http.HandlerFunc { return []http.HandlerFunc{ok} }, canceled: true,
			wantErr: context.Canceled, wantCalls: 0, wantWaits: []time.Duration{}},
	}
	for _, m := range allMethods(t) {
		for _, p := range paths {
			t.Run(m.name+"/"+p.name, func(t *testing.T) {
				f := newFake(t).on(m.method, m.path, p.handlers(m.ok)...)
				if m.extra != nil {
					m.extra(f)
				}
				c, s := f.client(func(o *Options) { o.MaxRetries = 2; o.RetryMaxDelay = 5 * time.Second })
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if p.canceled {
					cancel()
				}
				err := m.call(ctx, c)
				wantErr, wantCalls := p.wantErr, p.wantCalls
				if m.once && p.onceCalls > 0 {
					wantErr, wantCalls = p.onceErr, p.onceCalls
					if err == nil || !OutcomeUnknown(err) {
						t.Errorf("err = %v: want an error whose outcome is unknown", err)
					}
				}
				if (wantErr != nil && !errors.Is(err, wantErr)) || (wantErr == nil && err != nil && !(m.once && p.onceCalls > 0)) {
					t.Fatalf("err = %v, want %v", err, wantErr)
				}
				if n := f.count(m.method, m.path); n != wantCalls {
					t.Errorf("%d calls, want %d", n, wantCalls)
				}
				if p.wantWaits != nil {
					if got := s.all(); len(got) != len(p.wantWaits) || (len(got) > 0 && got[0] != p.wantWaits[0]) {
						t.Errorf("waits %v, want %v", got, p.wantWaits)
					}
				}
				var ae *APIError
				if errors.As(err, &ae) && (ae.Op == "" || ae.Endpoint == "" || ae.Status == 0 || ae.Message == "") {
					t.Errorf("incomplete APIError %#v", ae)
				}
			})
		}
	}
}
