package misp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

func TestListWarninglists(t *testing.T) {
	t.Run("stock lists after update", func(t *testing.T) {
		f := newFake(t).on("GET", "/warninglists/index", replay(t, "real/api/20_warninglists_index.json"))
		c, _ := f.client()
		lists, err := c.ListWarninglists(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(lists) != 136 {
			t.Fatalf("%d lists, want 136", len(lists))
		}
		var rfc *Warninglist
		for i := range lists {
			if lists[i].ID == "101" {
				rfc = &lists[i]
			}
		}
		want := Warninglist{ID: "101", Name: "List of RFC 1918 CIDR blocks", Type: "cidr", Category: "false_positive",
			Description: "Event contains one or more entries part of the private network CIDR blocks (RFC 1918)", Version: 5,
			Default: true, MatchingAttributes: []string{"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"}, EntryCount: 3}
		if rfc == nil || !reflect.DeepEqual(*rfc, want) {
			t.Errorf("rfc1918 = %+v\nwant      %+v", rfc, want)
		}
	})
	t.Run("custom lists, ALL types", func(t *testing.T) {
		f := newFake(t).on("GET", "/warninglists/index", replay(t, "real/warninglists_extra/api/26_warninglists_index_after.json"))
		c, _ := f.client()
		lists, err := c.ListWarninglists(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := Warninglist{ID: "140", Name: "Custom substring list", Type: "substring", Category: "known",
			Description: "custom substring list", Version: 1, Enabled: true, MatchingAttributes: []string{"ALL"}, EntryCount: 1}
		if !reflect.DeepEqual(lists[2], want) {
			t.Errorf("got %+v\nwant %+v", lists[2], want)
		}
	})
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error
	}{
		{name: "bad key", handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
		{name: "no Warninglists member", handler: answer(200, `{}`), wantErr: ErrUnexpectedResponse},
		{name: "row without id", handler: answer(200, `{"Warninglists":[{"Warninglist":{"name":"x"}}]}`), wantErr: ErrUnexpectedResponse},
		{name: "version not a number", handler: answer(200, `{"Warninglists":[{"Warninglist":{"id":"1","version":"v3"}}]}`), wantErr: ErrUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/warninglists/index", tt.handler)
			c, _ := f.client()
			if _, err := c.ListWarninglists(context.Background()); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestFindWarninglist(t *testing.T) {
	tests := []struct {
		name       string
		find       string
		method     string
		handler    http.HandlerFunc
		wantID     string
		wantBody   string
		wantErr    error
		wantNoCall bool
	}{
		{name: "exact name among substring matches", find: "Custom cidr list", method: "POST",
			handler: replay(t, "real/warninglists_extra/api/26_warninglists_index_after.json"), wantID: "138", wantBody: `{"value":"Custom cidr list"}`},
		{name: "a prefix is not a match", find: "Custom cidr", method: "POST",
			handler: replay(t, "real/warninglists_extra/api/26_warninglists_index_after.json"), wantErr: ErrNotFound, wantBody: `{"value":"Custom cidr"}`},
		{name: "empty index answer", find: "rfc1918", method: "POST", handler: replay(t, "real/api/23_warninglists_index_search.json"),
			wantErr: ErrNotFound, wantBody: `{"value":"rfc1918"}`},
		{name: "names with a backslash use the full index", find: `C:\lists`, method: "GET",
			handler: answer(200, `{"Warninglists":[{"Warninglist":{"id":"7","name":"C:\\lists"}}]}`), wantID: "7"},
		{name: "non-ASCII names use the full index", find: "Liste des hôtes", method: "GET",
			handler: answer(200, `{"Warninglists":[{"Warninglist":{"id":"8","name":"Liste des hôtes"}}]}`), wantID: "8"},
		{name: "bad key", find: "x", method: "POST", handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
		{name: "empty name", find: "", wantErr: ErrInvalidArgument, wantNoCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on(tt.method, "/warninglists/index", tt.handler)
			}
			c, _ := f.client()
			wl, err := c.FindWarninglist(context.Background(), tt.find)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantID != "" && (wl == nil || wl.ID != tt.wantID || wl.Name != tt.find) {
				t.Errorf("got %+v, want id %s", wl, tt.wantID)
			}
			if tt.wantErr != nil && wl != nil {
				t.Errorf("got %+v with an error", wl)
			}
			if tt.wantNoCall {
				if len(f.requests()) != 0 {
					t.Fatal("request sent")
				}
				return
			}
			if tt.wantBody != "" {
				jsonEqual(t, f.last(tt.method, "/warninglists/index").Body, tt.wantBody)
			}
		})
	}
}

func TestViewWarninglist(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		handler http.HandlerFunc
		want    *Warninglist
		wantErr error
	}{
		{name: "entries with and without comment", id: "137", handler: replay(t, "real/api/26_warninglists_view_custom.json"),
			want: &Warninglist{ID: "137", Name: "Local test list", Type: "string", Category: "false_positive",
				Description: "custom list for client verification", Version: 1, MatchingAttributes: []string{"ip-dst", "domain"},
				Entries: []WarninglistEntry{{Value: "evil.example.com", Comment: "a comment"}, {Value: "198.51.100.7"}}, EntryCount: 2}},
		{name: "enabled cidr list", id: "138", handler: replay(t, "real/warninglists_extra/api/12_warninglists_view_custom_cidr.json"),
			want: &Warninglist{ID: "138", Name: "Custom cidr list", Type: "cidr", Category: "known", Description: "custom cidr list",
				Version: 1, Enabled: true, MatchingAttributes: []string{"ip-src", "ip-dst"},
				Entries: []WarninglistEntry{{Value: "192.0.2.0/24"}, {Value: "2001:db8::/32"}}, EntryCount: 2}},
		{name: "deleted list", id: "139", handler: replay(t, "real/warninglists_extra/api/25_warninglists_view_deleted.json"), wantErr: ErrNotFound},
		{name: "no entries", id: "9", handler: answer(200, `{"Warninglist":{"id":"9","name":"n","WarninglistEntry":[],"WarninglistType":[]}}`),
			want: &Warninglist{ID: "9", Name: "n", Entries: []WarninglistEntry{}}},
		{name: "non-numeric id is refused (no path injection)", id: "../servers", wantErr: ErrInvalidArgument},
		{name: "answer without Warninglist", id: "9", handler: answer(200, `{"name":"x"}`), wantErr: ErrUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("GET", "/warninglists/view/"+tt.id, tt.handler)
			}
			c, _ := f.client()
			got, err := c.ViewWarninglist(context.Background(), tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAddWarninglist(t *testing.T) {
	custom := Warninglist{Name: "Local test list", Description: "custom list for client verification", Type: "string",
		Category: "false_positive", MatchingAttributes: []string{"ip-dst", "domain"},
		Entries: []WarninglistEntry{{Value: "evil.example.com", Comment: "a comment"}, {Value: "198.51.100.7"}}}
	tests := []struct {
		name     string
		wl       Warninglist
		handlers []http.HandlerFunc
		index    http.HandlerFunc
		wantID   string
		wantBody string
		wantErr  error
	}{
		{name: "string entries with a comment (as captured)", wl: custom, handlers: []http.HandlerFunc{replay(t, "real/api/24_warninglists_add_custom.json")},
			wantID: "137", wantBody: `{"Warninglist":{"name":"Local test list","description":"custom list for client verification","type":"string","category":"false_positive","matching_attributes":["ip-dst","domain"],"entries":"evil.example.com # a comment\n198.51.100.7"}}`},
		{name: "values with # use the array form", wl: Warninglist{Name: "Custom string list", Description: "d", Type: "regex", Category: "known",
			Entries: []WarninglistEntry{{Value: "/^a#b$/"}, {Value: "x", Comment: "c"}}}, handlers: []http.HandlerFunc{replay(t, "real/warninglists_extra/api/10_warninglists_add_custom_string.json")},
			wantID: "142", wantBody: `{"Warninglist":{"name":"Custom string list","description":"d","type":"regex","category":"known","matching_attributes":["ALL"],"entries":[{"value":"/^a#b$/","comment":""},{"value":"x","comment":"c"}]}}`},
		{name: "cidr list", wl: Warninglist{Name: "Custom cidr list", Description: "custom cidr list", Type: "cidr", Category: "known",
			MatchingAttributes: []string{"ip-src", "ip-dst"}, Entries: []WarninglistEntry{{Value: "192.0.2.0/24"}, {Value: "2001:db8::/32"}}},
			handlers: []http.HandlerFunc{replay(t, "real/warninglists_extra/api/02_warninglists_add_custom_cidr.json")}, wantID: "138",
			wantBody: `{"Warninglist":{"name":"Custom cidr list","description":"custom cidr list","type":"cidr","category":"known","matching_attributes":["ip-src","ip-dst"],"entries":"192.0.2.0/24\n2001:db8::/32"}}`},
		{name: "no entries: validation error from MISP", wl: Warninglist{Name: "broken"}, handlers: []http.HandlerFunc{replay(t, "real/api/25_warninglists_add_custom_invalid.json")}, wantErr: ErrValidation},
		{name: "bad category: validation error", wl: Warninglist{Name: "Bad category list", Category: "known_identifier", Entries: []WarninglistEntry{{Value: "x.example"}}},
			handlers: []http.HandlerFunc{replay(t, "real/warninglists_extra/api/01_warninglists_add_custom_invalid_category.json")}, wantErr: ErrValidation},
		{name: "no perm_warninglist", wl: custom, handlers: []http.HandlerFunc{answer(403, permissionDenied)}, wantErr: ErrForbidden},
		{name: "answer without id", wl: custom, handlers: []http.HandlerFunc{answer(200, `{"Warninglist":{"name":"x"}}`)}, wantErr: ErrUnexpectedResponse},
		{name: "lost answer then duplicate name: the created list is returned", wl: custom,
			handlers: []http.HandlerFunc{answer(503, `{"name":"An Internal Error Has Occurred.","message":"An Internal Error Has Occurred.","url":"/warninglists/add"}`),
				answer(403, `{"saved":false,"name":"Could not add warninglist","message":"Could not add warninglist","url":"/warninglists/add","errors":{"name":["Warninglist with same name already exists."]}}`)},
			index:  answer(200, `{"Warninglists":[{"Warninglist":{"id":"137","name":"Local test list","default":false}}]}`),
			wantID: "137"},
		{name: "duplicate name on the first attempt is an error", wl: custom,
			handlers: []http.HandlerFunc{answer(403, `{"saved":false,"name":"Could not add warninglist","message":"Could not add warninglist","url":"/warninglists/add","errors":{"name":["Warninglist with same name already exists."]}}`)},
			wantErr:  ErrValidation},
		{name: "empty name", wl: Warninglist{}, wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if len(tt.handlers) > 0 {
				f.on("POST", "/warninglists/add", tt.handlers...)
			}
			if tt.index != nil {
				f.on("POST", "/warninglists/index", tt.index)
			}
			c, _ := f.client()
			id, err := c.AddWarninglist(context.Background(), tt.wl)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if id != tt.wantID {
				t.Errorf("id %q, want %q", id, tt.wantID)
			}
			if tt.wantBody != "" {
				jsonEqual(t, f.last("POST", "/warninglists/add").Body, tt.wantBody)
			}
		})
	}
	t.Run("field errors are kept", func(t *testing.T) {
		f := newFake(t).on("POST", "/warninglists/add", replay(t, "real/api/25_warninglists_add_custom_invalid.json"))
		c, _ := f.client()
		_, err := c.AddWarninglist(context.Background(), Warninglist{Name: "broken"})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "Could not add warninglist" ||
			!reflect.DeepEqual(ae.Errors, map[string]any{"entries": []any{"Entries cannot be empty."}}) {
			t.Fatalf("got %#v", err)
		}
	})
}

func TestEditWarninglist(t *testing.T) {
	wl := Warninglist{Name: "Local test list", Description: "custom list (edited)", Type: "string", Category: "false_positive",
		MatchingAttributes: []string{"ip-dst", "domain"}, Entries: []WarninglistEntry{{Value: "evil.example.com"}, {Value: "198.51.100.7"}, {Value: "203.0.113.9"}}}
	tests := []struct {
		name    string
		id      string
		wl      Warninglist
		handler http.HandlerFunc
		wantErr error
	}{
		{name: "edit as captured", id: "137", wl: wl, handler: replay(t, "real/api/28_warninglists_edit_custom.json")},
		{name: "default or unknown list", id: "101", wl: wl,
			handler: answer(404, `{"name":"Invalid Warninglist.","message":"Invalid Warninglist.","url":"/warninglists/edit/101"}`), wantErr: ErrNotFound},
		{name: "duplicate name", id: "137", wl: wl,
			handler: answer(403, `{"saved":false,"name":"Could not edit warninglist","message":"Could not edit warninglist","url":"/warninglists/edit","errors":{"name":["Warninglist with same name already exists."]}}`), wantErr: ErrValidation},
		{name: "no perm_warninglist", id: "137", wl: wl, handler: answer(403, permissionDenied), wantErr: ErrForbidden},
		{name: "bad id", id: "1 OR 1", wl: wl, wantErr: ErrInvalidArgument},
		{name: "empty name", id: "137", wl: Warninglist{}, wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/warninglists/edit/"+tt.id, tt.handler)
			}
			c, _ := f.client()
			err := c.EditWarninglist(context.Background(), tt.id, tt.wl)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.handler != nil {
				jsonEqual(t, f.last("POST", "/warninglists/edit/"+tt.id).Body,
					`{"Warninglist":{"name":"Local test list","description":"custom list (edited)","type":"string","category":"false_positive","matching_attributes":["ip-dst","domain"],"entries":"evil.example.com\n198.51.100.7\n203.0.113.9"}}`)
			}
		})
	}
}

func TestSetWarninglistEnabled(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		enabled  bool
		handler  http.HandlerFunc
		wantBody string
		wantErr  error
	}{
		{name: "enable", id: "137", enabled: true, handler: replay(t, "real/api/27_warninglists_toggleEnable_custom.json"), wantBody: `{"id":"137","enabled":1}`},
		{name: "disable", id: "138", handler: replay(t, "real/warninglists_extra/api/21_warninglists_toggleEnable_disable_cidr.json"), wantBody: `{"id":"138","enabled":0}`},
		{name: "200 saved:false not found", id: "999", enabled: true, handler: answer(200, `{"saved":false,"errors":"Warninglist(s) not found."}`), wantErr: ErrNotFound},
		{name: "200 saved:false could not toggle", id: "137", enabled: true, handler: answer(200, `{"saved":false,"errors":"Warninglist(s) could not be toggled."}`), wantErr: ErrValidation},
		{name: "200 without saved", id: "137", enabled: true, handler: answer(200, `{"ok":true}`), wantErr: ErrUnexpectedResponse},
		{name: "no perm_warninglist", id: "137", enabled: true, handler: answer(403, permissionDenied), wantErr: ErrForbidden},
		{name: "bad id", id: "abc", wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/warninglists/toggleEnable", tt.handler)
			}
			c, _ := f.client()
			err := c.SetWarninglistEnabled(context.Background(), tt.id, tt.enabled)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantBody != "" {
				jsonEqual(t, f.last("POST", "/warninglists/toggleEnable").Body, tt.wantBody)
			}
		})
	}
	t.Run("the failure message is MISP's", func(t *testing.T) {
		f := newFake(t).on("POST", "/warninglists/toggleEnable", answer(200, `{"saved":false,"errors":"Warninglist(s) not found."}`))
		c, _ := f.client()
		var ae *APIError
		if err := c.SetWarninglistEnabled(context.Background(), "999", true); !errors.As(err, &ae) || ae.Message != "Warninglist(s) not found." || ae.Op != "enable warninglist 999" {
			t.Fatalf("got %#v", err)
		}
	})
}

func TestDeleteWarninglist(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		del      http.HandlerFunc
		view     http.HandlerFunc
		wantErr  error
		wantView bool
	}{
		{name: "302 then view 404", id: "139", del: replay(t, "real/warninglists_extra/api/23_warninglists_delete_custom_hostname.json"),
			view: replay(t, "real/warninglists_extra/api/25_warninglists_view_deleted.json"), wantView: true},
		{name: "302 but the list is still there", id: "137", del: replay(t, "real/api/68_warninglists_delete_custom.json"),
			view: replay(t, "real/api/26_warninglists_view_custom.json"), wantErr: ErrUnexpectedResponse, wantView: true},
		{name: "confirmation fails", id: "137", del: replay(t, "real/api/68_warninglists_delete_custom.json"),
			view: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized, wantView: true},
		{name: "no perm_warninglist", id: "137", del: answer(403, permissionDenied), wantErr: ErrForbidden},
		{name: "405 (MISP refuses a non-POST delete)", id: "137", del: answer(405, `{"name":"This function can only be reached via AJAX.","message":"This function can only be reached via AJAX.","url":"/warninglists/delete/137"}`), wantErr: ErrNotAllowed},
		{name: "bad id", id: "-1", wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.del != nil {
				f.on("POST", "/warninglists/delete/"+tt.id, tt.del)
			}
			if tt.view != nil {
				f.on("GET", "/warninglists/view/"+tt.id, tt.view)
			}
			c, _ := f.client()
			err := c.DeleteWarninglist(context.Background(), tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := f.count("GET", "/warninglists/view/"+tt.id); (got == 1) != tt.wantView {
				t.Errorf("view called %d times, want called: %v", got, tt.wantView)
			}
			// The 302 points at /warninglists: it must not be followed.
			if n := f.count("GET", "/warninglists"); n != 0 {
				t.Errorf("redirect followed %d times", n)
			}
		})
	}
}

func TestCheckValues(t *testing.T) {
	tests := []struct {
		name     string
		values   []string
		handler  http.HandlerFunc
		want     map[string][]WarninglistHit
		wantBody string
		wantErr  error
	}{
		{name: "hits and misses", values: []string{"10.1.2.3", "evil.example.com", "198.51.100.7", "8.8.8.8", "nothing.invalid"},
			handler: replay(t, "real/api/29_warninglists_checkValue.json"),
			want: map[string][]WarninglistHit{
				"10.1.2.3":         {{ID: "101", Name: "List of RFC 1918 CIDR blocks", Matched: "10.0.0.0/8"}},
				"evil.example.com": {{ID: "137", Name: "Local test list", Matched: "evil.example.com"}},
				"198.51.100.7":     {{ID: "137", Name: "Local test list", Matched: "198.51.100.7"}},
			},
			wantBody: `["10.1.2.3","evil.example.com","198.51.100.7","8.8.8.8","nothing.invalid"]`},
		{name: "nothing matched: []", values: []string{"192.0.2.55"}, handler: replay(t, "real/warninglists_extra/api/22_warninglists_checkValue_after_disable.json"),
			want: map[string][]WarninglistHit{}, wantBody: `["192.0.2.55"]`},
		{name: "PHP list form for keys 0..n-1", values: []string{"0"}, handler: answer(200, `[[{"id":"5","name":"digits","matched":"0"}]]`),
			want: map[string][]WarninglistHit{"0": {{ID: "5", Name: "digits", Matched: "0"}}}},
		{name: "numeric ids", values: []string{"a"}, handler: answer(200, `{"a":[{"id":5,"name":"n","matched":"a"}]}`),
			want: map[string][]WarninglistHit{"a": {{ID: "5", Name: "n", Matched: "a"}}}},
		{name: "no values: no call", values: nil, want: map[string][]WarninglistHit{}},
		{name: "a string instead of hits", values: []string{"a"}, handler: answer(200, `"a"`), wantErr: ErrUnexpectedResponse},
		{name: "bad key", values: []string{"a"}, handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/warninglists/checkValue", tt.handler)
			}
			c, _ := f.client()
			got, err := c.CheckValues(context.Background(), tt.values)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
			if tt.handler == nil && len(f.requests()) != 0 {
				t.Fatal("request sent for no values")
			}
			if tt.wantBody != "" {
				jsonEqual(t, f.last("POST", "/warninglists/checkValue").Body, tt.wantBody)
			}
		})
	}
	t.Run("all list types", func(t *testing.T) {
		f := newFake(t).on("POST", "/warninglists/checkValue", replay(t, "real/warninglists_extra/api/13_warninglists_checkValue_all_types.json"))
		c, _ := f.client()
		got, err := c.CheckValues(context.Background(), []string{"192.0.2.55", "exact-c.example"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 8 || got["EVIL-42.example.net"][0].Matched != `/^evil-[0-9]+\.example\.net$/i` || got["http://sub.example.test/path"][0].ID != "139" {
			t.Errorf("got %v", got)
		}
	})
}

func TestEncodeEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []WarninglistEntry
		want    any
	}{
		{name: "none", entries: nil, want: ""},
		{name: "plain", entries: []WarninglistEntry{{Value: "a"}, {Value: "b", Comment: "c # d"}}, want: "a\nb # c # d"},
		{name: "hash in value", entries: []WarninglistEntry{{Value: "a#b"}}, want: []map[string]string{{"value": "a#b", "comment": ""}}},
		{name: "newline in comment", entries: []WarninglistEntry{{Value: "a", Comment: "x\ny"}}, want: []map[string]string{{"value": "a", "comment": "x\ny"}}},
		{name: "surrounding spaces kept", entries: []WarninglistEntry{{Value: " a"}}, want: []map[string]string{{"value": " a", "comment": ""}}},
		{name: "empty value", entries: []WarninglistEntry{{Value: ""}}, want: []map[string]string{{"value": "", "comment": ""}}},
		{name: "an organisation name with '#' stays in the string form (MISP splits at the first '#')",
			entries: []WarninglistEntry{{Value: "org_uuid:5cf66e53-b5f8-43e7-be9a-49880a3b4631", Comment: "CERT #1"}},
			want:    "org_uuid:5cf66e53-b5f8-43e7-be9a-49880a3b4631 # CERT #1"},
		{name: "quotes, backslashes, control characters and invalid UTF-8 are escaped",
			entries: []WarninglistEntry{{Value: "a", Comment: "q\"b\\\x01\xff é"}}, want: "a # q\"b\\\x01\ufffd é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, want any
			if err := json.Unmarshal(appendEntries(nil, entrySlice(tt.entries)), &got); err != nil {
				t.Fatal(err)
			}
			w, _ := json.Marshal(tt.want)
			_ = json.Unmarshal(w, &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}
