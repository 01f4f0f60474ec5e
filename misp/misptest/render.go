package misptest

// JSON renderings of MISP objects, field for field in the order of the real captures.
// Ids, counts and timestamps are strings (PDO::ATTR_STRINGIFY_FETCHES), tinyint(1) columns are
// booleans, absent optional values are null (misp-api.md §0).

// orgIndex is the Org/Orgc of /events/index rows (api/51).
func orgIndex(o *orgRec) obj {
	return obj{{"id", itoa(o.id)}, {"name", o.name}, {"uuid", o.uuid}}
}

// orgView is the Org/Orgc of /events/view and misp_json (api/49).
func orgView(o *orgRec) obj {
	return obj{{"id", itoa(o.id)}, {"name", o.name}, {"uuid", o.uuid}, {"local", o.local}}
}

// orgZMQ is the Orgc of misp_json_event and misp_json_attribute messages (sync/zmq/34).
func orgZMQ(o *orgRec) obj {
	return obj{{"id", itoa(o.id)}, {"uuid", o.uuid}, {"name", o.name}}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// tagRow is the full tags row as in misp_json_tag messages (zmq/36).
func tagRow(t *tagRec) obj {
	return obj{
		{"id", itoa(t.id)}, {"name", t.name}, {"colour", t.colour}, {"exportable", t.exportable},
		{"org_id", "0"}, {"user_id", "0"}, {"hide_tag", t.hideTag}, {"numerical_value", nullable(t.numericalValue)},
		{"is_galaxy", false}, {"is_custom_galaxy", false}, {"local_only", t.localOnly},
	}
}

// tagView is an event's Tag entry in views and misp_json: the row without org_id, plus local
// and relationship_type (api/32).
func tagView(t *tagRec, local bool) obj {
	return obj{
		{"id", itoa(t.id)}, {"name", t.name}, {"colour", t.colour}, {"exportable", t.exportable},
		{"user_id", "0"}, {"hide_tag", t.hideTag}, {"numerical_value", nullable(t.numericalValue)},
		{"is_galaxy", false}, {"is_custom_galaxy", false}, {"local_only", t.localOnly},
		{"local", local}, {"relationship_type", nil},
	}
}

// eventRowZMQ is the events row of misp_json_event add/edit (Event::quickFetchEvent).
func (s *Server) eventRowZMQ(ev *eventRec) obj {
	return obj{
		{"id", itoa(ev.id)}, {"org_id", itoa(ev.orgID)}, {"date", ev.date}, {"info", ev.info},
		{"user_id", itoa(ev.userID)}, {"uuid", ev.uuid}, {"published", ev.published}, {"analysis", ev.analysis},
		{"attribute_count", itoa(ev.attributeCount())}, {"orgc_id", itoa(ev.orgcID)}, {"timestamp", i64toa(ev.timestamp)},
		{"distribution", ev.distribution}, {"sharing_group_id", "0"}, {"proposal_email_lock", false},
		{"locked", ev.locked}, {"threat_level_id", ev.threatLevel}, {"publish_timestamp", i64toa(ev.publishTimestamp)},
		{"sighting_timestamp", "0"}, {"disable_correlation", false}, {"extends_uuid", ""}, {"protected", nil},
	}
}

// eventIndexRow is one element of /events/index (api/51): the row without user_id, then Org,
// Orgc and EventTag with exportable tags only.
func (s *Server) eventIndexRow(ev *eventRec) obj {
	tags := []any{}
	for _, et := range ev.tags {
		t := s.tags[et.tagID]
		if !t.exportable {
			continue
		}
		tags = append(tags, obj{
			{"id", itoa(et.id)}, {"event_id", itoa(ev.id)}, {"tag_id", itoa(t.id)}, {"local", et.local},
			{"relationship_type", et.relationshipType()},
			{"Tag", obj{{"id", itoa(t.id)}, {"name", t.name}, {"colour", t.colour}, {"is_galaxy", false}}},
		})
	}
	return obj{
		{"id", itoa(ev.id)}, {"org_id", itoa(ev.orgID)}, {"date", ev.date}, {"info", ev.info}, {"uuid", ev.uuid},
		{"published", ev.published}, {"analysis", ev.analysis}, {"attribute_count", itoa(ev.attributeCount())},
		{"orgc_id", itoa(ev.orgcID)}, {"timestamp", i64toa(ev.timestamp)}, {"distribution", ev.distribution},
		{"sharing_group_id", "0"}, {"proposal_email_lock", false}, {"locked", ev.locked},
		{"threat_level_id", ev.threatLevel}, {"publish_timestamp", i64toa(ev.publishTimestamp)},
		{"sighting_timestamp", "0"}, {"disable_correlation", false}, {"extends_uuid", ""}, {"protected", nil},
		{"Org", orgIndex(s.orgs[ev.orgID])}, {"Orgc", orgIndex(s.orgs[ev.orgcID])}, {"EventTag", tags},
	}
}

// eventMinimal is one element of /events/index with minimal (api/52).
func (s *Server) eventMinimal(ev *eventRec) obj {
	return obj{
		{"id", itoa(ev.id)}, {"timestamp", i64toa(ev.timestamp)}, {"sighting_timestamp", "0"},
		{"published", ev.published}, {"uuid", ev.uuid}, {"orgc_uuid", s.orgs[ev.orgcID].uuid},
	}
}

type fullOpts struct {
	creatorEmail bool // site admins (and the elevated publish user) see event_creator_email
	warnings     bool // attach warninglist hits to to_ids attributes (REST view default)
	metadata     bool // restSearch metadata: no Attribute/ShadowAttribute/Object/EventReport
	noLocalTags  bool // excludeLocalTags
}

// eventFull is JSONConverterTool::convert: /events/view, restSearch and misp_json (api/32,
// sync/zmq/34). The Tag key is absent when the event has no tags.
func (s *Server) eventFull(ev *eventRec, o fullOpts) obj {
	out := obj{
		{"id", itoa(ev.id)}, {"orgc_id", itoa(ev.orgcID)}, {"org_id", itoa(ev.orgID)}, {"date", ev.date},
		{"threat_level_id", ev.threatLevel}, {"info", ev.info}, {"published", ev.published}, {"uuid", ev.uuid},
		{"attribute_count", itoa(ev.attributeCount())}, {"analysis", ev.analysis}, {"timestamp", i64toa(ev.timestamp)},
		{"distribution", ev.distribution}, {"proposal_email_lock", false}, {"locked", ev.locked},
		{"publish_timestamp", i64toa(ev.publishTimestamp)}, {"sharing_group_id", "0"}, {"disable_correlation", false},
		{"extends_uuid", ""}, {"protected", nil},
	}
	if o.creatorEmail {
		out = append(out, field{"event_creator_email", ev.creatorEmail})
	}
	out = append(out, field{"Org", orgView(s.orgs[ev.orgID])}, field{"Orgc", orgView(s.orgs[ev.orgcID])})
	if !o.metadata {
		attrs := []any{}
		for _, a := range ev.attrs {
			if a.deleted {
				continue
			}
			attrs = append(attrs, s.attributeView(ev, a, o.warnings))
		}
		out = append(out, field{"Attribute", attrs}, field{"ShadowAttribute", []any{}})
	}
	out = append(out, field{"RelatedEvent", []any{}}, field{"Galaxy", []any{}})
	if !o.metadata {
		out = append(out, field{"Object", []any{}}, field{"EventReport", []any{}})
	}
	out = append(out, field{"CryptographicKey", []any{}})
	tags := []any{}
	for _, et := range ev.tags {
		t := s.tags[et.tagID]
		if !t.exportable || (o.noLocalTags && et.local) {
			continue
		}
		tags = append(tags, tagView(t, et.local))
	}
	if len(tags) > 0 {
		out = append(out, field{"Tag", tags})
	}
	return out
}

func (s *Server) attributeView(ev *eventRec, a *attributeRec, warnings bool) obj {
	out := obj{
		{"id", itoa(a.id)}, {"type", a.typ}, {"category", a.category}, {"to_ids", a.toIDS}, {"uuid", a.uuid},
		{"event_id", itoa(ev.id)}, {"distribution", "5"}, {"timestamp", i64toa(a.timestamp)}, {"comment", a.comment},
		{"sharing_group_id", "0"}, {"deleted", a.deleted}, {"disable_correlation", false}, {"object_id", "0"},
		{"object_relation", nil}, {"first_seen", nil}, {"last_seen", nil}, {"value", a.value},
	}
	if warnings {
		if w := s.attributeWarningsLocked(a); len(w) > 0 {
			out = append(out, field{"warnings", w})
		}
	}
	out = append(out, field{"Galaxy", []any{}}, field{"ShadowAttribute", []any{}})
	if tags := s.attributeTagsView(a); len(tags) > 0 {
		out = append(out, field{"Tag", tags})
	}
	return out
}

func (s *Server) attributeTagsView(a *attributeRec) []any {
	var out []any
	for _, at := range a.tags {
		out = append(out, tagView(s.tags[at.tagID], at.local))
	}
	return out
}

// ---- ZeroMQ messages ----

func (s *Server) msg(topic string, payload obj) Message {
	return Message{Topic: topic, Payload: compactJSON(payload), Time: s.now()}
}

// msgEvent is misp_json_event add/edit: row, Orgc and EventTag as siblings (Event::afterSave;
// sync/zmq/37 for an edit carrying the tags the event had before the edit).
func (s *Server) msgEvent(ev *eventRec, action string) Message {
	tags := []any{}
	for _, et := range ev.tags {
		t := s.tags[et.tagID]
		tags = append(tags, obj{
			{"id", itoa(et.id)}, {"event_id", itoa(ev.id)}, {"tag_id", itoa(t.id)}, {"local", et.local},
			{"relationship_type", et.relationshipType()},
			{"Tag", obj{{"id", itoa(t.id)}, {"name", t.name}, {"colour", t.colour}, {"exportable", t.exportable}}},
		})
	}
	return s.msg("misp_json_event", obj{
		{"Event", s.eventRowZMQ(ev)}, {"Orgc", orgZMQ(s.orgs[ev.orgcID])}, {"EventTag", tags}, {"action", action},
	})
}

// msgFromServer is the *_from_connected_server message; ref is the event UUID (string) or the
// partner's numeric id (JSON integer) for a pull by id (sync/zmq/45).
func (s *Server) msgFromServer(ref any, serverID, action string) Message {
	return s.msg("misp_json_event", obj{{"Event", ref}, {"Server", serverID}, {"action", action}})
}

func (s *Server) msgTagAttached(t *tagRec, ev *eventRec, local bool) Message {
	row := append(tagRow(t), field{"event_id", itoa(ev.id)}, field{"local", local})
	return s.msg("misp_json_tag", obj{{"Tag", row}, {"action", "attached to event"}})
}

// msgTagDetached has no "local" key (EventTag::afterDelete, zmq/42).
func (s *Server) msgTagDetached(t *tagRec, ev *eventRec) Message {
	row := append(tagRow(t), field{"event_id", itoa(ev.id)})
	return s.msg("misp_json_tag", obj{{"Tag", row}, {"action", "detached from event"}})
}

func (s *Server) msgTagAdd(t *tagRec) Message {
	return s.msg("misp_json_tag", obj{{"Tag", tagRow(t)}, {"action", "add"}})
}

// msgAttribute is misp_json_attribute (sync/zmq/34): the row with value1/value2 and an empty
// Sighting list, then a short Event with its Orgc.
func (s *Server) msgAttribute(ev *eventRec, a *attributeRec, action string) Message {
	attr := obj{
		{"id", itoa(a.id)}, {"event_id", itoa(ev.id)}, {"object_id", "0"}, {"object_relation", nil},
		{"category", a.category}, {"type", a.typ}, {"value1", a.value}, {"value2", ""}, {"to_ids", a.toIDS},
		{"uuid", a.uuid}, {"timestamp", i64toa(a.timestamp)}, {"distribution", "5"}, {"sharing_group_id", "0"},
		{"comment", a.comment}, {"deleted", a.deleted}, {"disable_correlation", false}, {"first_seen", nil},
		{"last_seen", nil}, {"value", a.value},
	}
	if len(a.tags) > 0 {
		var tags []any
		for _, at := range a.tags {
			t := s.tags[at.tagID]
			tags = append(tags, obj{{"id", itoa(t.id)}, {"name", t.name}, {"colour", t.colour}, {"exportable", t.exportable}, {"local", at.local}})
		}
		attr = append(attr, field{"Tag", tags})
	}
	attr = append(attr, field{"Sighting", []any{}})
	event := obj{
		{"id", itoa(ev.id)}, {"date", ev.date}, {"info", ev.info}, {"uuid", ev.uuid}, {"published", ev.published},
		{"analysis", ev.analysis}, {"threat_level_id", ev.threatLevel}, {"org_id", itoa(ev.orgID)},
		{"orgc_id", itoa(ev.orgcID)}, {"distribution", ev.distribution}, {"sharing_group_id", "0"},
		{"Orgc", orgZMQ(s.orgs[ev.orgcID])},
	}
	return s.msg("misp_json_attribute", obj{{"Attribute", attr}, {"Event", event}, {"action", action}})
}

// msgPublish is misp_json: the full event as loaded by Event::publish() before the publish is
// saved (so a local first publish carries published false and publish_timestamp "0"), with
// local tags and event_creator_email, without warninglist hits and without "action".
func (s *Server) msgPublish(ev *eventRec) Message {
	return s.msg("misp_json", obj{{"Event", s.eventFull(ev, fullOpts{creatorEmail: true})}})
}

// msgOrganisation is what a pull sends before the first event of an unknown creator org
// (sync/zmq/34): key "Orgc", "local" as the integer 0, no "action".
func (s *Server) msgOrganisation(o *orgRec) Message {
	local := 0
	if o.local {
		local = 1
	}
	return s.msg("misp_json_organisation", obj{{"Orgc", obj{
		{"created_by", itoa(o.createdBy)}, {"local", local}, {"name", o.name}, {"uuid", o.uuid},
		{"date_created", o.dateCreated}, {"date_modified", o.dateCreated}, {"nationality", ""}, {"id", itoa(o.id)},
	}}})
}

// warninglistRow is the warninglists row (recursive -1), as in add answers and ZeroMQ.
func warninglistRow(w *wlRec) obj {
	return obj{
		{"id", itoa(w.id)}, {"name", w.name}, {"type", w.typ}, {"description", w.description},
		{"version", itoa(w.version)}, {"enabled", w.enabled}, {"default", w.isDefault}, {"category", w.category},
	}
}

func (s *Server) msgWarninglist(w *wlRec, action string) Message {
	return s.msg("misp_json_warninglist", obj{{"Warninglist", warninglistRow(w)}, {"action", action}})
}

func (s *Server) msgTagAttachedAttribute(t *tagRec, ev *eventRec, a *attributeRec) Message {
	row := append(tagRow(t), field{"attribute_id", itoa(a.id)}, field{"event_id", itoa(ev.id)})
	return s.msg("misp_json_tag", obj{{"Tag", row}, {"action", "attached to attribute"}})
}

func (s *Server) msgTagDetachedAttribute(t *tagRec, ev *eventRec, a *attributeRec) Message {
	row := append(tagRow(t), field{"attribute_id", itoa(a.id)}, field{"event_id", itoa(ev.id)})
	return s.msg("misp_json_tag", obj{{"Tag", row}, {"action", "detached from attribute"}})
}
