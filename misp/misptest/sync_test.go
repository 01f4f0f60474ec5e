package misptest

import (
	"strings"
	"testing"
	"time"
)

func actions(t *testing.T, msgs []Message) string {
	var out []string
	for _, m := range msgs {
		p := payload(t, m)
		a, _ := p["action"].(string)
		out = append(out, m.Topic+":"+a)
	}
	return strings.Join(out, " ")
}

func TestSimulatePull(t *testing.T) {
	t.Run("new creator org is announced first, local tags stay behind", func(t *testing.T) {
		s := newTestServer(t, Options{})
		ev := s.SimulatePull(Event{Orgc: Org{Name: "PARTNER-SUB", UUID: "ae01a99a-c08b-4ac3-9e55-69166dad84e9"}, Published: true, Attributes: 1,
			Tags: []EventTag{{Name: "tlp:green"}, {Name: `admiralty-scale:source-reliability="c"`, Local: true}}})
		msgs := s.Published()
		want := "misp_json_organisation: misp_json_event:add misp_json_tag:attached to event misp_json_attribute:add misp_json: misp_json_event:add_from_connected_server"
		if got := actions(t, msgs); got != want {
			t.Fatalf("sequence\n%s\nwant\n%s", got, want)
		}
		org := payload(t, msgs[0])["Orgc"].(map[string]any)
		if org["local"] != jsonNumber("0") || org["uuid"] != "ae01a99a-c08b-4ac3-9e55-69166dad84e9" {
			t.Errorf("organisation message %v", org)
		}
		row := payload(t, msgs[1])
		e := row["Event"].(map[string]any)
		if e["locked"] != true || e["published"] != true || e["attribute_count"] != "0" || e["publish_timestamp"] != "0" || len(row["EventTag"].([]any)) != 0 {
			t.Errorf("add row %s", msgs[1].Payload)
		}
		pub := payload(t, msgs[4])["Event"].(map[string]any)
		if pub["published"] != true || pub["publish_timestamp"] != "0" || pub["attribute_count"] != "1" {
			t.Errorf("misp_json %v %v %v", pub["published"], pub["publish_timestamp"], pub["attribute_count"])
		}
		last := payload(t, msgs[5])
		if last["Event"] != ev.UUID || last["Server"] != "1" {
			t.Errorf("from_connected_server %s", msgs[5].Payload)
		}
		if got := tagNames(ev); got != "tlp:green" || !ev.Locked || !ev.Published || ev.PublishTimestamp.IsZero() || ev.Org.ID != "1" {
			t.Errorf("state %+v", ev)
		}
	})
	t.Run("a known creator org is not announced again", func(t *testing.T) {
		s := newTestServer(t, Options{})
		p := s.AddOrg("PARTNER", "")
		s.SimulatePull(Event{Orgc: p, Published: true})
		if got := topics(s.Published()); got[0] != "misp_json_event" {
			t.Errorf("sequence %v", got)
		}
	})
	t.Run("by id: Event is the partner's id as a JSON integer", func(t *testing.T) {
		s := newTestServer(t, Options{})
		s.SimulatePullByID(Event{Orgc: s.AddOrg("P", ""), Published: true}, 4711)
		msgs := s.Published()
		last := msgs[len(msgs)-1]
		if !strings.HasSuffix(string(last.Frame()), `{"Event":4711,"Server":"1","action":"add_from_connected_server"}`) {
			t.Errorf("frame %s", last.Frame())
		}
	})
	t.Run("an unpublished event stays unpublished: no misp_json", func(t *testing.T) {
		s := newTestServer(t, Options{})
		ev := s.SimulatePull(Event{Orgc: s.AddOrg("P", ""), Published: false, Attributes: 1})
		if got := actions(t, s.Published()); got != "misp_json_event:add misp_json_attribute:add misp_json_event:add_from_connected_server" {
			t.Errorf("sequence %s", got)
		}
		if ev.Published || !ev.PublishTimestamp.IsZero() {
			t.Errorf("state %+v", ev)
		}
	})
}

func TestSimulatePullEdit(t *testing.T) {
	setup := func(t *testing.T) (*Server, Event) {
		s := newTestServer(t, Options{})
		ev := s.SimulatePull(Event{Orgc: s.AddOrg("P", ""), Published: true, Attributes: 2, Timestamp: time.Unix(1795727847, 0),
			Tags: []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}})
		return s, ev
	}
	t.Run("edit sequence with the tags the event had before", func(t *testing.T) {
		s, ev := setup(t)
		do(t, s, "POST", "/tags/attachTagToObject", s.AdminKey(), map[string]any{"uuid": ev.UUID, "tag": `admiralty-scale:source-reliability="a"`, "local": 1})
		before := len(s.Published())
		after := s.SimulatePullEdit(ev.UUID, func(e *Event) { e.Attributes++ })
		msgs := s.Published()[before:]
		if got := actions(t, msgs); got != "misp_json_event:edit misp_json_attribute:add misp_json: misp_json_event:edit_from_connected_server" {
			t.Fatalf("sequence %s", got)
		}
		if n := len(payload(t, msgs[0])["EventTag"].([]any)); n != 3 {
			t.Errorf("edit row has %d EventTag, want 3 (local one included)", n)
		}
		if after.Attributes != 3 || !after.Timestamp.After(ev.Timestamp) || tagNames(after) != `tlp:green, workflow:state="incomplete", admiralty-scale:source-reliability="a"(local)` {
			t.Errorf("state %+v", after)
		}
	})
	t.Run("a removed global tag comes back, local tags survive", func(t *testing.T) {
		s, ev := setup(t)
		key := s.AdminKey()
		do(t, s, "POST", "/tags/attachTagToObject", key, map[string]any{"uuid": ev.UUID, "tag": `workflow:state="complete"`, "local": 1})
		do(t, s, "POST", "/tags/removeTagFromObject", key, map[string]any{"uuid": ev.UUID, "tag": `workflow:state="incomplete"`})
		before := len(s.Published())
		after := s.SimulatePullEdit(ev.UUID, func(e *Event) { e.Attributes++ })
		if got := actions(t, s.Published()[before:]); got != "misp_json_event:edit misp_json_attribute:add misp_json_tag:attached to event misp_json: misp_json_event:edit_from_connected_server" {
			t.Errorf("sequence %s", got)
		}
		if got := tagNames(after); got != `tlp:green, workflow:state="complete"(local), workflow:state="incomplete"` || !after.Published {
			t.Errorf("state %s published=%v", got, after.Published)
		}
	})
	t.Run("a partner version not newer than our copy is skipped", func(t *testing.T) {
		s, ev := setup(t)
		do(t, s, "POST", "/tags/removeTagFromObject", s.AdminKey(), map[string]any{"uuid": ev.UUID, "tag": "tlp:green"})
		bumped, _ := s.Event(ev.UUID)
		before := len(s.Published())
		// The partner edited before our global tag removal bumped the timestamp.
		after := s.SimulatePullEdit(ev.UUID, func(e *Event) { e.Attributes++; e.Timestamp = bumped.Timestamp.Add(-time.Second) })
		if n := len(s.Published()) - before; n != 0 || after.Attributes != 2 || after.Published {
			t.Errorf("skipped pull changed something: %d messages, %+v", n, after)
		}
	})
	t.Run("soft-delete, edit and add, in the partner's attribute order", func(t *testing.T) {
		s, ev := setup(t)
		before := len(s.Published())
		after := s.SimulatePullEdit(ev.UUID, func(e *Event) { e.EditedAttributes = 1; e.SoftDeletedAttributes = 1 })
		if got := actions(t, s.Published()[before:]); got != "misp_json_event:edit misp_json_attribute:edit misp_json_attribute:soft-delete misp_json_attribute:add misp_json: misp_json_event:edit_from_connected_server" {
			t.Errorf("sequence %s", got)
		}
		if after.Attributes != 2 {
			t.Errorf("%d attributes after, want 2", after.Attributes)
		}
	})
	t.Run("SimulatePull of a known uuid is an edit", func(t *testing.T) {
		s, ev := setup(t)
		before := len(s.Published())
		s.SimulatePull(Event{UUID: ev.UUID, Orgc: ev.Orgc, Published: true, Attributes: 3, Tags: []EventTag{{Name: "tlp:green"}}})
		if got := actions(t, s.Published()[before:]); !strings.HasPrefix(got, "misp_json_event:edit ") || !strings.HasSuffix(got, "edit_from_connected_server") {
			t.Errorf("sequence %s", got)
		}
	})
}

func TestSimulatePush(t *testing.T) {
	s := newTestServer(t, Options{})
	p := s.AddOrg("PARTNER-HIGH", "")
	ev := s.SimulatePush(Event{Orgc: p, Published: true, Attributes: 1, Tags: []EventTag{{Name: "tlp:green"}}})
	if got := actions(t, s.Published()); got != "misp_json_event:add misp_json_tag:attached to event misp_json_attribute:add misp_json:" {
		t.Errorf("push-new %s", got)
	}
	row := payload(t, s.Published()[0])["Event"].(map[string]any)
	if row["locked"] != true || row["org_id"] != p.ID || row["orgc_id"] != p.ID {
		t.Errorf("push row %v", row)
	}
	if ev.Org.ID != p.ID || !ev.Locked {
		t.Errorf("state %+v", ev)
	}
	before := len(s.Published())
	s.SimulatePushEdit(ev.UUID, func(e *Event) { e.Attributes++ })
	if got := actions(t, s.Published()[before:]); got != "misp_json_event:edit misp_json_attribute:add misp_json:" {
		t.Errorf("push-edit %s", got)
	}
	for _, m := range s.Published() {
		if strings.Contains(string(m.Payload), "from_connected_server") {
			t.Errorf("a push sent %s", m.Payload)
		}
	}
	// A pushed event's owner may be the sync user's org rather than the creator.
	sub := s.AddOrg("PARTNER-SUB", "")
	e2 := s.SimulatePush(Event{Orgc: sub, Org: p, Published: true})
	if e2.Org.ID != p.ID || e2.Orgc.ID != sub.ID {
		t.Errorf("owner %v creator %v", e2.Org, e2.Orgc)
	}
}
