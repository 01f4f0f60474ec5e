package feed

import (
	"bytes"
	"fmt"
)

// Parser parses frames. The zero value has no size limit.
type Parser struct {
	// MaxSize rejects frames longer than this many bytes with KindTooLarge
	// (0: no limit).
	MaxSize int
}

// Parse parses one frame with no size limit. See Parser.Parse.
func Parse(frame []byte) (Message, error) {
	return Parser{}.Parse(frame)
}

// Parse parses one ZeroMQ frame "<topic> <json>" (misp-api.md §1.4: split on the
// first space, compare the topic exactly). It does no I/O and keeps no reference
// to frame. Errors are *ParseError; the Message is valid only when err is nil.
//
// Payloads of KindIgnored topics are not inspected. Other payloads are checked
// in full (invalid JSON anywhere is KindInvalidJSON) while only the fields the
// curator needs are decoded.
func (p Parser) Parse(frame []byte) (Message, error) {
	if p.MaxSize > 0 && len(frame) > p.MaxSize {
		return Message{}, &ParseError{Kind: KindTooLarge, Offset: -1,
			Detail: fmt.Sprintf("frame of %d bytes over the %d-byte limit", len(frame), p.MaxSize)}
	}
	sp := bytes.IndexByte(frame, ' ')
	if sp < 0 {
		return Message{}, &ParseError{Kind: KindNoSpace, Offset: -1,
			Detail: fmt.Sprintf("no space in a %d-byte frame", len(frame))}
	}
	topic, kind, ok := lookupTopic(frame[:sp])
	if !ok {
		return Message{}, &ParseError{Kind: KindUnknownTopic, Offset: -1,
			Detail: fmt.Sprintf("topic %q", truncate(frame[:sp], 64))}
	}
	if kind == KindIgnored {
		return Message{Topic: topic, Kind: kind, Size: len(frame)}, nil
	}

	d := decoder{s: scanner{data: frame[sp+1:]}, m: Message{Topic: topic, Kind: kind, Size: len(frame)}}
	err := d.payload()
	if err == nil {
		err = d.s.end()
	}
	if err == nil && d.err != nil {
		err = d.err // a field error counts only once the whole payload is valid JSON
	}
	if err != nil {
		if pe, ok := err.(*ParseError); ok {
			pe.Topic = topic
		}
		return Message{}, err
	}
	return d.m, nil
}

// lookupTopic returns the constant for a known topic (no allocation).
func lookupTopic(t []byte) (Topic, Kind, bool) {
	switch Topic(t) {
	case TopicPublish:
		return TopicPublish, KindPublish, true
	case TopicEvent:
		return TopicEvent, KindEvent, true
	case TopicTag:
		return TopicTag, KindTag, true // KindEventTag is decided by the action
	case TopicSelf:
		return TopicSelf, KindHeartbeat, true
	}
	for _, known := range ignoredTopics() {
		if Topic(t) == known {
			return known, KindIgnored, true
		}
	}
	return "", 0, false
}

func ignoredTopics() [10]Topic {
	return [...]Topic{TopicAttribute, TopicObject, TopicObjectReference, TopicSighting,
		TopicOrganisation, TopicUser, TopicConversation, TopicAudit, TopicWarninglist, TopicWorkflow}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// decoder walks one payload. Syntax errors end the walk at once; field errors are
// remembered (the first one in document order) and the walk goes on, so that
// invalid JSON is always reported as such.
type decoder struct {
	s   scanner
	m   Message
	err *ParseError
}

// path names a field for errors; it is only joined when an error is recorded,
// so that reading a field costs no allocation.
type path struct{ base, leaf string }

func (p path) String() string {
	if p.leaf == "" {
		return p.base
	}
	return p.base + "." + p.leaf
}

func (d *decoder) fieldError(kind ErrorKind, field path, detail string, offset int) {
	if d.err == nil {
		d.err = &ParseError{Kind: kind, Field: field.String(), Offset: offset, Detail: detail}
	}
}

// payload dispatches on the topic. Each handler reads the root object.
func (d *decoder) payload() error {
	if c := d.s.peek(); c != '{' {
		if err := d.s.skip(); err != nil {
			return err
		}
		d.fieldError(KindUnexpectedJSON, path{}, "payload is not a JSON object", 0)
		return nil
	}
	switch d.m.Kind {
	case KindEvent:
		return d.eventPayload()
	case KindPublish:
		return d.publishPayload()
	case KindTag:
		return d.tagPayload()
	case KindHeartbeat:
		return d.heartbeatPayload()
	}
	return d.s.skip()
}

// eventPayload reads misp_json_event (misp-api.md §1.7):
// {"Event": {row} | "<uuid>" | <remote id>, "Orgc": {...}, "EventTag": [...],
// "Server": "<id>", "action": "..."}.
func (d *decoder) eventPayload() error {
	if err := d.s.enter(); err != nil {
		return err
	}
	var sawEvent, sawAction bool
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "action":
			sawAction, err = d.action()
		case "Event":
			sawEvent, err = d.eventValue()
		case "Server":
			d.m.ServerID, err = d.id(path{"Server", ""})
		case "Orgc":
			d.m.OrgcUUID, d.m.OrgcName = "", ""
			err = d.orgc("Orgc")
		case "EventTag":
			d.m.Tags, d.m.HasTags = nil, false
			err = d.tagList("EventTag", "EventTag[]", true)
		default:
			err = d.s.skip()
		}
		if err != nil {
			return err
		}
	}
	if !sawAction {
		d.fieldError(KindMissingField, path{"action", ""}, "absent or null", -1)
	}
	if !sawEvent {
		d.fieldError(KindMissingEvent, path{"Event", ""}, "absent or null", -1)
	}
	return nil
}

func (d *decoder) action() (bool, error) {
	d.m.Action = ""
	if d.s.peek() != '"' {
		_, isNull, err := d.str(path{"action", ""}) // null, or a type error
		return err == nil && !isNull, err
	}
	raw, esc, err := d.s.rawString()
	if err != nil {
		return false, err
	}
	d.m.Action = internAction(raw, esc)
	return true, nil
}

// internAction returns the constant for a known action (no allocation).
func internAction(raw []byte, esc bool) Action {
	if !esc {
		for _, a := range [...]Action{ActionAdd, ActionEdit, ActionDelete, ActionAddFromConnectedServer,
			ActionEditFromConnectedServer, ActionTagAttachedToEvent, ActionTagDetachedFromEvent} {
			if string(raw) == string(a) {
				return a
			}
		}
	}
	return Action(decodeString(raw, esc))
}

// eventValue reads misp_json_event's "Event", which is the event row for
// add/edit/delete and a scalar for *_from_connected_server (§1.7c): the event
// UUID, or the partner's numeric id after a pull by id (sync/zmq/45_…, 48_…).
func (d *decoder) eventValue() (bool, error) {
	m := &d.m
	m.EventUUID, m.EventID, m.RemoteEventID, m.OrgID = "", "", "", ""
	m.HasRow, m.Locked, m.Published, m.Timestamp = false, false, false, 0
	at := d.s.start()
	switch c := d.s.peek(); {
	case c == '{':
		return true, d.eventRow("Event", false)
	case c == '"':
		raw, esc, err := d.s.rawString()
		if err != nil {
			return false, err
		}
		m.EventUUID = d.uuid(path{"Event", ""}, decodeString(raw, esc), at)
		return true, nil
	case c == '-' || isDigit(c):
		num, err := d.s.number()
		if err != nil {
			return false, err
		}
		if !isID(num) {
			d.fieldError(KindBadID, path{"Event", ""}, "not a non-negative integer", at)
		}
		m.RemoteEventID = string(num)
		return true, nil
	case c == 'n':
		return false, d.s.literal("null")
	}
	if err := d.s.skip(); err != nil {
		return false, err
	}
	d.fieldError(KindBadField, path{"Event", ""}, "want an object, a UUID string or a number", at)
	return true, nil
}

// eventRow reads the event object of misp_json_event (row form) or misp_json
// (full event; nested is true: Orgc and Tag are inside it).
func (d *decoder) eventRow(base string, nested bool) error {
	m := &d.m
	m.HasRow = true
	if err := d.s.enter(); err != nil {
		return err
	}
	sawUUID := false
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch k := string(key); {
		case k == "uuid":
			at := d.s.start()
			var v string
			var isNull bool
			v, isNull, err = d.str(path{base, "uuid"})
			if err == nil && !isNull {
				sawUUID = true
				m.EventUUID = d.uuid(path{base, "uuid"}, v, at)
			}
		case k == "id":
			m.EventID, err = d.id(path{base, "id"})
		case k == "org_id":
			m.OrgID, err = d.id(path{base, "org_id"})
		case k == "locked":
			m.Locked, err = d.boolish(path{base, "locked"})
		case k == "published":
			m.Published, err = d.boolish(path{base, "published"})
		case k == "timestamp":
			m.Timestamp, err = d.integer(path{base, "timestamp"})
		case nested && k == "Orgc":
			m.OrgcUUID, m.OrgcName = "", ""
			err = d.orgc("Event.Orgc")
		case nested && k == "Tag":
			m.Tags, m.HasTags = nil, false
			err = d.tagList("Event.Tag", "Event.Tag[]", false)
		default:
			err = d.s.skip()
		}
		if err != nil {
			return err
		}
	}
	if !sawUUID {
		m.EventUUID = ""
		d.fieldError(KindBadUUID, path{base, "uuid"}, "absent or null", -1)
	}
	return nil
}

// publishPayload reads misp_json (§1.9): {"Event": {..., "Orgc": {...},
// "Tag": [...], "Attribute": [...], ...}} with no action.
func (d *decoder) publishPayload() error {
	if err := d.s.enter(); err != nil {
		return err
	}
	sawEvent := false
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if string(key) != "Event" {
			if err := d.s.skip(); err != nil {
				return err
			}
			continue
		}
		d.m = Message{Topic: d.m.Topic, Kind: d.m.Kind, Size: d.m.Size}
		sawEvent = false
		switch c := d.s.peek(); c {
		case '{':
			sawEvent = true
			err = d.eventRow("Event", true)
		case 'n':
			err = d.s.literal("null")
		default:
			at := d.s.start()
			if err = d.s.skip(); err == nil {
				sawEvent = true
				d.fieldError(KindBadField, path{"Event", ""}, "want an object", at)
			}
		}
		if err != nil {
			return err
		}
	}
	if !sawEvent {
		d.fieldError(KindMissingEvent, path{"Event", ""}, "absent or null", -1)
	}
	return nil
}

// orgc reads {"id", "uuid", "name", ...}; a null Orgc is the same as none.
func (d *decoder) orgc(base string) error {
	at := d.s.start()
	switch d.s.peek() {
	case 'n':
		return d.s.literal("null")
	case '{':
	default:
		if err := d.s.skip(); err != nil {
			return err
		}
		d.fieldError(KindBadField, path{base, ""}, "want an object", at)
		return nil
	}
	if err := d.s.enter(); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "uuid":
			at := d.s.start()
			var v string
			var isNull bool
			v, isNull, err = d.str(path{base, "uuid"})
			d.m.OrgcUUID = ""
			if err == nil && !isNull {
				d.m.OrgcUUID = d.uuid(path{base, "uuid"}, v, at)
			}
		case "name":
			d.m.OrgcName, _, err = d.str(path{base, "name"})
		default:
			err = d.s.skip()
		}
		if err != nil {
			return err
		}
	}
}

// tagList reads an event's tags: misp_json_event's EventTag
// [{"local": b, "Tag": {"name": ...}}] (eventTag true) or misp_json's Event.Tag
// [{"name": ..., "local": b}]. A null list is the same as none.
func (d *decoder) tagList(base, elem string, eventTag bool) error {
	at := d.s.start()
	switch d.s.peek() {
	case 'n':
		return d.s.literal("null")
	case '[':
	default:
		if err := d.s.skip(); err != nil {
			return err
		}
		d.fieldError(KindBadField, path{base, ""}, "want an array", at)
		return nil
	}
	if err := d.s.enter(); err != nil {
		return err
	}
	d.m.HasTags = true
	for first := true; ; first = false {
		ok, err := d.s.nextElem(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		var t Tag
		var named bool
		if eventTag {
			t, named, err = d.eventTagElem(elem, "EventTag[].Tag")
		} else {
			t, named, err = d.tagObject(elem, true)
		}
		if err != nil {
			return err
		}
		if named {
			d.m.Tags = append(d.m.Tags, t)
		}
	}
}

// eventTagElem reads one EventTag element: {"local": b, "Tag": {"name": ...}}.
func (d *decoder) eventTagElem(base, tagBase string) (t Tag, named bool, err error) {
	at := d.s.start()
	if d.s.peek() != '{' {
		if err := d.s.skip(); err != nil {
			return t, false, err
		}
		d.fieldError(KindBadField, path{base, ""}, "want an object", at)
		return t, false, nil
	}
	if err := d.s.enter(); err != nil {
		return t, false, err
	}
	sawTag := false
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return t, false, err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "local":
			t.Local, err = d.boolish(path{base, "local"})
		case "Tag":
			at := d.s.start()
			switch d.s.peek() {
			case '{':
				var inner Tag
				inner, sawTag, err = d.tagObject(tagBase, false)
				t.Name = inner.Name
			default:
				sawTag = false
				t.Name = ""
				if err = d.s.skip(); err == nil {
					d.fieldError(KindBadField, path{tagBase, ""}, "want an object", at)
				}
			}
		default:
			err = d.s.skip()
		}
		if err != nil {
			return t, false, err
		}
	}
	if !sawTag {
		d.fieldError(KindMissingField, path{tagBase, ""}, "absent", -1)
	}
	return t, sawTag, nil
}

// tagObject reads a tag object and returns its name (required) and, when
// withLocal, its "local" flag.
func (d *decoder) tagObject(base string, withLocal bool) (t Tag, named bool, err error) {
	at := d.s.start()
	if d.s.peek() != '{' {
		if err := d.s.skip(); err != nil {
			return t, false, err
		}
		d.fieldError(KindBadField, path{base, ""}, "want an object", at)
		return t, false, nil
	}
	if err := d.s.enter(); err != nil {
		return t, false, err
	}
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return t, false, err
		}
		if !ok {
			break
		}
		switch k := string(key); {
		case k == "name":
			var isNull bool
			t.Name, isNull, err = d.str(path{base, "name"})
			named = err == nil && !isNull
		case withLocal && k == "local":
			t.Local, err = d.boolish(path{base, "local"})
		default:
			err = d.s.skip()
		}
		if err != nil {
			return t, false, err
		}
	}
	if !named {
		d.fieldError(KindMissingField, path{base, "name"}, "absent or null", -1)
	}
	return t, named, nil
}

// tagPayload reads misp_json_tag (§1.10):
// {"Tag": {"name", "event_id", "attribute_id", "local", ...}, "action": "..."}.
func (d *decoder) tagPayload() error {
	if err := d.s.enter(); err != nil {
		return err
	}
	var sawTag, sawAction, sawName bool
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "action":
			sawAction, err = d.action()
		case "Tag":
			d.m.TagName, d.m.TagLocal, d.m.EventID, d.m.AttributeID = "", false, "", ""
			sawTag, sawName, err = d.tagMessageTag()
		default:
			err = d.s.skip()
		}
		if err != nil {
			return err
		}
	}
	if !sawAction {
		d.fieldError(KindMissingField, path{"action", ""}, "absent or null", -1)
	}
	if !sawTag {
		d.fieldError(KindMissingField, path{"Tag", ""}, "absent or null", -1)
	} else if !sawName {
		d.fieldError(KindMissingField, path{"Tag.name", ""}, "absent or null", -1)
	}
	if d.m.Action == ActionTagAttachedToEvent || d.m.Action == ActionTagDetachedFromEvent {
		d.m.Kind = KindEventTag
		if sawTag && d.m.EventID == "" {
			d.fieldError(KindMissingField, path{"Tag.event_id", ""}, "absent or null", -1)
		}
	}
	return nil
}

func (d *decoder) tagMessageTag() (sawTag, sawName bool, err error) {
	at := d.s.start()
	switch d.s.peek() {
	case 'n':
		return false, false, d.s.literal("null")
	case '{':
	default:
		if err := d.s.skip(); err != nil {
			return false, false, err
		}
		d.fieldError(KindBadField, path{"Tag", ""}, "want an object", at)
		return true, true, nil
	}
	if err := d.s.enter(); err != nil {
		return false, false, err
	}
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return false, false, err
		}
		if !ok {
			return true, sawName, nil
		}
		switch string(key) {
		case "name":
			var isNull bool
			d.m.TagName, isNull, err = d.str(path{"Tag.name", ""})
			sawName = err == nil && !isNull
		case "local":
			d.m.TagLocal, err = d.boolish(path{"Tag.local", ""})
		case "event_id":
			d.m.EventID, err = d.id(path{"Tag.event_id", ""})
		case "attribute_id":
			d.m.AttributeID, err = d.id(path{"Tag.attribute_id", ""})
		default:
			err = d.s.skip()
		}
		if err != nil {
			return false, false, err
		}
	}
}

// heartbeatPayload reads misp_json_self (§1.6): {"status": "...", "uptime": N}.
// mispzmq.py writes it with json.dumps (spaces) or orjson (compact).
func (d *decoder) heartbeatPayload() error {
	if err := d.s.enter(); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, ok, err := d.s.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "status":
			d.m.Heartbeat.Status, _, err = d.str(path{"status", ""})
		case "uptime":
			d.m.Heartbeat.Uptime, err = d.integer(path{"uptime", ""})
		default:
			err = d.s.skip()
		}
		if err != nil {
			return err
		}
	}
}

// str reads a string or null.
func (d *decoder) str(field path) (v string, isNull bool, err error) {
	at := d.s.start()
	switch d.s.peek() {
	case '"':
		raw, esc, err := d.s.rawString()
		if err != nil {
			return "", false, err
		}
		return decodeString(raw, esc), false, nil
	case 'n':
		return "", true, d.s.literal("null")
	}
	if err := d.s.skip(); err != nil {
		return "", false, err
	}
	d.fieldError(KindBadField, field, "want a string", at)
	return "", false, nil
}

// id reads an id sent as a JSON string or number (misp-api.md §0); null is "".
func (d *decoder) id(field path) (string, error) {
	text, err := d.idBytes(field)
	if err != nil || text == nil {
		return "", err
	}
	return string(text), nil
}

// idBytes is id without the string allocation; nil means null or invalid.
func (d *decoder) idBytes(field path) ([]byte, error) {
	at := d.s.start()
	var text []byte
	switch c := d.s.peek(); {
	case c == '"':
		raw, esc, err := d.s.rawString()
		if err != nil {
			return nil, err
		}
		if esc {
			raw = appendUnquoted(nil, raw)
		}
		text = raw
	case c == '-' || isDigit(c):
		num, err := d.s.number()
		if err != nil {
			return nil, err
		}
		text = num
	case c == 'n':
		return nil, d.s.literal("null")
	default:
		if err := d.s.skip(); err != nil {
			return nil, err
		}
		d.fieldError(KindBadID, field, "want a string or a number", at)
		return nil, nil
	}
	if !isID(text) {
		d.fieldError(KindBadID, field, "not a non-negative integer", at)
		return nil, nil
	}
	return text, nil
}

// isID accepts 1–20 ASCII digits.
func isID(b []byte) bool {
	if len(b) == 0 || len(b) > 20 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// integer reads an int64 sent as a JSON string or number; null is 0.
func (d *decoder) integer(field path) (int64, error) {
	at := d.s.start()
	text, err := d.idBytes(field)
	if err != nil || text == nil {
		return 0, err
	}
	var n int64
	for _, c := range text { // isID guarantees digits only
		if n > (1<<63-1-int64(c-'0'))/10 {
			d.fieldError(KindBadField, field, "integer out of range", at)
			return 0, nil
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// boolish reads MISP's tinyint(1) columns: JSON booleans (misp-api.md §0), but
// also 0/1 numbers or strings as some code paths send them; null is false.
func (d *decoder) boolish(field path) (bool, error) {
	at := d.s.start()
	switch c := d.s.peek(); {
	case c == 't':
		return true, d.s.literal("true")
	case c == 'f':
		return false, d.s.literal("false")
	case c == 'n':
		return false, d.s.literal("null")
	case c == '"':
		raw, esc, err := d.s.rawString()
		if err != nil {
			return false, err
		}
		if esc {
			raw = appendUnquoted(nil, raw)
		}
		switch string(raw) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	case c == '-' || isDigit(c):
		num, err := d.s.number()
		if err != nil {
			return false, err
		}
		switch string(num) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	default:
		if err := d.s.skip(); err != nil {
			return false, err
		}
	}
	d.fieldError(KindBadField, field, "want a boolean (or 0/1)", at)
	return false, nil
}

// uuid validates a UUID (8-4-4-4-12 hex digits) and returns it lower-cased;
// MISP writes lowercase, the trust index is keyed by lowercase.
func (d *decoder) uuid(field path, v string, at int) string {
	if !isUUID(v) {
		d.fieldError(KindBadUUID, field, "not a UUID", at)
		return ""
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= 'A' && c <= 'F' {
			b := []byte(v)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return v
}

func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
