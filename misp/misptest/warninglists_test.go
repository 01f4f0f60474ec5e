package misptest

import (
	"strings"
	"testing"
)

func addList(t *testing.T, s *Server, key string, body map[string]any) resp {
	t.Helper()
	return do(t, s, "POST", "/warninglists/add", key, body)
}

func TestWarninglistAddValidation(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"name": "org-confidence-level-high", "description": "trusted orgs", "type": "string",
			"category": "known", "matching_attributes": []any{"text"}, "entries": "org_uuid:1 # CIRCL\norg_uuid:2"}
	}
	cases := []struct {
		name   string
		change func(map[string]any)
		wrap   bool
		status int
		errors string // compact JSON of "errors"
	}{
		{"valid, unwrapped", func(map[string]any) {}, false, 200, ""},
		{"valid, wrapped in Warninglist", func(map[string]any) {}, true, 200, ""},
		{"category must be false_positive or known", func(m map[string]any) { m["category"] = "false-positive" }, true, 403, `{"category":["This field cannot be left blank"]}`},
		{"type must be one of the five", func(m map[string]any) { m["type"] = "exact" }, true, 403, `{"type":["This field cannot be left blank"]}`},
		{"empty name", func(m map[string]any) { m["name"] = "" }, true, 403, `{"name":["This field cannot be left blank"]}`},
		{"name of a default list", func(m map[string]any) { m["name"] = "list of rfc 1918 cidr blocks" }, true, 403, `{"name":["Warninglist with same name already exists."]}`},
		{"no entries", func(m map[string]any) { delete(m, "entries") }, true, 403, `{"entries":["Entries cannot be empty."]}`},
		{"blank entries and a bad category", func(m map[string]any) { m["entries"] = " \n "; m["category"] = "x" }, true, 403, `{"category":["This field cannot be left blank"],"entries":["Entries cannot be empty."]}`},
		{"invalid CIDR entries stop validation", func(m map[string]any) {
			m["type"] = "cidr"
			m["entries"] = "10.0.0.0/8\nnot-a-cidr"
			m["category"] = "x"
		}, true, 403, "{\"entries\":[\"`not-a-cidr` is not valid CIDR\"]}"},
		{"invalid regex", func(m map[string]any) { m["type"] = "regex"; m["entries"] = "no-delimiters" }, true, 403, "{\"entries\":[\"`no-delimiters` is not valid regular expression\"]}"},
		{"missing description fails in the database", func(m map[string]any) { delete(m, "description") }, true, 500, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{})
			body := valid()
			tc.change(body)
			var sent any = body
			if tc.wrap {
				sent = map[string]any{"Warninglist": body}
			}
			before := len(s.Published())
			r := do(t, s, "POST", "/warninglists/add", s.AdminKey(), sent)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			switch tc.status {
			case 200:
				w := r.m(t)["Warninglist"].(map[string]any)
				if w["id"] != "137" || w["enabled"] != false || w["default"] != false || w["version"] != "1" {
					t.Errorf("answer %s", r.body)
				}
				if len(s.Published())-before != 1 || payload(t, s.Published()[before])["action"] != "add" {
					t.Error("no misp_json_warninglist add")
				}
			case 403:
				m := r.m(t)
				if m["saved"] != false || m["message"] != "Could not add warninglist" || m["url"] != "/warninglists/add" {
					t.Errorf("save-fail shape %s", r.body)
				}
				if got := string(compactJSON(m["errors"])); got != tc.errors {
					t.Errorf("errors %s, want %s", got, tc.errors)
				}
				if len(s.Published()) != before {
					t.Error("a refused add published something")
				}
			}
		})
	}
}

func TestWarninglistLifecycle(t *testing.T) {
	s := newTestServer(t, Options{})
	key := s.AdminKey()
	r := addList(t, s, key, map[string]any{"Warninglist": map[string]any{"name": "high", "description": "d", "category": "known",
		"entries": []any{"org_uuid:a", map[string]any{"value": "org_uuid:b#not-a-comment", "comment": "B"}}}})
	if r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	w, _ := s.Warninglist("137")
	if w.Enabled || strings.Join(w.MatchingAttributes, ",") != "ALL" || w.Type != "string" || w.Entries[1].Value != "org_uuid:b#not-a-comment" || w.Entries[1].Comment != "B" {
		t.Fatalf("stored %+v", w)
	}

	t.Run("new lists start disabled: checkValue ignores them", func(t *testing.T) {
		if r := do(t, s, "POST", "/warninglists/checkValue", key, []any{"org_uuid:a"}); string(r.body) != "[]" {
			t.Errorf("%s", r.body)
		}
	})
	t.Run("toggleEnable", func(t *testing.T) {
		for _, tc := range []struct {
			body   any
			method string
			want   string
		}{
			{map[string]any{"id": []any{"137"}, "enabled": true}, "POST", `{"saved":true,"success":"1 warninglist(s) enabled"}`},
			{map[string]any{"id": 999, "enabled": 1}, "POST", `{"saved":false,"errors":"Warninglist(s) not found."}`},
			{map[string]any{"enabled": 1}, "POST", `{"saved":false,"errors":"Warninglist not found."}`},
			{nil, "GET", `{"saved":false,"errors":"This function only accepts POST requests."}`},
			{map[string]any{"name": []any{"%rfc%"}}, "POST", `{"saved":true,"success":"5 warninglist(s) toggled"}`},
			{map[string]any{"name": "%RFC%"}, "POST", `{"saved":true,"success":"5 warninglist(s) toggled"}`},
			{map[string]any{"Warninglist": map[string]any{"data": "137"}, "enabled": 0}, "POST", `{"saved":true,"success":"1 warninglist(s) disabled"}`},
			{map[string]any{"id": "137", "enabled": "1"}, "POST", `{"saved":true,"success":"1 warninglist(s) enabled"}`},
		} {
			r := do(t, s, tc.method, "/warninglists/toggleEnable", key, tc.body)
			if r.status != 200 || string(r.body) != tc.want {
				t.Errorf("%v: %d %s, want %s", tc.body, r.status, r.body, tc.want)
			}
		}
	})
	t.Run("checkValue input forms and answers", func(t *testing.T) {
		for _, tc := range []struct {
			body any
			want string
		}{
			{[]any{"org_uuid:a", "nothing"}, `{"org_uuid:a":[{"id":"137","name":"high","matched":"org_uuid:a"}]}`},
			{map[string]any{"Warninglist": []any{" org_uuid:a "}}, `{"org_uuid:a":[{"id":"137","name":"high","matched":"org_uuid:a"}]}`},
			{`"org_uuid:a"`, `{"org_uuid:a":[{"id":"137","name":"high","matched":"org_uuid:a"}]}`},
			{[]any{"nothing"}, `[]`},
			{[]any{"org_uuid:a", "org_uuid:a"}, `{"org_uuid:a":[{"id":"137","name":"high","matched":"org_uuid:a"},{"id":"137","name":"high","matched":"org_uuid:a"}]}`},
		} {
			r := do(t, s, "POST", "/warninglists/checkValue", key, tc.body)
			if got := compactBody(t, r.body); r.status != 200 || got != tc.want {
				t.Errorf("%v: %d %s, want %s", tc.body, r.status, got, tc.want)
			}
		}
		if r := do(t, s, "POST", "/warninglists/checkValue", key, []any{}); r.status != 404 || r.m(t)["message"] != "No valid data received." {
			t.Errorf("empty list: %d %s", r.status, r.body)
		}
	})
	t.Run("PHP turns keys 0..n-1 into a JSON list", func(t *testing.T) {
		do(t, s, "POST", "/warninglists/edit/137", key, map[string]any{"entries": "0\n1"})
		r := do(t, s, "POST", "/warninglists/checkValue", key, []any{"0", "1"})
		if got := compactBody(t, r.body); got != `[[{"id":"137","name":"high","matched":"0"}],[{"id":"137","name":"high","matched":"1"}]]` {
			t.Errorf("%s", got)
		}
	})
	t.Run("edit: custom lists only, version +1, enabled ignored", func(t *testing.T) {
		before, _ := s.Warninglist("137")
		r := do(t, s, "POST", "/warninglists/edit/137", key, map[string]any{"Warninglist": map[string]any{
			"entries": "org_uuid:c # C", "enabled": false, "matching_attributes": []any{"text", "comment"}}})
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		m := r.m(t)
		if v := m["Warninglist"].(map[string]any)["version"]; v != jsonNumber(itoa(before.Version+1)) {
			t.Errorf("version %v (a JSON number in edit answers), before %d", v, before.Version)
		}
		after, _ := s.Warninglist("137")
		if !after.Enabled || after.Version != before.Version+1 || len(after.Entries) != 1 || after.Entries[0].Comment != "C" ||
			strings.Join(after.MatchingAttributes, ",") != "text,comment" {
			t.Errorf("after edit %+v", after)
		}
		if r := do(t, s, "POST", "/warninglists/edit/101", key, map[string]any{"entries": "x"}); r.status != 404 || r.m(t)["message"] != "Invalid Warninglist." {
			t.Errorf("default list: %d %s", r.status, r.body)
		}
		r = do(t, s, "POST", "/warninglists/edit/137", key, map[string]any{"name": "List of RFC 1918 CIDR blocks"})
		if r.status != 403 || r.m(t)["message"] != "Could not edit warninglist" || r.m(t)["url"] != "/warninglists/edit/137" {
			t.Errorf("name conflict: %d %s", r.status, r.body)
		}
	})
	t.Run("view", func(t *testing.T) {
		if r := do(t, s, "GET", "/warninglists/view/abc", key, nil); r.status != 404 || r.m(t)["message"] != "Invalid ID." {
			t.Errorf("%d %s", r.status, r.body)
		}
		if r := do(t, s, "GET", "/warninglists/view/999", key, nil); r.status != 404 || r.m(t)["message"] != "Warninglist not found." {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("delete answers 302 whatever happened and leaves a stale cache", func(t *testing.T) {
		for _, id := range []string{"137", "99999"} {
			r := do(t, s, "POST", "/warninglists/delete/"+id, key, map[string]any{})
			if r.status != 302 || r.header.Get("Location") != s.URL()+"/warninglists" || len(r.body) != 0 {
				t.Errorf("%s: %d %v %q", id, r.status, r.header, r.body)
			}
		}
		if r := do(t, s, "GET", "/warninglists/view/137", key, nil); r.status != 404 {
			t.Errorf("view after delete: %d", r.status)
		}
		r := do(t, s, "POST", "/warninglists/checkValue", key, []any{"org_uuid:c"})
		if !strings.Contains(string(r.body), `"137"`) {
			t.Errorf("the stale cache should still match the deleted list: %s", r.body)
		}
		do(t, s, "POST", "/warninglists/toggleEnable", key, map[string]any{"id": "101", "enabled": 1}) // rebuilds the cache
		if r := do(t, s, "POST", "/warninglists/checkValue", key, []any{"org_uuid:c"}); string(r.body) != "[]" {
			t.Errorf("after a rebuild: %s", r.body)
		}
		if r := do(t, s, "GET", "/warninglists/delete/101", key, nil); r.status != 405 {
			t.Errorf("GET delete: %d", r.status)
		}
	})
}

func TestWarninglistPermissionsAndIndex(t *testing.T) {
	s := newTestServer(t, Options{})
	pub := s.AddUser(s.HostOrg(), Role{Publish: true, Tagger: true})
	if r := addList(t, s, pub, map[string]any{"name": "x", "description": "d", "entries": "a"}); r.status != 403 || r.m(t)["message"] != "You do not have permission to use this functionality." {
		t.Errorf("add without perm_warninglist: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		path string
		body any
		ids  string
	}{
		{"/warninglists/index", nil, "105,104,103,102,101"},
		{"/warninglists/index", map[string]any{"value": "6598"}, "104"},
		{"/warninglists/index", map[string]any{"value": "rfc1918"}, ""},
		{"/warninglists/index", map[string]any{"value": "cidr"}, "104,103,102,101"},
		{"/warninglists/index/enabled:1", nil, ""},
		{"/warninglists/index/enabled:0", nil, "105,104,103,102,101"},
	} {
		r := do(t, s, "GET", tc.path, pub, nil)
		if tc.body != nil {
			r = do(t, s, "POST", tc.path, pub, tc.body)
		}
		var ids []string
		for _, w := range r.m(t)["Warninglists"].([]any) {
			ids = append(ids, w.(map[string]any)["Warninglist"].(map[string]any)["id"].(string))
		}
		if got := strings.Join(ids, ","); got != tc.ids {
			t.Errorf("%s %v: %s, want %s", tc.path, tc.body, got, tc.ids)
		}
	}
}

func TestWarninglistMatching(t *testing.T) {
	cases := []struct {
		typ     string
		entries []string
		value   string
		matched string // "" = no match
	}{
		{"cidr", []string{"192.0.2.0/24"}, "192.0.2.55", "192.0.2.0/24"},
		{"cidr", []string{"8.8.8.8"}, "8.8.8.8", "8.8.8.8/32"},
		{"cidr", []string{"2001:db8::/32"}, "2001:db8::1", "2001:db8::/32"},
		{"cidr", []string{"10.0.0.0/8"}, "not-an-ip", ""},
		{"hostname", []string{"Example.TEST."}, "www.example.test", "example.test"},
		{"hostname", []string{"example.test"}, "http://sub.example.test/path", "example.test"},
		{"hostname", []string{"example.test"}, "WWW.EXAMPLE.TEST", ""}, // values are not lower-cased
		{"hostname", []string{"example.test"}, "example.test:8080", ""},
		{"string", []string{"exact-a.example"}, "exact-a.example", "exact-a.example"},
		{"string", []string{"exact-a.example"}, "Exact-a.example", ""},
		{"substring", []string{"badword"}, "xxbadwordxx", "badword"},
		{"regex", []string{`/^evil-[0-9]+\.example\.net$/i`}, "EVIL-42.example.net", `/^evil-[0-9]+\.example\.net$/i`},
		{"regex", []string{`#^a+$#`}, "aaa", `#^a+$#`},
	}
	for _, tc := range cases {
		t.Run(tc.typ+" "+tc.value, func(t *testing.T) {
			c := cachedWL{typ: tc.typ}
			for _, e := range tc.entries {
				c.entries = append(c.entries, wlEntryRec{value: e})
			}
			m, ok := c.match(tc.value)
			if ok != (tc.matched != "") || m != tc.matched {
				t.Errorf("match %q %v, want %q", m, ok, tc.matched)
			}
		})
	}
}

func TestWarninglistUIDrift(t *testing.T) {
	s := newTestServer(t, Options{})
	w := s.AddWarninglist(WL{Name: "high", Description: "d", Type: "string", Category: "known", Entries: []WLEntry{{Value: "a"}}})
	before := len(s.Published())
	s.EditWarninglistUI(w.ID, func(w *WL) { w.Enabled = true })
	s.EditWarninglistUI(w.ID, func(w *WL) { w.Entries = append(w.Entries, WLEntry{Value: "b", Comment: "added by hand"}) })
	got, _ := s.Warninglist(w.ID)
	if !got.Enabled || got.Version != 2 || len(got.Entries) != 2 {
		t.Errorf("after UI edits %+v (enabling alone does not bump the version)", got)
	}
	if n := len(s.Published()) - before; n != 2 {
		t.Errorf("%d messages, want 2 misp_json_warninglist edit", n)
	}
	r := do(t, s, "POST", "/warninglists/checkValue", s.AdminKey(), []any{"b"})
	if !strings.Contains(compactBody(t, r.body), `"matched":"b"`) {
		t.Errorf("UI edit not in the cache: %s", r.body)
	}
	s.DeleteWarninglistUI(w.ID)
	if _, ok := s.WarninglistByName("high"); ok {
		t.Error("still there after DeleteWarninglistUI")
	}
	if r := do(t, s, "POST", "/warninglists/checkValue", s.AdminKey(), []any{"b"}); !strings.Contains(compactBody(t, r.body), `"matched":"b"`) {
		t.Errorf("UI delete rebuilt the cache: %s", r.body)
	}
}
