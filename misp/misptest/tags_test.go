package misptest

import (
	"strings"
	"testing"
	"time"
)

// tagFixture: a partner's pulled event, an admin, a host-org publisher, a partner-org user.
type tagFixture struct {
	s                    *Server
	ev                   Event
	admin, pub, outsider string
	tagEditor            string
}

func newTagFixture(t *testing.T) tagFixture {
	s := newTestServer(t, Options{})
	partner := s.AddOrg("PARTNER-HIGH", "1521ae8b-48de-4766-8b2a-fdecef763fa8")
	f := tagFixture{s: s, admin: s.AdminKey()}
	f.ev = s.SimulatePull(Event{Info: "pulled", Orgc: partner, Published: true, Attributes: 2,
		Timestamp: time.Unix(1795727847, 0), Tags: []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}})
	f.pub = s.AddUser(s.HostOrg(), Role{Publish: true, Tagger: true})
	f.outsider = s.AddUser(partner, Role{Publish: true, Tagger: true, TagEditor: true})
	f.tagEditor = s.AddUser(s.HostOrg(), Role{Tagger: true, TagEditor: true})
	return f
}

func (f tagFixture) attach(t *testing.T, key string, body map[string]any) resp {
	t.Helper()
	if _, ok := body["uuid"]; !ok {
		body["uuid"] = f.ev.UUID
	}
	return do(t, f.s, "POST", "/tags/attachTagToObject", key, body)
}

func (f tagFixture) state(t *testing.T) Event {
	t.Helper()
	ev, ok := f.s.Event(f.ev.UUID)
	if !ok {
		t.Fatal("event gone")
	}
	return ev
}

func tagNames(e Event) string {
	var out []string
	for _, tg := range e.Tags {
		n := tg.Name
		if tg.Local {
			n += "(local)"
		}
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}

func TestAttachTagToObject(t *testing.T) {
	cases := []struct {
		name    string
		key     func(tagFixture) string
		body    map[string]any
		status  int
		message string // name/message of the answer
		errors  string // errors of a save-fail answer
		tags    string // the event's tags afterwards
		unpub   bool   // the event was unpublished and its timestamp bumped
		topics  string
	}{
		{name: "local tag by the host org's publisher keeps published and timestamp",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": `admiralty-scale:source-reliability="a"`, "local": 1},
			status: 200, message: `Local tag admiralty-scale:source-reliability="a"(1) successfully attached to Event(1).`,
			tags: `tlp:green, workflow:state="incomplete", admiralty-scale:source-reliability="a"(local)`, topics: "misp_json_tag"},
		{name: "several local tags in one call",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": []any{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, "local": true},
			status: 200, message: "Successfully attached 2 tags to Event (1)",
			tags: `tlp:green, workflow:state="incomplete", admiralty-scale:source-reliability="a"(local), workflow:state="complete"(local)`, topics: "misp_json_tag,misp_json_tag"},
		{name: `"local": "0" is a global tag (PHP empty)`,
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"tag": "tlp:amber", "local": "0"},
			status: 200, message: "Global tag tlp:amber(48) successfully attached to Event(1).",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber`, unpub: true, topics: "misp_json_tag"},
		{name: `"local": "false" is a LOCAL tag (a non-empty string)`,
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"tag": "tlp:amber", "local": "false"},
			status: 200, message: "Local tag tlp:amber(48) successfully attached to Event(1).",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber(local)`, topics: "misp_json_tag"},
		{name: "global tag on a partner's event by a non-admin",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": `workflow:state="complete"`, "local": 0},
			status: 403, message: "Cannot alter the tags of this data, only the organisation that has created the data (orgc) can modify global tags.",
			tags: `tlp:green, workflow:state="incomplete"`},
		{name: "global tag on a partner's event by the site admin unpublishes it",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"tag": "tlp:amber"},
			status: 200, message: "Global tag tlp:amber(48) successfully attached to Event(1).",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber`, unpub: true, topics: "misp_json_tag"},
		{name: "local tag by a user outside the host org",
			key: func(f tagFixture) string { return f.outsider }, body: map[string]any{"tag": "tlp:amber", "local": 1},
			status: 403, message: "Could not attachTagToObject Tag",
			errors: `Failed to attach 1 tags. Reasons: {"0":"Local tags can only be added by users of the host organisation."}`,
			tags:   `tlp:green, workflow:state="incomplete"`},
		{name: "already attached globally, asked locally: success, locality unchanged",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"tag": "tlp:green", "local": 1},
			status: 200, message: "Event already has the requested tag attached, no changes had to be made for tag tlp:green.",
			tags: `tlp:green, workflow:state="incomplete"`},
		{name: "unknown numeric id",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"tag": 999999, "local": 1},
			status: 403, message: "Could not attachTagToObject Tag", errors: `Failed to attach 1 tags. Reasons: {"0":"Invalid Tag."}`,
			tags: `tlp:green, workflow:state="incomplete"`},
		{name: "unknown name is created by a tag editor",
			key: func(f tagFixture) string { return f.tagEditor }, body: map[string]any{"tag": "curation:new", "local": 1},
			status: 200, message: "Local tag curation:new(55) successfully attached to Event(1).",
			tags: `tlp:green, workflow:state="incomplete", curation:new(local)`, topics: "misp_json_tag,misp_json_tag"},
		{name: "unknown name without perm_tag_editor",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": "curation:new", "local": 1},
			status: 403, message: "Could not attachTagToObject Tag",
			errors: `Failed to attach 1 tags. Reasons: {"0":"Tag not found and insufficient privileges to create it."}`,
			tags:   `tlp:green, workflow:state="incomplete"`},
		{name: "name matching is case-insensitive LIKE",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": "TLP:AMB%", "local": 1},
			status: 200, message: "Local tag tlp:amber(48) successfully attached to Event(1).",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber(local)`, topics: "misp_json_tag"},
		{name: "one success, one failure",
			key: func(f tagFixture) string { return f.pub }, body: map[string]any{"tag": []any{"tlp:amber", 999999}, "local": 1},
			status: 200, message: "Local tag tlp:amber(48) successfully attached to Event(1).\nFailed to attach 1 tags. Reasons: {\"0\":\"Invalid Tag.\"}",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber(local)`, topics: "misp_json_tag"},
		{name: "unknown target",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"uuid": "00000000-0000-4000-8000-000000000000", "tag": "tlp:amber", "local": 1},
			status: 404, message: "Invalid Target.", tags: `tlp:green, workflow:state="incomplete"`},
		{name: "malformed uuid: InvalidArgumentException, 500",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"uuid": "1", "tag": "tlp:amber", "local": 1},
			status: 500, message: "An Internal Error Has Occurred.", tags: `tlp:green, workflow:state="incomplete"`},
		{name: "missing uuid",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"uuid": "", "tag": "tlp:amber"},
			status: 405, message: "Invalid object uuid", tags: `tlp:green, workflow:state="incomplete"`},
		{name: "missing tag",
			key: func(f tagFixture) string { return f.admin }, body: map[string]any{"local": 1},
			status: 405, message: "Invalid tag", tags: `tlp:green, workflow:state="incomplete"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTagFixture(t)
			before := len(f.s.Published())
			r := f.attach(t, tc.key(f), tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.m(t)
			if m["message"] != tc.message || m["name"] != tc.message {
				t.Errorf("message %q, want %q", m["message"], tc.message)
			}
			if tc.errors != "" && m["errors"] != tc.errors {
				t.Errorf("errors %q, want %q", m["errors"], tc.errors)
			}
			if tc.status == 200 && (m["saved"] != true || m["success"] != true || m["url"] != "/tags/attachTagToObject") {
				t.Errorf("save-success shape: %s", r.body)
			}
			ev := f.state(t)
			if got := tagNames(ev); got != tc.tags {
				t.Errorf("tags %s, want %s", got, tc.tags)
			}
			if unpub := !ev.Published && ev.Timestamp.After(f.ev.Timestamp); unpub != tc.unpub {
				t.Errorf("unpublished+bumped %v (published %v, timestamp %v → %v), want %v", unpub, ev.Published, f.ev.Timestamp, ev.Timestamp, tc.unpub)
			}
			if got := strings.Join(topics(f.s.Published()[before:]), ","); got != tc.topics {
				t.Errorf("ZeroMQ %q, want %q", got, tc.topics)
			}
		})
	}
}

func TestAttachTagMessages(t *testing.T) {
	f := newTagFixture(t)
	before := len(f.s.Published())
	f.attach(t, f.tagEditor, map[string]any{"tag": "curation:new", "local": 1})
	msgs := f.s.Published()[before:]
	add, attached := payload(t, msgs[0]), payload(t, msgs[1])
	if add["action"] != "add" || attached["action"] != "attached to event" {
		t.Fatalf("actions %v, %v", add["action"], attached["action"])
	}
	tag := attached["Tag"].(map[string]any)
	if tag["event_id"] != f.ev.ID || tag["local"] != true || tag["name"] != "curation:new" {
		t.Errorf("attached %v", tag)
	}
	if _, ok := add["Tag"].(map[string]any)["event_id"]; ok {
		t.Error("tag add message carries event_id")
	}
}

func TestRemoveTagFromObject(t *testing.T) {
	cases := []struct {
		name    string
		prep    func(t *testing.T, f tagFixture)
		key     func(tagFixture) string
		tag     any
		status  int
		message string
		tags    string
		unpub   bool
		topics  string
	}{
		{name: "global tag by the site admin unpublishes and bumps the timestamp",
			key: func(f tagFixture) string { return f.admin }, tag: `workflow:state="incomplete"`,
			status: 200, message: `Global tag workflow:state="incomplete" (41) successfully removed from Event(1).`,
			tags: "tlp:green", unpub: true, topics: "misp_json_tag"},
		{name: "global tag of a partner's event by a non-admin: 403, nothing published",
			key: func(f tagFixture) string { return f.pub }, tag: `workflow:state="incomplete"`,
			status: 403, message: "Cannot alter the tags of this data, only the organisation that has created the data (orgc) can modify global tags.",
			tags: `tlp:green, workflow:state="incomplete"`},
		{name: "tag not attached: 404 (nothing removed, nothing unpublished)",
			key: func(f tagFixture) string { return f.admin }, tag: `workflow:state="complete"`,
			status: 404, message: "Could not remove tag as it is not attached to the target Event",
			tags: `tlp:green, workflow:state="incomplete"`},
		{name: "unknown tag name: 405",
			key: func(f tagFixture) string { return f.admin }, tag: "no-such:tag",
			status: 405, message: "Invalid Tag.", tags: `tlp:green, workflow:state="incomplete"`},
		{name: "local tag by the host org's publisher keeps published",
			prep: func(t *testing.T, f tagFixture) {
				f.attach(t, f.pub, map[string]any{"tag": "tlp:amber", "local": 1})
			},
			key: func(f tagFixture) string { return f.pub }, tag: "48",
			status: 200, message: "Local tag tlp:amber (48) successfully removed from Event(1).",
			tags: `tlp:green, workflow:state="incomplete"`, topics: "misp_json_tag"},
		{name: "local tag by a user outside the host org",
			prep: func(t *testing.T, f tagFixture) {
				f.attach(t, f.pub, map[string]any{"tag": "tlp:amber", "local": 1})
			},
			key: func(f tagFixture) string { return f.outsider }, tag: "tlp:amber",
			status: 403, message: "Insufficient privileges to remove local tags from events you do not own.",
			tags: `tlp:green, workflow:state="incomplete", tlp:amber(local)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTagFixture(t)
			if tc.prep != nil {
				tc.prep(t, f)
			}
			before := len(f.s.Published())
			r := do(t, f.s, "POST", "/tags/removeTagFromObject", tc.key(f), map[string]any{"uuid": f.ev.UUID, "tag": tc.tag})
			if r.status != tc.status || r.m(t)["message"] != tc.message {
				t.Fatalf("%d %s, want %d %q", r.status, r.body, tc.status, tc.message)
			}
			ev := f.state(t)
			if got := tagNames(ev); got != tc.tags {
				t.Errorf("tags %s, want %s", got, tc.tags)
			}
			if unpub := !ev.Published && ev.Timestamp.After(f.ev.Timestamp); unpub != tc.unpub {
				t.Errorf("unpublished+bumped %v, want %v", unpub, tc.unpub)
			}
			msgs := f.s.Published()[before:]
			if got := strings.Join(topics(msgs), ","); got != tc.topics {
				t.Errorf("ZeroMQ %q, want %q", got, tc.topics)
			}
			for _, m := range msgs {
				p := payload(t, m)
				if _, ok := p["Tag"].(map[string]any)["local"]; ok || p["action"] != "detached from event" {
					t.Errorf("detach message %s", m.Payload)
				}
			}
		})
	}
	t.Run("GET is refused", func(t *testing.T) {
		f := newTagFixture(t)
		if r := do(t, f.s, "GET", "/tags/removeTagFromObject", f.admin, nil); r.status != 405 {
			t.Errorf("%d", r.status)
		}
	})
}

func TestTagsOnAttributes(t *testing.T) {
	f := newTagFixture(t)
	f.s.mu.Lock()
	attr := f.s.eventByUUID(f.ev.UUID).attrs[0]
	f.s.mu.Unlock()
	before := len(f.s.Published())
	r := f.attach(t, f.admin, map[string]any{"uuid": attr.uuid, "tag": `admiralty-scale:information-credibility="2"`})
	if r.status != 200 || r.m(t)["message"] != `Global tag admiralty-scale:information-credibility="2"(9) successfully attached to Attribute(1).` {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := strings.Join(topics(f.s.Published()[before:]), ","); got != "misp_json_tag,misp_json_attribute" {
		t.Errorf("messages %s", got)
	}
	view := do(t, f.s, "GET", "/events/view/"+f.ev.UUID, f.admin, nil).m(t)["Event"].(map[string]any)
	a := view["Attribute"].([]any)[0].(map[string]any)
	if tags, ok := a["Tag"].([]any); !ok || len(tags) != 1 {
		t.Errorf("attribute Tag %v", a["Tag"])
	}
	r = do(t, f.s, "POST", "/tags/removeTagFromObject", f.admin, map[string]any{"uuid": attr.uuid, "tag": "9"})
	if r.status != 200 || r.m(t)["message"] != `Global tag admiralty-scale:information-credibility="2" (9) successfully removed from Attribute(1).` {
		t.Errorf("%d %s", r.status, r.body)
	}
}
