package feed

import (
	"bytes"
	"encoding/json"
	"errors"
)

// stdjsonCandidates are Parse on encoding/json (see stdParse).
func stdjsonCandidates() []parseCandidate {
	return []parseCandidate{
		{name: "encoding_json", parse: func(f []byte) (Message, error) { return stdParse(f, true) },
			fieldOrder: true},
		{name: "encoding_json_structs", parse: func(f []byte) (Message, error) { return stdParse(f, false) },
			unfaithful: "encoding/json matches struct fields case-insensitively: \"event\" fills Event"},
	}
}

// stdParse is Parse on encoding/json. Each object the curator reads is
// unmarshalled into a small struct of raw values (sRaw keeps a sub-slice of the
// payload: no copy, nothing skipped is built); a value whose JSON type varies
// is unmarshalled again once its type is known. Unmarshal validates the whole
// payload before it decodes, so a syntax error wins over field errors as in
// Parse. exactKeys ("encoding_json") decodes each object into a
// map[string]sRaw and picks members by exact name, as Parse does; without it
// ("encoding_json_structs", the plain way) struct fields match keys
// case-insensitively. Fields are checked in a fixed order, not in document
// order, so when a payload has several bad fields the error may name another.
// Escaped strings are unescaped with Parse's helper (encoding/json's rules),
// which spares encoding/json a third pass over them.
func stdParse(frame []byte, exactKeys bool) (Message, error) {
	topic, kind, payload, m, err := splitFrame(frame)
	if err != nil || kind == KindIgnored {
		return m, err
	}
	d := stdDecoder{payload: payload, exact: exactKeys, m: m}
	if err := d.run(); err != nil {
		if pe, ok := err.(*ParseError); ok {
			pe.Topic = topic
		}
		return Message{}, err
	}
	return d.m, nil
}

type sRaw []byte

func (r *sRaw) UnmarshalJSON(b []byte) error { *r = b; return nil }

type (
	sEventFields struct {
		Action   sRaw `json:"action"`
		Event    sRaw `json:"Event"`
		Server   sRaw `json:"Server"`
		Orgc     sRaw `json:"Orgc"`
		EventTag sRaw `json:"EventTag"`
	}
	sRowFields struct {
		UUID      sRaw `json:"uuid"`
		ID        sRaw `json:"id"`
		OrgID     sRaw `json:"org_id"`
		Locked    sRaw `json:"locked"`
		Published sRaw `json:"published"`
		Timestamp sRaw `json:"timestamp"`
		Orgc      sRaw `json:"Orgc"`
		Tag       sRaw `json:"Tag"`
	}
	sPublishFields struct {
		Event *sRowFields `json:"Event"`
	}
	sOrgcFields struct {
		UUID sRaw `json:"uuid"`
		Name sRaw `json:"name"`
	}
	sTagFields struct { // a tag object, an EventTag element, and misp_json_tag's Tag
		Name        sRaw `json:"name"`
		Local       sRaw `json:"local"`
		Tag         sRaw `json:"Tag"`
		EventID     sRaw `json:"event_id"`
		AttributeID sRaw `json:"attribute_id"`
	}
	sTagMessageFields struct {
		Action sRaw `json:"action"`
		Tag    sRaw `json:"Tag"`
	}
	sHeartbeatFields struct {
		Status sRaw `json:"status"`
		Uptime sRaw `json:"uptime"`
	}
)

type stdDecoder struct {
	payload []byte
	exact   bool
	m       Message
	err     *ParseError
}

func (d *stdDecoder) fieldError(kind ErrorKind, field path, detail string, offset int) {
	if d.err == nil {
		d.err = &ParseError{Kind: kind, Field: field.String(), Offset: offset, Detail: detail}
	}
}

// at is the offset of raw in the payload (raw is a sub-slice of it).
func (d *stdDecoder) at(raw []byte) int { return cap(d.payload) - cap(raw) }

// unmarshal decodes an object into fields (a pointer to one of the s*Fields).
func (d *stdDecoder) unmarshal(data []byte, fields any) error {
	if !d.exact {
		return json.Unmarshal(data, fields)
	}
	var obj map[string]sRaw
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	switch f := fields.(type) {
	case *sEventFields:
		*f = sEventFields{obj["action"], obj["Event"], obj["Server"], obj["Orgc"], obj["EventTag"]}
	case *sRowFields:
		*f = sRowFields{obj["uuid"], obj["id"], obj["org_id"], obj["locked"], obj["published"], obj["timestamp"], obj["Orgc"], obj["Tag"]}
	case *sOrgcFields:
		*f = sOrgcFields{obj["uuid"], obj["name"]}
	case *sTagFields:
		*f = sTagFields{obj["name"], obj["local"], obj["Tag"], obj["event_id"], obj["attribute_id"]}
	case *sTagMessageFields:
		*f = sTagMessageFields{obj["action"], obj["Tag"]}
	case *sHeartbeatFields:
		*f = sHeartbeatFields{obj["status"], obj["uptime"]}
	case *sPublishFields:
		ev, ok := obj["Event"]
		switch {
		case !ok || ev[0] == 'n':
			f.Event = nil
		case ev[0] != '{':
			return &json.UnmarshalTypeError{Field: "Event", Offset: int64(d.at(ev))}
		default:
			f.Event = new(sRowFields)
			return d.unmarshal(ev, f.Event)
		}
	}
	return nil
}

func (d *stdDecoder) run() error {
	// The first Unmarshal of the payload checks all of it (encoding/json
	// validates before it decodes), so a syntax error wins over field errors.
	var err error
	switch d.m.Kind {
	case KindEvent:
		err = d.event()
	case KindPublish:
		err = d.publish()
	case KindTag:
		err = d.tagMessage()
	case KindHeartbeat:
		var f sHeartbeatFields
		if err = d.unmarshal(d.payload, &f); err == nil {
			d.m.Heartbeat.Status, _ = d.str(path{"status", ""}, f.Status)
			d.m.Heartbeat.Uptime = d.integer(path{"uptime", ""}, f.Uptime)
		}
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &ParseError{Kind: KindInvalidJSON, Offset: int(se.Offset), Detail: "not valid JSON"}
	case errors.As(err, &te) && te.Field == "":
		return &ParseError{Kind: KindUnexpectedJSON, Offset: 0, Detail: "payload is not a JSON object"}
	case err != nil:
		return err
	case d.err != nil:
		return d.err
	}
	return nil
}

func isNull(raw []byte) bool { return raw == nil || raw[0] == 'n' }

func (d *stdDecoder) event() error {
	var f sEventFields
	if err := d.unmarshal(d.payload, &f); err != nil {
		return err
	}
	m := &d.m
	d.action(f.Action)
	switch ev := f.Event; {
	case isNull(ev):
		d.fieldError(KindMissingEvent, path{"Event", ""}, "absent or null", -1)
	case ev[0] == '{':
		var row sRowFields
		if err := d.unmarshal(ev, &row); err != nil {
			return err
		}
		d.row("Event", &row, false)
	case ev[0] == '"':
		m.EventUUID = d.uuid(path{"Event", ""}, stdString(ev), d.at(ev))
	case ev[0] == '-' || isDigit(ev[0]):
		if !isID(ev) {
			d.fieldError(KindBadID, path{"Event", ""}, "not a non-negative integer", d.at(ev))
		}
		m.RemoteEventID = string(ev)
	default:
		d.fieldError(KindBadField, path{"Event", ""}, "want an object, a UUID string or a number", d.at(ev))
	}
	m.ServerID = d.id(path{"Server", ""}, f.Server)
	if err := d.orgc("Orgc", f.Orgc); err != nil {
		return err
	}
	return d.tagList("EventTag", "EventTag[]", f.EventTag, true)
}

func (d *stdDecoder) action(raw sRaw) {
	switch {
	case raw == nil:
		d.fieldError(KindMissingField, path{"action", ""}, "absent or null", -1)
	case raw[0] == '"':
		s := raw[1 : len(raw)-1]
		d.m.Action = internAction(s, bytes.IndexByte(s, '\\') >= 0)
	case raw[0] == 'n':
		d.fieldError(KindMissingField, path{"action", ""}, "absent or null", -1)
	default:
		d.fieldError(KindBadField, path{"action", ""}, "want a string", d.at(raw))
	}
}

func (d *stdDecoder) row(base string, f *sRowFields, nested bool) {
	m := &d.m
	m.HasRow = true
	switch {
	case isNull(f.UUID):
		d.fieldError(KindBadUUID, path{base, "uuid"}, "absent or null", -1)
	case f.UUID[0] == '"':
		m.EventUUID = d.uuid(path{base, "uuid"}, stdString(f.UUID), d.at(f.UUID))
	default:
		d.fieldError(KindBadField, path{base, "uuid"}, "want a string", d.at(f.UUID))
	}
	m.EventID = d.id(path{base, "id"}, f.ID)
	m.OrgID = d.id(path{base, "org_id"}, f.OrgID)
	m.Locked = d.boolish(path{base, "locked"}, f.Locked)
	m.Published = d.boolish(path{base, "published"}, f.Published)
	m.Timestamp = d.integer(path{base, "timestamp"}, f.Timestamp)
}

func (d *stdDecoder) publish() error {
	var f sPublishFields
	if err := d.unmarshal(d.payload, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "Event" {
			d.fieldError(KindBadField, path{"Event", ""}, "want an object", int(te.Offset))
			return nil
		}
		return err
	}
	if f.Event == nil {
		d.fieldError(KindMissingEvent, path{"Event", ""}, "absent or null", -1)
		return nil
	}
	d.row("Event", f.Event, true)
	if err := d.orgc("Event.Orgc", f.Event.Orgc); err != nil {
		return err
	}
	return d.tagList("Event.Tag", "Event.Tag[]", f.Event.Tag, false)
}

func (d *stdDecoder) orgc(base string, raw sRaw) error {
	if isNull(raw) {
		return nil
	}
	if raw[0] != '{' {
		d.fieldError(KindBadField, path{base, ""}, "want an object", d.at(raw))
		return nil
	}
	var f sOrgcFields
	if err := d.unmarshal(raw, &f); err != nil {
		return err
	}
	if !isNull(f.UUID) {
		if v, ok := d.str(path{base, "uuid"}, f.UUID); ok {
			d.m.OrgcUUID = d.uuid(path{base, "uuid"}, v, d.at(f.UUID))
		}
	}
	d.m.OrgcName, _ = d.str(path{base, "name"}, f.Name)
	return nil
}

func (d *stdDecoder) tagList(base, elem string, raw sRaw, eventTag bool) error {
	if isNull(raw) {
		return nil
	}
	if raw[0] != '[' {
		d.fieldError(KindBadField, path{base, ""}, "want an array", d.at(raw))
		return nil
	}
	var list []sRaw
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	d.m.HasTags = true
	for _, el := range list {
		if el[0] != '{' {
			d.fieldError(KindBadField, path{elem, ""}, "want an object", d.at(el))
			continue
		}
		var f sTagFields
		if err := d.unmarshal(el, &f); err != nil {
			return err
		}
		t := Tag{Local: d.boolish(path{elem, "local"}, f.Local)}
		nameBase, nameRaw := elem, f.Name
		if eventTag {
			const tagBase = "EventTag[].Tag"
			if f.Tag == nil {
				d.fieldError(KindMissingField, path{tagBase, ""}, "absent", -1)
				continue
			}
			if f.Tag[0] != '{' {
				d.fieldError(KindBadField, path{tagBase, ""}, "want an object", d.at(f.Tag))
				continue
			}
			var inner sTagFields
			if err := d.unmarshal(f.Tag, &inner); err != nil {
				return err
			}
			nameBase, nameRaw = tagBase, inner.Name
		}
		name, ok := d.str(path{nameBase, "name"}, nameRaw)
		if !ok || isNull(nameRaw) {
			d.fieldError(KindMissingField, path{nameBase, "name"}, "absent or null", -1)
			continue
		}
		t.Name = name
		d.m.Tags = append(d.m.Tags, t)
	}
	return nil
}

func (d *stdDecoder) tagMessage() error {
	var f sTagMessageFields
	if err := d.unmarshal(d.payload, &f); err != nil {
		return err
	}
	d.action(f.Action)
	sawTag := false
	switch {
	case isNull(f.Tag):
		d.fieldError(KindMissingField, path{"Tag", ""}, "absent or null", -1)
	case f.Tag[0] != '{':
		d.fieldError(KindBadField, path{"Tag", ""}, "want an object", d.at(f.Tag))
	default:
		sawTag = true
		var t sTagFields
		if err := d.unmarshal(f.Tag, &t); err != nil {
			return err
		}
		if name, ok := d.str(path{"Tag.name", ""}, t.Name); ok && !isNull(t.Name) {
			d.m.TagName = name
		} else {
			d.fieldError(KindMissingField, path{"Tag.name", ""}, "absent or null", -1)
		}
		d.m.TagLocal = d.boolish(path{"Tag.local", ""}, t.Local)
		d.m.EventID = d.id(path{"Tag.event_id", ""}, t.EventID)
		d.m.AttributeID = d.id(path{"Tag.attribute_id", ""}, t.AttributeID)
	}
	if d.m.Action == ActionTagAttachedToEvent || d.m.Action == ActionTagDetachedFromEvent {
		d.m.Kind = KindEventTag
		if sawTag && d.m.EventID == "" {
			d.fieldError(KindMissingField, path{"Tag.event_id", ""}, "absent or null", -1)
		}
	}
	return nil
}

func stdString(raw []byte) string {
	s := raw[1 : len(raw)-1]
	return decodeString(s, bytes.IndexByte(s, '\\') >= 0)
}

// str returns a string value; ok is false (and an error recorded) for another type.
func (d *stdDecoder) str(field path, raw sRaw) (string, bool) {
	switch {
	case isNull(raw):
		return "", true
	case raw[0] == '"':
		return stdString(raw), true
	}
	d.fieldError(KindBadField, field, "want a string", d.at(raw))
	return "", false
}

func (d *stdDecoder) idBytes(field path, raw sRaw) []byte {
	var text []byte
	switch {
	case isNull(raw):
		return nil
	case raw[0] == '"':
		text = raw[1 : len(raw)-1]
		if bytes.IndexByte(text, '\\') >= 0 {
			text = appendUnquoted(nil, text)
		}
	case raw[0] == '-' || isDigit(raw[0]):
		text = raw
	default:
		d.fieldError(KindBadID, field, "want a string or a number", d.at(raw))
		return nil
	}
	if !isID(text) {
		d.fieldError(KindBadID, field, "not a non-negative integer", d.at(raw))
		return nil
	}
	return text
}

func (d *stdDecoder) id(field path, raw sRaw) string {
	if text := d.idBytes(field, raw); text != nil {
		return string(text)
	}
	return ""
}

func (d *stdDecoder) integer(field path, raw sRaw) int64 {
	text := d.idBytes(field, raw)
	var n int64
	for _, c := range text {
		if n > (1<<63-1-int64(c-'0'))/10 {
			d.fieldError(KindBadField, field, "integer out of range", d.at(raw))
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func (d *stdDecoder) boolish(field path, raw sRaw) bool {
	switch {
	case isNull(raw) || raw[0] == 'f':
		return false
	case raw[0] == 't':
		return true
	case raw[0] == '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			s = appendUnquoted(nil, s)
		}
		if string(s) == "0" || string(s) == "1" {
			return s[0] == '1'
		}
	case string(raw) == "0" || string(raw) == "1":
		return raw[0] == '1'
	}
	d.fieldError(KindBadField, field, "want a boolean (or 0/1)", d.at(raw))
	return false
}

func (d *stdDecoder) uuid(field path, v string, at int) string {
	if !isUUID(v) {
		d.fieldError(KindBadUUID, field, "not a UUID", at)
		return ""
	}
	return lowerUUID(v)
}
