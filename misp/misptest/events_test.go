package misptest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// eventsFixture is a host with a trusted partner's events: one with attributes, one without.
type eventsFixture struct {
	s         *Server
	partner   Org
	full      Event // 3 attributes, published, locked
	empty     Event // no attribute
	local     Event // created by the host org, distribution 0
	publisher string
}

func newEventsFixture(t *testing.T, opts Options) eventsFixture {
	s := newTestServer(t, opts)
	f := eventsFixture{s: s, partner: s.AddOrg("PARTNER-HIGH", "1521ae8b-48de-4766-8b2a-fdecef763fa8")}
	f.full = s.SimulatePull(Event{Info: "phishing wave", Orgc: f.partner, Published: true, Attributes: 3,
		Timestamp: time.Unix(1795727847, 0), Tags: []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}})
	f.empty = s.SimulatePull(Event{Info: "empty", Orgc: f.partner, Published: true, Timestamp: time.Unix(1795727900, 0)})
	f.local = s.AddEvent(Event{Info: "our own", Distribution: "0", Attributes: 1, Timestamp: time.Unix(1795727950, 0)})
	f.publisher = s.AddUser(s.HostOrg(), Role{Publish: true, Tagger: true})
	return f
}

func TestEventsIndex(t *testing.T) {
	f := newEventsFixture(t, Options{})
	s, key := f.s, f.s.AdminKey()
	ids := func(r resp) []string {
		var out []string
		for _, e := range r.decode(t).([]any) {
			out = append(out, e.(map[string]any)["id"].(string))
		}
		return out
	}
	cases := []struct {
		name   string
		body   any
		want   []string
		result string
	}{
		{"all events, by id", map[string]any{}, []string{f.full.ID, f.empty.ID, f.local.ID}, "3"},
		{"eventid by uuid", map[string]any{"eventid": f.full.UUID}, []string{f.full.ID}, "1"},
		{"minimal drops an event without attributes", map[string]any{"eventid": f.empty.UUID, "minimal": 1}, nil, "0"},
		{"non-minimal keeps it", map[string]any{"eventid": f.empty.UUID}, []string{f.empty.ID}, "1"},
		{"negated eventid", map[string]any{"eventid": "!" + f.full.ID}, []string{f.empty.ID, f.local.ID}, "2"},
		{"org by creator uuid", map[string]any{"org": f.partner.UUID}, []string{f.full.ID, f.empty.ID}, "2"},
		{"org by name", map[string]any{"org": "partner-high"}, []string{f.full.ID, f.empty.ID}, "2"},
		{"timestamp lower bound", map[string]any{"timestamp": "1795727900"}, []string{f.empty.ID, f.local.ID}, "2"},
		{"timestamp range", map[string]any{"timestamp": []any{"1795727800", "1795727900"}}, []string{f.full.ID, f.empty.ID}, "2"},
		{"unpublished only", map[string]any{"published": 0}, []string{f.local.ID}, "1"},
		{"tag with search prefix", map[string]any{"searchtag": "tlp:green"}, []string{f.full.ID}, "1"},
		{"X-Result-Count counts before limit", map[string]any{"limit": 1, "page": 2}, []string{f.empty.ID}, "3"},
		{"wrapped in request", map[string]any{"request": map[string]any{"eventid": f.local.UUID}}, []string{f.local.ID}, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, s, "POST", "/events/index", key, tc.body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got := ids(r); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
			if got := r.header.Get("X-Result-Count"); got != tc.result {
				t.Errorf("X-Result-Count %q, want %q", got, tc.result)
			}
			if string(r.body) != "[]" && tc.want == nil {
				t.Errorf("empty answer %q, want []", r.body)
			}
		})
	}
	t.Run("named parameters on GET", func(t *testing.T) {
		r := do(t, s, "GET", "/events/index/searchpublished:0", key, nil)
		if got := ids(r); strings.Join(got, ",") != f.local.ID {
			t.Errorf("ids %v", got)
		}
	})
	t.Run("minimal row", func(t *testing.T) {
		r := do(t, s, "POST", "/events/index", key, map[string]any{"eventid": f.full.UUID, "minimal": true})
		want := `[{"id":"1","timestamp":"1795727847","sighting_timestamp":"0","published":true,"uuid":"` + f.full.UUID + `","orgc_uuid":"1521ae8b-48de-4766-8b2a-fdecef763fa8"}]`
		var got any
		json.Unmarshal(r.body, &got)
		b, _ := json.Marshal(got)
		var w any
		json.Unmarshal([]byte(want), &w)
		wb, _ := json.Marshal(w)
		if string(b) != string(wb) {
			t.Errorf("minimal row\n%s\nwant\n%s", b, wb)
		}
	})
}

func TestEventsVisibilityAndView(t *testing.T) {
	f := newEventsFixture(t, Options{})
	s := f.s
	outsider := s.AddUser(f.partner, Role{Tagger: true})
	t.Run("view by id and by uuid", func(t *testing.T) {
		for _, ref := range []string{f.full.ID, f.full.UUID, strings.ToUpper(f.full.UUID)} {
			r := do(t, s, "GET", "/events/view/"+ref, s.AdminKey(), nil)
			if r.status != 200 || r.m(t)["Event"].(map[string]any)["uuid"] != f.full.UUID {
				t.Errorf("%s: %d", ref, r.status)
			}
		}
	})
	t.Run("404 Invalid event", func(t *testing.T) {
		for _, ref := range []string{"999", "not-a-uuid", "00000000-0000-4000-8000-000000000000"} {
			r := do(t, s, "GET", "/events/view/"+ref, s.AdminKey(), nil)
			if r.status != 404 || r.m(t)["message"] != "Invalid event" {
				t.Errorf("%s: %d %s", ref, r.status, r.body)
			}
		}
	})
	t.Run("HEAD answers without a body", func(t *testing.T) {
		if r := rawRequest(t, s, "HEAD", "/events/view/"+f.full.UUID, map[string]string{"Accept": "application/json", "Authorization": s.AdminKey()}, ""); r.status != 200 || len(r.body) != 0 {
			t.Errorf("existing: %d %q", r.status, r.body)
		}
		if r := rawRequest(t, s, "HEAD", "/events/view/999", map[string]string{"Accept": "application/json", "Authorization": s.AdminKey()}, ""); r.status != 404 {
			t.Errorf("missing: %d", r.status)
		}
	})
	t.Run("an org-only event is invisible to another org", func(t *testing.T) {
		if r := do(t, s, "GET", "/events/view/"+f.local.UUID, outsider, nil); r.status != 404 {
			t.Errorf("outsider sees the host's distribution-0 event: %d", r.status)
		}
		r := do(t, s, "POST", "/events/index", outsider, map[string]any{})
		if n := len(r.decode(t).([]any)); n != 2 {
			t.Errorf("outsider's index has %d events, want 2", n)
		}
	})
	t.Run("event_creator_email only for site admins", func(t *testing.T) {
		admin := do(t, s, "GET", "/events/view/"+f.full.UUID, s.AdminKey(), nil).m(t)["Event"].(map[string]any)
		pub := do(t, s, "GET", "/events/view/"+f.full.UUID, f.publisher, nil).m(t)["Event"].(map[string]any)
		if _, ok := admin["event_creator_email"]; !ok {
			t.Error("admin does not see event_creator_email")
		}
		if _, ok := pub["event_creator_email"]; ok {
			t.Error("publisher sees event_creator_email")
		}
	})
	t.Run("Tag key absent without tags", func(t *testing.T) {
		ev := do(t, s, "GET", "/events/view/"+f.local.UUID, s.AdminKey(), nil).m(t)["Event"].(map[string]any)
		if _, ok := ev["Tag"]; ok {
			t.Error("Tag key present on an event without tags")
		}
		if a, ok := ev["Attribute"].([]any); !ok || len(a) != 1 {
			t.Errorf("Attribute %v", ev["Attribute"])
		}
	})
	t.Run("excludeLocalTags", func(t *testing.T) {
		do(t, s, "POST", "/tags/attachTagToObject", s.AdminKey(), map[string]any{"uuid": f.full.UUID, "tag": "tlp:amber", "local": 1})
		all := do(t, s, "GET", "/events/view/"+f.full.UUID, s.AdminKey(), nil).m(t)["Event"].(map[string]any)["Tag"].([]any)
		global := do(t, s, "GET", "/events/view/"+f.full.UUID+"/excludeLocalTags:1", s.AdminKey(), nil).m(t)["Event"].(map[string]any)["Tag"].([]any)
		if len(all) != 3 || len(global) != 2 {
			t.Errorf("tags %d / without local %d, want 3 / 2", len(all), len(global))
		}
	})
}

func TestRestSearch(t *testing.T) {
	f := newEventsFixture(t, Options{})
	s := f.s
	r := do(t, s, "POST", "/events/restSearch", s.AdminKey(), map[string]any{"returnFormat": "json", "org": f.partner.UUID, "metadata": 1})
	if r.status != 200 || !strings.HasPrefix(string(r.body), `{"response": [{"Event":{`) || !strings.HasSuffix(string(r.body), "]}\n") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if r.header.Get("X-Result-Count") != "2" || r.header.Get("Content-Disposition") != `attachment; filename="misp.event.list.json"` {
		t.Errorf("headers %v", r.header)
	}
	ev := r.m(t)["response"].([]any)[0].(map[string]any)["Event"].(map[string]any)
	if _, ok := ev["Attribute"]; ok {
		t.Error("metadata answer carries attributes")
	}
	r = do(t, s, "POST", "/events/restSearch", s.AdminKey(), map[string]any{"eventid": "999"})
	if string(r.body) != "{\"response\": []}\n" {
		t.Errorf("no match: %q", r.body)
	}
}

func TestPublish(t *testing.T) {
	t.Run("a partner's event needs a site admin: 405", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		before := len(f.s.Published())
		for _, ref := range []string{f.empty.ID, f.empty.UUID} {
			r := do(t, f.s, "POST", "/events/publish/"+ref, f.publisher, nil)
			if r.status != 405 || r.m(t)["message"] != "You do not have the permission to do that." {
				t.Errorf("%s: %d %s", ref, r.status, r.body)
			}
		}
		if n := len(f.s.Published()) - before; n != 0 {
			t.Errorf("refused publish published %d messages", n)
		}
	})
	t.Run("the publisher's own org event", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		r := do(t, f.s, "POST", "/events/publish/"+f.local.UUID, f.publisher, nil)
		if r.status != 200 || r.m(t)["message"] != "Event published without alerts" || r.m(t)["id"] != f.local.ID {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("a role without perm_publish: ACL 403", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		tagger := f.s.AddUser(f.s.HostOrg(), Role{Tagger: true})
		if r := do(t, f.s, "POST", "/events/publish/"+f.local.ID, tagger, nil); r.status != 403 {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("synchronous: published at once, misp_json shows the state before", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		before := len(f.s.Published())
		r := do(t, f.s, "POST", "/events/publish/"+f.local.UUID, f.s.AdminKey(), nil)
		if r.status != 200 || r.m(t)["message"] != "Event published without alerts" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		ev, _ := f.s.Event(f.local.UUID)
		if !ev.Published || ev.PublishTimestamp.IsZero() || !ev.Timestamp.Equal(f.local.Timestamp) {
			t.Errorf("after publish: %+v", ev)
		}
		msgs := f.s.Published()[before:]
		if len(msgs) != 1 || msgs[0].Topic != "misp_json" {
			t.Fatalf("messages %v", topics(msgs))
		}
		e := payload(t, msgs[0])["Event"].(map[string]any)
		if e["published"] != false || e["publish_timestamp"] != "0" {
			t.Errorf("misp_json published=%v publish_timestamp=%v, want false, \"0\"", e["published"], e["publish_timestamp"])
		}
		if _, ok := payload(t, msgs[0])["action"]; ok {
			t.Error("misp_json has an action key")
		}
	})
	t.Run("background jobs: Job queued, published a moment later", func(t *testing.T) {
		f := newEventsFixture(t, Options{BackgroundJobs: true, JobDelay: 200 * time.Millisecond})
		before := len(f.s.Published())
		r := do(t, f.s, "POST", "/events/publish/"+f.local.UUID, f.s.AdminKey(), nil)
		if r.status != 200 || r.m(t)["message"] != "Job queued" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if ev, _ := f.s.Event(f.local.UUID); ev.Published {
			t.Error("published before the worker ran")
		}
		eventually(t, "the queued publish", func() bool { ev, _ := f.s.Event(f.local.UUID); return ev.Published })
		if got := topics(f.s.Published()[before:]); strings.Join(got, ",") != "misp_json" {
			t.Errorf("messages %v", got)
		}
		r = do(t, f.s, "POST", "/events/publish/"+f.local.ID+"/disable_background_processing:1", f.s.AdminKey(), nil)
		if r.m(t)["message"] != "Event published without alerts" {
			t.Errorf("disable_background_processing: %s", r.body)
		}
	})
	t.Run("publishing again publishes again", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		before := len(f.s.Published())
		do(t, f.s, "POST", "/events/publish/"+f.full.ID, f.s.AdminKey(), nil)
		msgs := f.s.Published()[before:]
		if len(msgs) != 1 || payload(t, msgs[0])["Event"].(map[string]any)["published"] != true {
			t.Errorf("republish: %v", topics(msgs))
		}
	})
	t.Run("unpublish sends misp_json_event edit and keeps the timestamp", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		before := len(f.s.Published())
		r := do(t, f.s, "POST", "/events/unpublish/"+f.full.ID, f.s.AdminKey(), nil)
		if r.status != 200 || r.m(t)["message"] != "Event unpublished." {
			t.Fatalf("%d %s", r.status, r.body)
		}
		ev, _ := f.s.Event(f.full.UUID)
		if ev.Published || !ev.Timestamp.Equal(f.full.Timestamp) {
			t.Errorf("after unpublish %+v", ev)
		}
		msgs := f.s.Published()[before:]
		if len(msgs) != 1 || payload(t, msgs[0])["action"] != "edit" {
			t.Errorf("messages %v", topics(msgs))
		}
		if r := do(t, f.s, "POST", "/events/unpublish/"+f.full.ID, f.publisher, nil); r.status != 405 {
			t.Errorf("publisher unpublishing a partner event: %d", r.status)
		}
	})
	t.Run("alert is counted as a write on its own route", func(t *testing.T) {
		f := newEventsFixture(t, Options{})
		f.s.ResetStats()
		r := do(t, f.s, "POST", "/events/alert/"+f.local.ID, f.s.AdminKey(), nil)
		if r.m(t)["message"] != "Email sent to all participants." || f.s.Calls("/events/alert") != 1 || f.s.WriteCalls() != 1 {
			t.Errorf("%s; alert calls %d, writes %d", r.body, f.s.Calls("/events/alert"), f.s.WriteCalls())
		}
	})
}
