package feed

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse checks Parse against a reference built on encoding/json: for every
// input, both must agree on whether the frame is acceptable and, when it is, on
// every field. Inputs whose JSON has duplicate object keys are only checked for
// not crashing (encoding/json keeps the last duplicate; Parse may report an
// error found in an earlier one).
//
// The seed corpus (every captured frame plus the malformed ones of the unit
// tests) runs as part of `go test`; `go test -fuzz FuzzParse` explores further.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "frames", "*.frame"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `misp_json_event`, `misp_json_event `, `misp_json_self {}`, `misp_json_self {"uptime":1e3}`,
		`misp_json_event {"Event":4711,"Server":2,"action":"add_from_connected_server"}`,
		`misp_json_event {"Event":"5A3C2FCD-8328-42BB-A95E-4F4402DE0B81","action":"x"}`,
		`misp_json {"Event":{"uuid":"5a3c2fcd-8328-42bb-a95e-4f4402de0b81","Tag":[{"name":"a\ud800b","local":"1"}]}}`,
		`misp_json_tag {"Tag":{"name":"\u0074","event_id":"\u0031","local":"\u0031"},"action":"attached to event"}`,
		`misp_json_event {"Event":{"uuid":"5a3c2fcd-8328-42bb-a95e-4f4402de0b81","uuid":"x"},"action":"add"}`,
		"misp_json_self {\"status\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		got, err := Parse(frame)
		if err != nil {
			if ErrorKindOf(err) == "" {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			if !reflect.DeepEqual(got, Message{}) {
				t.Fatalf("error with a non-zero message: %+v", got)
			}
		} else {
			checkInvariants(t, frame, got)
		}
		sp := bytes.IndexByte(frame, ' ')
		if sp >= 0 && hasDuplicateKeys(frame[sp+1:]) {
			return
		}
		want, ok := referenceParse(frame)
		switch {
		case ok && err != nil:
			t.Fatalf("reference accepts, Parse rejects: %v\nreference: %+v", err, want)
		case !ok && err == nil:
			t.Fatalf("reference rejects, Parse accepts: %+v", got)
		case ok && !reflect.DeepEqual(got, want):
			t.Fatalf("field mismatch\n got %+v\nwant %+v", got, want)
		}
		if sp >= 0 && ErrorKindOf(err) == KindInvalidJSON {
			if _, _, known := lookupTopic(frame[:sp]); known && json.Valid(frame[sp+1:]) {
				t.Fatalf("Parse says invalid JSON, encoding/json says valid: %v", err)
			}
		}
	})
}

func checkInvariants(t *testing.T, frame []byte, m Message) {
	t.Helper()
	if m.Size != len(frame) {
		t.Fatalf("Size %d, frame %d bytes", m.Size, len(frame))
	}
	for _, u := range []string{m.EventUUID, m.OrgcUUID} {
		if u != "" && (!isUUID(u) || strings.ToLower(u) != u) {
			t.Fatalf("UUID %q not valid and lower-case", u)
		}
	}
	for _, id := range []string{m.EventID, m.RemoteEventID, m.ServerID, m.AttributeID} {
		if id != "" && !isID([]byte(id)) {
			t.Fatalf("id %q is not decimal digits", id)
		}
	}
	if m.Kind == KindEvent && m.EventUUID == "" && m.RemoteEventID == "" {
		t.Fatalf("event message without UUID or remote id: %+v", m)
	}
}

// referenceParse is an independent implementation of Parse's documented rules
// on top of encoding/json (maps, UseNumber). ok reports acceptance.
func referenceParse(frame []byte) (Message, bool) {
	topicBytes, payload, found := bytes.Cut(frame, []byte(" "))
	if !found {
		return Message{}, false
	}
	kinds := map[string]Kind{
		"misp_json": KindPublish, "misp_json_event": KindEvent, "misp_json_tag": KindTag,
		"misp_json_self": KindHeartbeat, "misp_json_attribute": KindIgnored, "misp_json_object": KindIgnored,
		"misp_json_object_reference": KindIgnored, "misp_json_sighting": KindIgnored,
		"misp_json_organisation": KindIgnored, "misp_json_user": KindIgnored,
		"misp_json_conversation": KindIgnored, "misp_json_audit": KindIgnored,
		"misp_json_warninglist": KindIgnored, "misp_json_workflow": KindIgnored,
	}
	kind, known := kinds[string(topicBytes)]
	if !known {
		return Message{}, false
	}
	m := Message{Topic: Topic(topicBytes), Kind: kind, Size: len(frame)}
	if kind == KindIgnored {
		return m, true
	}
	if !json.Valid(payload) {
		return Message{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return Message{}, false
	}
	r, isObj := root.(map[string]any)
	if !isObj {
		return Message{}, false
	}
	v := &refValidator{ok: true}
	switch kind {
	case KindEvent:
		m.Action = Action(v.requiredString(r, "action"))
		switch e := r["Event"].(type) {
		case nil:
			v.ok = false
		case map[string]any:
			v.row(&m, e, false)
		case string:
			m.EventUUID = v.uuid(e)
		case json.Number:
			if !isID([]byte(e)) {
				v.ok = false
			}
			m.RemoteEventID = string(e)
		default:
			v.ok = false
		}
		m.ServerID = v.id(r["Server"])
		v.orgc(&m, r["Orgc"])
		v.tags(&m, r["EventTag"], true)
	case KindPublish:
		e, isMap := r["Event"].(map[string]any)
		if !isMap {
			return Message{}, false
		}
		v.row(&m, e, true)
	case KindTag:
		m.Action = Action(v.requiredString(r, "action"))
		tag, isMap := r["Tag"].(map[string]any)
		if !isMap {
			return Message{}, false
		}
		m.TagName = v.requiredString(tag, "name")
		m.TagLocal = v.boolish(tag["local"])
		m.EventID = v.id(tag["event_id"])
		m.AttributeID = v.id(tag["attribute_id"])
		if m.Action == ActionTagAttachedToEvent || m.Action == ActionTagDetachedFromEvent {
			m.Kind = KindEventTag
			if m.EventID == "" {
				v.ok = false
			}
		}
	case KindHeartbeat:
		m.Heartbeat.Status = v.optString(r["status"])
		m.Heartbeat.Uptime = v.integer(r["uptime"])
	}
	if !v.ok {
		return Message{}, false
	}
	return m, true
}

type refValidator struct{ ok bool }

func (v *refValidator) requiredString(obj map[string]any, key string) string {
	s, isStr := obj[key].(string)
	if !isStr {
		v.ok = false
	}
	return s
}

func (v *refValidator) optString(x any) string {
	switch s := x.(type) {
	case nil:
		return ""
	case string:
		return s
	}
	v.ok = false
	return ""
}

func (v *refValidator) uuid(s string) string {
	if !isUUID(s) {
		v.ok = false
		return ""
	}
	return strings.ToLower(s)
}

func (v *refValidator) id(x any) string {
	var text string
	switch s := x.(type) {
	case nil:
		return ""
	case string:
		text = s
	case json.Number:
		text = string(s)
	default:
		v.ok = false
		return ""
	}
	if !isID([]byte(text)) {
		v.ok = false
		return ""
	}
	return text
}

func (v *refValidator) integer(x any) int64 {
	text := v.id(x)
	if text == "" {
		return 0
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		v.ok = false
	}
	return n
}

func (v *refValidator) boolish(x any) bool {
	switch b := x.(type) {
	case nil:
		return false
	case bool:
		return b
	case string:
		if b == "0" || b == "1" {
			return b == "1"
		}
	case json.Number:
		if b == "0" || b == "1" {
			return b == "1"
		}
	}
	v.ok = false
	return false
}

func (v *refValidator) row(m *Message, e map[string]any, nested bool) {
	m.HasRow = true
	switch u := e["uuid"].(type) {
	case string:
		m.EventUUID = v.uuid(u)
	default:
		v.ok = false
	}
	m.EventID = v.id(e["id"])
	m.OrgID = v.id(e["org_id"])
	m.Locked = v.boolish(e["locked"])
	m.Published = v.boolish(e["published"])
	m.Timestamp = v.integer(e["timestamp"])
	if nested {
		v.orgc(m, e["Orgc"])
		v.tags(m, e["Tag"], false)
	}
}

func (v *refValidator) orgc(m *Message, x any) {
	switch o := x.(type) {
	case nil:
	case map[string]any:
		switch u := o["uuid"].(type) {
		case nil:
		case string:
			m.OrgcUUID = v.uuid(u)
		default:
			v.ok = false
		}
		m.OrgcName = v.optString(o["name"])
	default:
		v.ok = false
	}
}

func (v *refValidator) tags(m *Message, x any, eventTag bool) {
	switch list := x.(type) {
	case nil:
		return
	case []any:
		m.HasTags = true
		for _, el := range list {
			obj, isMap := el.(map[string]any)
			if !isMap {
				v.ok = false
				continue
			}
			var t Tag
			if eventTag {
				t.Local = v.boolish(obj["local"])
				inner, isMap := obj["Tag"].(map[string]any)
				if !isMap {
					v.ok = false
					continue
				}
				t.Name = v.requiredString(inner, "name")
			} else {
				t.Name = v.requiredString(obj, "name")
				t.Local = v.boolish(obj["local"])
			}
			m.Tags = append(m.Tags, t)
		}
	default:
		v.ok = false
	}
}

// hasDuplicateKeys reports whether any JSON object in payload repeats a key
// (after unescaping), or the payload is not valid JSON.
func hasDuplicateKeys(payload []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(payload))
	type frame struct {
		obj       bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			return false // invalid JSON: the reference rejects it anyway
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expectKey {
			if d, isDelim := tok.(json.Delim); isDelim && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.expectKey = false
			continue
		}
		if top != nil && top.obj {
			top.expectKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].expectKey = true
			}
		}
	}
}
