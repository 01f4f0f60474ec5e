package misptest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const authFailed = `{"name":"Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.","message":"Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.","url":"\/servers\/getVersion"}`

func rawRequest(t *testing.T, s *Server, method, path string, header map[string]string, body string) resp {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func TestAuthentication(t *testing.T) {
	s := newTestServer(t, Options{})
	key := s.AdminKey()
	other := s.AddUser(s.HostOrg(), Role{Tagger: true})
	cases := []struct {
		name   string
		header map[string]string
		path   string
		status int
		body   string // exact body when set
		loc    string // Location path for redirects
	}{
		{"raw key in Authorization", map[string]string{"Accept": "application/json", "Authorization": key}, "/servers/getVersion", 200, "", ""},
		{"X-MISP-AUTH", map[string]string{"Accept": "application/json", "X-MISP-AUTH": key}, "/servers/getVersion", 200, "", ""},
		{"second of two comma-separated keys", map[string]string{"Accept": "application/json", "Authorization": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, " + other}, "/servers/getVersion", 200, "", ""},
		{"Bearer prefix is not a key", map[string]string{"Accept": "application/json", "Authorization": "Bearer " + key}, "/servers/getVersion", 403, authFailed, ""},
		{"unknown key", map[string]string{"Accept": "application/json", "Authorization": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "/servers/getVersion", 403, authFailed, ""},
		{"key of 39 characters", map[string]string{"Accept": "application/json", "Authorization": key[:39]}, "/servers/getVersion", 403, authFailed, ""},
		{"Basic credentials are ignored", map[string]string{"Accept": "application/json", "Authorization": "Basic YWRtaW46YWRtaW4="}, "/servers/getVersion", 403, authFailed, ""},
		{"no key", map[string]string{"Accept": "application/json"}, "/servers/getVersion", 403, authFailed, ""},
		{"no Accept: a browser sent to the login page, key or not", map[string]string{"Authorization": key}, "/servers/getVersion", 302, "", "/users/login"},
		{"Accept text/html", map[string]string{"Accept": "text/html", "Authorization": key}, "/events/index", 302, "", "/users/login"},
		{"Accept json second choice", map[string]string{"Accept": "text/html, application/json;q=0.5", "Authorization": key}, "/events/index", 302, "", "/users/login"},
		{".json extension makes it REST", map[string]string{"Authorization": key}, "/servers/getPyMISPVersion.json", 200, `{"version":"2.5.1"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawRequest(t, s, "GET", tc.path, tc.header, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.body != "" && string(r.body) != tc.body {
				t.Errorf("body\n%s\nwant\n%s", r.body, tc.body)
			}
			if tc.loc != "" && r.header.Get("Location") != s.URL()+tc.loc {
				t.Errorf("Location %q, want %q", r.header.Get("Location"), s.URL()+tc.loc)
			}
		})
	}
}

func TestInvalidJSONBodyIs405(t *testing.T) {
	s := newTestServer(t, Options{})
	r := do(t, s, "POST", "/events/index", s.AdminKey(), `{"eventid":`)
	if r.status != 405 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := r.m(t)["message"]; got != "Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON string. This request has been blocked to avoid an unfiltered request." {
		t.Errorf("message %q", got)
	}
	// A bad key is refused before the body is looked at.
	if r := do(t, s, "POST", "/events/index", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", `{"eventid":`); r.status != 403 {
		t.Errorf("bad key with bad JSON: %d", r.status)
	}
}

func TestErrorBodiesAreHTMLEscaped(t *testing.T) {
	s := newTestServer(t, Options{})
	// An error message carrying a quote comes back through CakePHP's h().
	r := do(t, s, "GET", "/servers/getSetting/It's\"bad", s.AdminKey(), nil)
	if r.status != 404 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if want := `"name":"Setting It&#039;s&quot;bad is invalid."`; !strings.Contains(string(r.body), want) {
		t.Errorf("body %s does not contain %s", r.body, want)
	}
}

func TestIdentityEndpoints(t *testing.T) {
	s := newTestServer(t, Options{})
	pub := s.AddUser(s.HostOrg(), Role{Publish: true, Tagger: true})
	partner := s.AddOrg("PARTNER", "")
	outsider := s.AddUser(partner, Role{Tagger: true, Warninglist: true})

	t.Run("getSetting host_org_id is for site admins", func(t *testing.T) {
		r := do(t, s, "GET", "/servers/getSetting/MISP.host_org_id", s.AdminKey(), nil)
		if r.status != 200 || r.m(t)["value"] != jsonNum("1") {
			t.Fatalf("admin: %d %s", r.status, r.body)
		}
		r = do(t, s, "GET", "/servers/getSetting/MISP.host_org_id", pub, nil)
		if r.status != 403 || r.m(t)["message"] != "You do not have permission to use this functionality." {
			t.Fatalf("publisher: %d %s", r.status, r.body)
		}
	})
	t.Run("users/view/me shows role permissions and organisation", func(t *testing.T) {
		for _, tc := range []struct {
			key                    string
			role                   string
			siteAdmin, warninglist bool
			orgUUID                string
		}{
			{s.AdminKey(), "admin", true, true, defaultHostOrgUUID},
			{pub, "Publisher", false, false, defaultHostOrgUUID},
			{outsider, "Custom role 7", false, true, partner.UUID},
		} {
			m := do(t, s, "GET", "/users/view/me", tc.key, nil).m(t)
			role := m["Role"].(map[string]any)
			org := m["Organisation"].(map[string]any)
			if role["name"] != tc.role || role["perm_site_admin"] != tc.siteAdmin || role["perm_warninglist"] != tc.warninglist || org["uuid"] != tc.orgUUID {
				t.Errorf("%s: role %v, org %v", tc.role, role, org["uuid"])
			}
			if us, ok := m["UserSetting"].([]any); !ok || len(us) != 0 {
				t.Errorf("%s: UserSetting %v, want []", tc.role, m["UserSetting"])
			}
		}
	})
	t.Run("getVersion shows the instance uuid to sync users only", func(t *testing.T) {
		if v := do(t, s, "GET", "/servers/getVersion", pub, nil).m(t)["uuid"]; v != "-" {
			t.Errorf("publisher sees uuid %v", v)
		}
		if v := do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil).m(t)["uuid"]; v != s.InstanceUUID() {
			t.Errorf("admin sees uuid %v", v)
		}
	})
	t.Run("describeTypes.json for PyMISP", func(t *testing.T) {
		r := rawRequest(t, s, "GET", "/attributes/describeTypes.json", map[string]string{"Authorization": pub}, "")
		res, ok := r.m(t)["result"].(map[string]any)
		if r.status != 200 || !ok || res["types"] == nil || res["sane_defaults"] == nil || res["category_type_mappings"] == nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("pretty JSON except for PyMISP", func(t *testing.T) {
		r := do(t, s, "GET", "/servers/getVersion", pub, nil)
		if !strings.Contains(string(r.body), "\n    \"version\": \"2.5.1\"") {
			t.Errorf("not pretty-printed: %s", r.body)
		}
		r = rawRequest(t, s, "GET", "/servers/getVersion", map[string]string{"Accept": "application/json", "Authorization": pub, "User-Agent": "PyMISP 2.5.1 - Python 3.11"}, "")
		if strings.Contains(string(r.body), "\n") {
			t.Errorf("pretty-printed for PyMISP: %s", r.body)
		}
	})
}

func jsonNum(s string) any { return jsonNumber(s) }
