//go:build goexperiment.jsonv2

package feed

import (
	"bytes"
	"encoding/json/jsontext"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// This candidate needs encoding/json/jsontext, which Go 1.26 only builds with
// GOEXPERIMENT=jsonv2 (github.com/go-json-experiment/json/jsontext is the same
// code as a module); without it, jsontextCandidates is empty
// (parse_compare_nojsontext_test.go). Run it with
//
//	GOEXPERIMENT=jsonv2 go test -run XXX -bench ParseCandidates ./curator/feed/

func jsontextCandidates() []parseCandidate {
	return []parseCandidate{
		{name: "jsontext", parse: jsontextParse},
		{name: "jsontext_unpooled", parse: func(f []byte) (Message, error) { return jsontextParseWith(f, new(jtState)) }},
	}
}

// jsontextParse is Parse on jsontext, the JSON v2 tokenizer: one validating
// pass, the fields read with ReadToken/ReadValue and the rest skipped with
// ReadValue (which is faster than SkipValue and does not copy from a
// bytes.Buffer). It gives the same Message and the same *ParseError as Parse
// (FuzzParseCandidates) except for the Detail of invalid-JSON errors.
// Decoders are pooled: a new one costs ~400 B in 3 allocations, 9× what
// Parse allocates for a heartbeat. The walk mirrors parse.go's decoder method
// for method (see there for the payload shapes and rules).
func jsontextParse(frame []byte) (Message, error) {
	st := jtPool.Get().(*jtState)
	m, err := jsontextParseWith(frame, st)
	jtPool.Put(st)
	return m, err
}

func jsontextParseWith(frame []byte, st *jtState) (Message, error) {
	topic, kind, payload, m, err := splitFrame(frame)
	if err != nil || kind == KindIgnored {
		return m, err
	}
	st.buf = *bytes.NewBuffer(payload)
	st.dec.Reset(&st.buf, jtOpts...)
	d := jtDecoder{dec: &st.dec, m: m}
	err = d.payload()
	if err == nil {
		err = d.end()
	}
	if err == nil && d.err != nil {
		err = d.err
	}
	st.buf = bytes.Buffer{}
	st.dec.Reset(&st.buf) // a pooled decoder keeps no reference to the frame
	if err != nil {
		if pe, ok := err.(*ParseError); ok {
			pe.Topic = topic
		}
		return Message{}, err
	}
	return d.m, nil
}

// Parse's rules: duplicate names are allowed (the last one counts), invalid
// UTF-8 and lone surrogate escapes become U+FFFD, as in encoding/json.
var jtOpts = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

type jtState struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var jtPool = sync.Pool{New: func() any { return new(jtState) }}

type jtDecoder struct {
	dec *jsontext.Decoder
	m   Message
	err *ParseError
}

func (d *jtDecoder) fieldError(kind ErrorKind, field path, detail string, offset int) {
	if d.err == nil {
		d.err = &ParseError{Kind: kind, Field: field.String(), Offset: offset, Detail: detail}
	}
}

// syntax turns a jsontext error into KindInvalidJSON. The detail is ours:
// jsontext's messages quote payload bytes and JSON pointers.
func (d *jtDecoder) syntax(err error) error {
	off := int(d.dec.InputOffset())
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		off = int(se.ByteOffset)
	}
	detail := "not valid JSON"
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		detail = "unexpected end of payload"
	}
	return &ParseError{Kind: KindInvalidJSON, Offset: off, Detail: detail}
}

// value reads the next value and returns it with its offset.
func (d *jtDecoder) value() (jsontext.Value, int, error) {
	v, err := d.dec.ReadValue()
	if err != nil {
		return nil, 0, d.syntax(err)
	}
	return v, int(d.dec.InputOffset()) - len(v), nil
}

// skip validates and skips a value; ReadValue (no copy from a bytes.Buffer)
// is faster than SkipValue, which goes token by token.
func (d *jtDecoder) skip() error {
	if _, err := d.dec.ReadValue(); err != nil {
		return d.syntax(err)
	}
	return nil
}

// open reads '{' or '['.
func (d *jtDecoder) open() error {
	if _, err := d.dec.ReadToken(); err != nil {
		return d.syntax(err)
	}
	return nil
}

// nextKey returns the next member name of the object being read, or ok false
// once its closing brace is consumed.
func (d *jtDecoder) nextKey() (key []byte, ok bool, err error) {
	if d.dec.PeekKind() == '}' {
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, false, d.syntax(err)
		}
		return nil, false, nil
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return nil, false, d.syntax(err)
	}
	return jtUnquote(v), true, nil
}

// more reports whether the array being read has another element; it consumes
// the closing bracket.
func (d *jtDecoder) more() (bool, error) {
	if d.dec.PeekKind() == ']' {
		if _, err := d.dec.ReadToken(); err != nil {
			return false, d.syntax(err)
		}
		return false, nil
	}
	return true, nil
}

func (d *jtDecoder) end() error {
	_, err := d.dec.ReadToken()
	switch {
	case err == io.EOF:
		return nil
	case err == nil:
		return &ParseError{Kind: KindInvalidJSON, Offset: int(d.dec.InputOffset()), Detail: "data after the top-level value"}
	}
	return d.syntax(err)
}

func (d *jtDecoder) payload() error {
	if d.dec.PeekKind() != '{' {
		if _, _, err := d.value(); err != nil {
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
	return d.skip()
}

func (d *jtDecoder) eventPayload() error {
	if err := d.open(); err != nil {
		return err
	}
	var sawEvent, sawAction bool
	for {
		key, ok, err := d.nextKey()
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
			err = d.skip()
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

func (d *jtDecoder) action() (bool, error) {
	d.m.Action = ""
	v, at, err := d.value()
	if err != nil {
		return false, err
	}
	switch v.Kind() {
	case '"':
		d.m.Action = jtAction(v)
		return true, nil
	case 'n':
		return false, nil
	}
	d.fieldError(KindBadField, path{"action", ""}, "want a string", at)
	return true, nil
}

func (d *jtDecoder) eventValue() (bool, error) {
	m := &d.m
	m.EventUUID, m.EventID, m.RemoteEventID, m.OrgID = "", "", "", ""
	m.HasRow, m.Locked, m.Published, m.Timestamp = false, false, false, 0
	if d.dec.PeekKind() == '{' {
		return true, d.eventRow("Event", false)
	}
	v, at, err := d.value()
	if err != nil {
		return false, err
	}
	switch v.Kind() {
	case '"':
		m.EventUUID = d.uuid(path{"Event", ""}, jtString(v), at)
	case '0':
		if !isID(v) {
			d.fieldError(KindBadID, path{"Event", ""}, "not a non-negative integer", at)
		}
		m.RemoteEventID = string(v)
	case 'n':
		return false, nil
	default:
		d.fieldError(KindBadField, path{"Event", ""}, "want an object, a UUID string or a number", at)
	}
	return true, nil
}

func (d *jtDecoder) eventRow(base string, nested bool) error {
	m := &d.m
	m.HasRow = true
	if err := d.open(); err != nil {
		return err
	}
	sawUUID := false
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch k := string(key); {
		case k == "uuid":
			var v jsontext.Value
			var at int
			v, at, err = d.value()
			if err != nil {
				break
			}
			switch v.Kind() {
			case '"':
				sawUUID = true
				m.EventUUID = d.uuid(path{base, "uuid"}, jtString(v), at)
			case 'n':
			default:
				d.fieldError(KindBadField, path{base, "uuid"}, "want a string", at)
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
			err = d.skip()
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

func (d *jtDecoder) publishPayload() error {
	if err := d.open(); err != nil {
		return err
	}
	sawEvent := false
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if string(key) != "Event" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		d.m = Message{Topic: d.m.Topic, Kind: d.m.Kind, Size: d.m.Size}
		sawEvent = false
		if d.dec.PeekKind() == '{' {
			sawEvent = true
			err = d.eventRow("Event", true)
		} else {
			var v jsontext.Value
			var at int
			if v, at, err = d.value(); err == nil && v.Kind() != 'n' {
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

// object checks that the next value is an object and opens it; ok is false
// when it was null (consumed) or another type (consumed, error recorded).
func (d *jtDecoder) object(field path, allowNull bool) (ok bool, err error) {
	if d.dec.PeekKind() == '{' {
		err := d.open()
		return err == nil, err
	}
	v, at, err := d.value()
	if err != nil {
		return false, err
	}
	if !(allowNull && v.Kind() == 'n') {
		d.fieldError(KindBadField, field, "want an object", at)
	}
	return false, nil
}

func (d *jtDecoder) orgc(base string) error {
	ok, err := d.object(path{base, ""}, true)
	if !ok {
		return err
	}
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "uuid":
			var v string
			var isNull bool
			var at int
			v, isNull, at, err = d.str(path{base, "uuid"})
			d.m.OrgcUUID = ""
			if err == nil && !isNull && at >= 0 {
				d.m.OrgcUUID = d.uuid(path{base, "uuid"}, v, at)
			}
		case "name":
			d.m.OrgcName, _, _, err = d.str(path{base, "name"})
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *jtDecoder) tagList(base, elem string, eventTag bool) error {
	switch d.dec.PeekKind() {
	case '[':
		if err := d.open(); err != nil {
			return err
		}
	default:
		v, at, err := d.value()
		if err != nil || v.Kind() == 'n' {
			return err
		}
		d.fieldError(KindBadField, path{base, ""}, "want an array", at)
		return nil
	}
	d.m.HasTags = true
	for {
		more, err := d.more()
		if err != nil || !more {
			return err
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

func (d *jtDecoder) eventTagElem(base, tagBase string) (t Tag, named bool, err error) {
	if ok, err := d.object(path{base, ""}, false); !ok {
		return t, false, err
	}
	sawTag := false
	for {
		key, ok, err := d.nextKey()
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
			if d.dec.PeekKind() == '{' {
				var inner Tag
				inner, sawTag, err = d.tagObject(tagBase, false)
				t.Name = inner.Name
			} else {
				sawTag, t.Name = false, ""
				_, err = d.object(path{tagBase, ""}, false)
			}
		default:
			err = d.skip()
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

func (d *jtDecoder) tagObject(base string, withLocal bool) (t Tag, named bool, err error) {
	if ok, err := d.object(path{base, ""}, false); !ok {
		return t, false, err
	}
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return t, false, err
		}
		if !ok {
			break
		}
		switch k := string(key); {
		case k == "name":
			var isNull bool
			t.Name, isNull, _, err = d.str(path{base, "name"})
			named = err == nil && !isNull
		case withLocal && k == "local":
			t.Local, err = d.boolish(path{base, "local"})
		default:
			err = d.skip()
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

func (d *jtDecoder) tagPayload() error {
	if err := d.open(); err != nil {
		return err
	}
	var sawTag, sawAction, sawName bool
	for {
		key, ok, err := d.nextKey()
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
			err = d.skip()
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

func (d *jtDecoder) tagMessageTag() (sawTag, sawName bool, err error) {
	if d.dec.PeekKind() != '{' {
		v, at, err := d.value()
		if err != nil || v.Kind() == 'n' {
			return false, false, err
		}
		d.fieldError(KindBadField, path{"Tag", ""}, "want an object", at)
		return true, true, nil
	}
	if err := d.open(); err != nil {
		return false, false, err
	}
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return false, false, err
		}
		if !ok {
			return true, sawName, nil
		}
		switch string(key) {
		case "name":
			var isNull bool
			d.m.TagName, isNull, _, err = d.str(path{"Tag.name", ""})
			sawName = err == nil && !isNull
		case "local":
			d.m.TagLocal, err = d.boolish(path{"Tag.local", ""})
		case "event_id":
			d.m.EventID, err = d.id(path{"Tag.event_id", ""})
		case "attribute_id":
			d.m.AttributeID, err = d.id(path{"Tag.attribute_id", ""})
		default:
			err = d.skip()
		}
		if err != nil {
			return false, false, err
		}
	}
}

func (d *jtDecoder) heartbeatPayload() error {
	if err := d.open(); err != nil {
		return err
	}
	for {
		key, ok, err := d.nextKey()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "status":
			d.m.Heartbeat.Status, _, _, err = d.str(path{"status", ""})
		case "uptime":
			d.m.Heartbeat.Uptime, err = d.integer(path{"uptime", ""})
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

// jtString decodes a JSON string value as encoding/json does: jsontext's
// AppendUnquote replaces invalid UTF-8 and lone surrogates with U+FFFD (and
// says so in an error, which does not matter here).
func jtString(v jsontext.Value) string {
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw)
	}
	b, _ := jsontext.AppendUnquote(nil, v)
	return string(b)
}

// jtUnquote is jtString without the string allocation when there is no escape.
func jtUnquote(v jsontext.Value) []byte {
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	b, _ := jsontext.AppendUnquote(nil, v)
	return b
}

// str reads a string or null; at is -1 when the value had the wrong type.
func (d *jtDecoder) str(field path) (s string, isNull bool, at int, err error) {
	v, at, err := d.value()
	if err != nil {
		return "", false, 0, err
	}
	switch v.Kind() {
	case '"':
		return jtString(v), false, at, nil
	case 'n':
		return "", true, at, nil
	}
	d.fieldError(KindBadField, field, "want a string", at)
	return "", false, -1, nil
}

func (d *jtDecoder) id(field path) (string, error) {
	text, _, err := d.idBytes(field)
	if err != nil || text == nil {
		return "", err
	}
	return string(text), nil
}

func (d *jtDecoder) idBytes(field path) ([]byte, int, error) {
	v, at, err := d.value()
	if err != nil {
		return nil, 0, err
	}
	var text []byte
	switch v.Kind() {
	case '"':
		text = jtUnquote(v)
	case '0':
		text = v
	case 'n':
		return nil, at, nil
	default:
		d.fieldError(KindBadID, field, "want a string or a number", at)
		return nil, at, nil
	}
	if !isID(text) {
		d.fieldError(KindBadID, field, "not a non-negative integer", at)
		return nil, at, nil
	}
	return text, at, nil
}

func (d *jtDecoder) integer(field path) (int64, error) {
	text, at, err := d.idBytes(field)
	if err != nil || text == nil {
		return 0, err
	}
	var n int64
	for _, c := range text {
		if n > (1<<63-1-int64(c-'0'))/10 {
			d.fieldError(KindBadField, field, "integer out of range", at)
			return 0, nil
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func (d *jtDecoder) boolish(field path) (bool, error) {
	v, at, err := d.value()
	if err != nil {
		return false, err
	}
	switch v.Kind() {
	case 't':
		return true, nil
	case 'f', 'n':
		return false, nil
	case '"':
		switch string(jtUnquote(v)) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	case '0':
		switch string(v) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	}
	d.fieldError(KindBadField, field, "want a boolean (or 0/1)", at)
	return false, nil
}

func (d *jtDecoder) uuid(field path, v string, at int) string {
	if !isUUID(v) {
		d.fieldError(KindBadUUID, field, "not a UUID", at)
		return ""
	}
	return lowerUUID(v)
}

// jtAction returns the constant for a known action (no allocation).
func jtAction(v jsontext.Value) Action {
	raw := jtUnquote(v)
	for _, a := range [...]Action{ActionAdd, ActionEdit, ActionDelete, ActionAddFromConnectedServer,
		ActionEditFromConnectedServer, ActionTagAttachedToEvent, ActionTagDetachedFromEvent} {
		if string(raw) == string(a) {
			return a
		}
	}
	return Action(jtString(v))
}
