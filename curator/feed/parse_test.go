package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFrame(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "frames", name+".frame"))
	if err != nil {
		t.Fatalf("read captured frame: %v", err)
	}
	return b
}

// Expected values below were read from the captures with Python's json module
// (see testdata/frames/README.md for where each frame comes from).
func TestParseCapturedFrames(t *testing.T) {
	const (
		hostOrg     = "997004a6-e769-4ab8-b467-a1ca84cf0666" // ORGNAME, instance A
		partnerHigh = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
		partnerSub  = "ae01a99a-c08b-4ac3-9e55-69166dad84e9"
		e1          = "853475bb-cc6b-4e07-b345-ed9e47520557"
		local       = "d2b6214c-3610-45f7-b4f6-03255121e6aa"
	)
	localEditTags := []Tag{
		{Name: "tlp:amber"}, {Name: `admiralty-scale:source-reliability="b"`},
		{Name: "client-verification:local-tag", Local: true}, {Name: `workflow:state="complete"`},
		{Name: "client-verification:global-tag"}, {Name: "tlp:green"},
		{Name: `admiralty-scale:information-credibility="3"`},
	}
	tests := []struct {
		frame string
		want  Message
	}{
		{"event_add_local", Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAdd,
			EventUUID: local, EventID: "1", OrgID: "1", HasRow: true, Timestamp: 1795726645,
			OrgcUUID: hostOrg, OrgcName: "ORGNAME", HasTags: true}},
		{"event_add_pulled_row", Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAdd,
			EventUUID: "468920c3-40d5-470d-b8b7-9e703430c906", EventID: "11", OrgID: "1", HasRow: true,
			Locked: true, Published: true, Timestamp: 1795727848,
			OrgcUUID: partnerSub, OrgcName: "PARTNER-SUB", HasTags: true}},
		{"event_add_pushed_row", Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAdd,
			EventUUID: "80c2942d-6937-4e47-96f0-986d4d74066e", EventID: "16", OrgID: "2", HasRow: true,
			Locked: true, Published: true, Timestamp: 1795728088,
			OrgcUUID: partnerHigh, OrgcName: "PARTNER-HIGH", HasTags: true}},
		{"event_edit_local_tags", Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionEdit,
			EventUUID: local, EventID: "1", OrgID: "1", HasRow: true, Timestamp: 1795726686,
			OrgcUUID: hostOrg, OrgcName: "ORGNAME", HasTags: true, Tags: localEditTags}},
		{"event_edit_pulled_local_tags_null_reltype", Message{Topic: TopicEvent, Kind: KindEvent,
			Action: ActionEdit, EventUUID: e1, EventID: "13", OrgID: "1", HasRow: true, Locked: true,
			Published: true, Timestamp: 1795728128, OrgcUUID: partnerHigh, OrgcName: "PARTNER-HIGH",
			HasTags: true, Tags: []Tag{{Name: "tlp:green"},
				{Name: `admiralty-scale:source-reliability="a"`, Local: true},
				{Name: `workflow:state="complete"`, Local: true}, {Name: `workflow:state="incomplete"`}}}},
		{"event_delete", Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionDelete,
			EventUUID: "be1842d5-661c-407d-b383-2a73e03eb2df", EventID: "2", OrgID: "1", HasRow: true,
			Timestamp: 1795726727}},
		{"event_add_from_server_uuid", Message{Topic: TopicEvent, Kind: KindEvent,
			Action: ActionAddFromConnectedServer, EventUUID: "468920c3-40d5-470d-b8b7-9e703430c906", ServerID: "1"}},
		{"event_edit_from_server_uuid", Message{Topic: TopicEvent, Kind: KindEvent,
			Action: ActionEditFromConnectedServer, EventUUID: e1, ServerID: "1"}},
		{"event_add_from_server_numeric", Message{Topic: TopicEvent, Kind: KindEvent,
			Action: ActionAddFromConnectedServer, RemoteEventID: "5", ServerID: "1"}},
		{"event_edit_from_server_numeric", Message{Topic: TopicEvent, Kind: KindEvent,
			Action: ActionEditFromConnectedServer, RemoteEventID: "3", ServerID: "1"}},
		{"publish_local", Message{Topic: TopicPublish, Kind: KindPublish, EventUUID: local,
			EventID: "1", OrgID: "1", HasRow: true, Timestamp: 1795726686, OrgcUUID: hostOrg, OrgcName: "ORGNAME",
			HasTags: true, Tags: localEditTags}},
		{"publish_pulled_local_tags", Message{Topic: TopicPublish, Kind: KindPublish, EventUUID: e1,
			EventID: "13", OrgID: "1", HasRow: true, Locked: true, Timestamp: 1795727979, OrgcUUID: partnerHigh,
			OrgcName: "PARTNER-HIGH", HasTags: true, Tags: []Tag{{Name: "tlp:green"},
				{Name: `admiralty-scale:source-reliability="a"`, Local: true},
				{Name: `workflow:state="complete"`, Local: true}}}},
		{"tag_attached_to_event_local", Message{Topic: TopicTag, Kind: KindEventTag,
			Action: ActionTagAttachedToEvent, TagName: `admiralty-scale:source-reliability="a"`,
			TagLocal: true, EventID: "13"}},
		{"tag_attached_to_event_global", Message{Topic: TopicTag, Kind: KindEventTag,
			Action: ActionTagAttachedToEvent, TagName: "tlp:green", EventID: "11"}},
		{"tag_detached_from_event", Message{Topic: TopicTag, Kind: KindEventTag,
			Action: ActionTagDetachedFromEvent, TagName: `workflow:state="incomplete"`, EventID: "13"}},
		{"tag_attached_to_attribute", Message{Topic: TopicTag, Kind: KindTag,
			Action: "attached to attribute", TagName: `admiralty-scale:information-credibility="2"`,
			EventID: "1", AttributeID: "4"}},
		{"tag_add", Message{Topic: TopicTag, Kind: KindTag, Action: ActionAdd,
			TagName: `admiralty-scale:source-reliability="a"`}},
		{"self_heartbeat", Message{Topic: TopicSelf, Kind: KindHeartbeat,
			Heartbeat: Heartbeat{Status: "I feel FANTASTIC and I'm still alive.", Uptime: 234}}},
		{"organisation", Message{Topic: TopicOrganisation, Kind: KindIgnored}},
		{"audit", Message{Topic: TopicAudit, Kind: KindIgnored}},
		{"attribute_add", Message{Topic: TopicAttribute, Kind: KindIgnored}},
		{"user_add", Message{Topic: TopicUser, Kind: KindIgnored}},
		{"warninglist_add", Message{Topic: TopicWarninglist, Kind: KindIgnored}},
		{"sighting_add", Message{Topic: TopicSighting, Kind: KindIgnored}},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			frame := readFrame(t, tt.frame)
			got, err := Parse(frame)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Size = len(frame)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse mismatch\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Shapes documented in misp-api.md §1 (and variants the docs say to expect)
// that the captures do not contain.
func TestParseDocumentedShapes(t *testing.T) {
	const u = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"
	const org = "55f6ea5e-2c60-40e5-964f-47a8950d210f"
	tests := []struct {
		name  string
		frame string
		want  Message
	}{
		{"the §1.7a realistic add example",
			`misp_json_event {"Event":{"id":"1234","org_id":"1","date":"2024-10-20","info":"OSINT - Example campaign","user_id":"1","uuid":"` + u + `","published":true,"analysis":"2","attribute_count":"0","orgc_id":"7","timestamp":"1729500000","distribution":"0","sharing_group_id":"0","proposal_email_lock":false,"locked":true,"threat_level_id":"3","publish_timestamp":"0","sighting_timestamp":"0","disable_correlation":false,"extends_uuid":"","protected":false},"Orgc":{"id":"7","uuid":"` + org + `","name":"CIRCL"},"EventTag":[],"action":"add"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAdd, EventUUID: u, EventID: "1234", OrgID: "1",
				HasRow: true, Locked: true, Published: true, Timestamp: 1729500000, OrgcUUID: org,
				OrgcName: "CIRCL", HasTags: true}},
		{"the §1.7a edit EventTag example",
			`misp_json_event {"Event":{"id":"1234","uuid":"` + u + `"},"EventTag":[{"id":"9801","event_id":"1234","tag_id":"45","local":true,"relationship_type":null,"Tag":{"id":"45","name":"workflow:state=\"incomplete\"","colour":"#d40000","exportable":true}}],"action":"edit"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionEdit, EventUUID: u, EventID: "1234",
				HasRow: true, HasTags: true, Tags: []Tag{{Name: `workflow:state="incomplete"`, Local: true}}}},
		{"numeric remote Event id (pull by id, §1.7c)",
			`misp_json_event {"Event":4711,"Server":"2","action":"add_from_connected_server"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAddFromConnectedServer,
				RemoteEventID: "4711", ServerID: "2"}},
		{"ids, timestamp and Server as JSON numbers",
			`misp_json_event {"Event":{"id":12,"uuid":"` + u + `","timestamp":1729500000},"Server":2,"action":"edit"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionEdit, EventUUID: u, EventID: "12",
				HasRow: true, Timestamp: 1729500000, ServerID: "2"}},
		{"upper-case UUIDs are lower-cased",
			`misp_json_event {"Event":"5A3C2FCD-8328-42BB-A95E-4F4402DE0B81","Server":"1","action":"edit_from_connected_server"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionEditFromConnectedServer, EventUUID: u, ServerID: "1"}},
		{"tinyint flags as 0/1 and nulls",
			`misp_json_event {"Event":{"uuid":"` + u + `","locked":1,"published":"0","protected":null,"id":null},"Orgc":null,"EventTag":null,"action":"edit"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionEdit, EventUUID: u, HasRow: true, Locked: true}},
		{"white space anywhere (json.dumps style)",
			"misp_json_event {\n \"Event\" : \"" + u + "\" ,\t\"Server\" : \"1\" , \"action\" : \"add_from_connected_server\" \r\n}\n",
			Message{Topic: TopicEvent, Kind: KindEvent, Action: ActionAddFromConnectedServer, EventUUID: u, ServerID: "1"}},
		{"unknown actions pass through",
			`misp_json_event {"Event":"` + u + `","action":"publish_from_the_future"}`,
			Message{Topic: TopicEvent, Kind: KindEvent, Action: "publish_from_the_future", EventUUID: u}},
		{"escaped tag names and unicode",
			`misp_json {"Event":{"uuid":"` + u + `","Orgc":{"uuid":"` + org + `","name":"CIRCL \u00e9\ud83d\ude00"},"Tag":[{"name":"a\\b\/c\"d","local":false},{"name":"x","local":1}],"Attribute":[{"value":"}]\"["}]}}`,
			Message{Topic: TopicPublish, Kind: KindPublish, EventUUID: u, HasRow: true, OrgcUUID: org,
				OrgcName: "CIRCL é😀", HasTags: true, Tags: []Tag{{Name: `a\b/c"d`}, {Name: "x", Local: true}}}},
		{"misp_json Orgc outside Event is not the creator org",
			`misp_json {"Orgc":{"uuid":"` + org + `"},"Event":{"uuid":"` + u + `"}}`,
			Message{Topic: TopicPublish, Kind: KindPublish, EventUUID: u, HasRow: true}},
		{"orjson compact heartbeat",
			`misp_json_self {"status":"And believe me I am still alive.","uptime":262}`,
			Message{Topic: TopicSelf, Kind: KindHeartbeat, Heartbeat: Heartbeat{Status: "And believe me I am still alive.", Uptime: 262}}},
		{"tag attached with numeric event id",
			`misp_json_tag {"Tag":{"name":"tlp:red","event_id":99,"local":0},"action":"attached to event"}`,
			Message{Topic: TopicTag, Kind: KindEventTag, Action: ActionTagAttachedToEvent, TagName: "tlp:red", EventID: "99"}},
		{"ignored topics are not inspected",
			`misp_json_audit this is not even JSON`,
			Message{Topic: TopicAudit, Kind: KindIgnored}},
		{"conversation and workflow topics are known",
			`misp_json_workflow {}`,
			Message{Topic: TopicWorkflow, Kind: KindIgnored}},
		{"object_reference is not object (exact topic compare)",
			`misp_json_object_reference {}`,
			Message{Topic: TopicObjectReference, Kind: KindIgnored}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.frame))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Size = len(tt.frame)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse mismatch\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRejectsMalformedFrames(t *testing.T) {
	const u = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"
	// secret marks payload content that must never show up in an error.
	const secret = "s3cr3t-payload-content"
	tests := []struct {
		name  string
		frame string
		kind  ErrorKind
		field string
	}{
		{"empty frame", ``, KindNoSpace, ""},
		{"no space", `misp_json_event{"Event":"` + secret + `"}`, KindNoSpace, ""},
		{"unknown topic", `misp_json_eventx {}`, KindUnknownTopic, ""},
		{"empty topic", ` {"Event":{}}`, KindUnknownTopic, ""},
		{"topic is a prefix only", `misp_jso {}`, KindUnknownTopic, ""},
		{"empty payload", `misp_json_event `, KindInvalidJSON, ""},
		{"truncated JSON", `misp_json_event {"Event":"` + u + `","action":"ad`, KindInvalidJSON, ""},
		{"trailing garbage", `misp_json_event {"Event":"` + u + `","action":"add"} x`, KindInvalidJSON, ""},
		{"two JSON values", `misp_json_self {} {}`, KindInvalidJSON, ""},
		{"trailing comma", `misp_json_event {"Event":"` + u + `","action":"add",}`, KindInvalidJSON, ""},
		{"bad escape", `misp_json_self {"status":"\x"}`, KindInvalidJSON, ""},
		{"control character in string", "misp_json_self {\"status\":\"a\tb\"}", KindInvalidJSON, ""},
		{"leading zero", `misp_json_event {"Event":0123,"action":"add_from_connected_server"}`, KindInvalidJSON, ""},
		{"invalid JSON wins over a field error", `misp_json_event {"Event":"not-a-uuid","action":"add"`, KindInvalidJSON, ""},
		{"invalid JSON inside a skipped attribute", `misp_json {"Event":{"uuid":"` + u + `","Attribute":[{"value":tru}]}}`, KindInvalidJSON, ""},
		{"payload is an array", `misp_json_event ["` + secret + `"]`, KindUnexpectedJSON, ""},
		{"payload is a string", `misp_json_self "alive"`, KindUnexpectedJSON, ""},
		{"missing Event", `misp_json_event {"action":"add","Server":"1"}`, KindMissingEvent, "Event"},
		{"null Event", `misp_json_event {"Event":null,"action":"add"}`, KindMissingEvent, "Event"},
		{"publish without Event", `misp_json {"event":{"uuid":"` + u + `"}}`, KindMissingEvent, "Event"},
		{"missing action", `misp_json_event {"Event":"` + u + `"}`, KindMissingField, "action"},
		{"action not a string", `misp_json_event {"Event":"` + u + `","action":1}`, KindBadField, "action"},
		{"Event UUID string is not a UUID", `misp_json_event {"Event":"` + secret + `","action":"add_from_connected_server"}`, KindBadUUID, "Event"},
		{"UUID with a bad hex digit", `misp_json_event {"Event":"5a3c2fcd-8328-42bb-a95e-4f4402de0b8g","action":"add_from_connected_server"}`, KindBadUUID, "Event"},
		{"UUID without hyphens", `misp_json_event {"Event":"5a3c2fcd832842bba95e4f4402de0b81xxxx","action":"add_from_connected_server"}`, KindBadUUID, "Event"},
		{"row without uuid", `misp_json_event {"Event":{"id":"1"},"action":"add"}`, KindBadUUID, "Event.uuid"},
		{"Orgc uuid bad", `misp_json_event {"Event":{"uuid":"` + u + `"},"Orgc":{"uuid":"x"},"action":"add"}`, KindBadUUID, "Orgc.uuid"},
		{"publish Orgc uuid bad", `misp_json {"Event":{"uuid":"` + u + `","Orgc":{"uuid":"` + secret + `"}}}`, KindBadUUID, "Event.Orgc.uuid"},
		{"negative remote id", `misp_json_event {"Event":-5,"action":"add_from_connected_server"}`, KindBadID, "Event"},
		{"fractional remote id", `misp_json_event {"Event":5.5,"action":"add_from_connected_server"}`, KindBadID, "Event"},
		{"non-numeric row id", `misp_json_event {"Event":{"uuid":"` + u + `","id":"` + secret + `"},"action":"add"}`, KindBadID, "Event.id"},
		{"Server id an object", `misp_json_event {"Event":"` + u + `","Server":{},"action":"add_from_connected_server"}`, KindBadID, "Server"},
		{"Event is a boolean", `misp_json_event {"Event":true,"action":"add"}`, KindBadField, "Event"},
		{"locked is a word", `misp_json_event {"Event":{"uuid":"` + u + `","locked":"yes"},"action":"add"}`, KindBadField, "Event.locked"},
		{"timestamp out of range", `misp_json_event {"Event":{"uuid":"` + u + `","timestamp":"99999999999999999999"},"action":"add"}`, KindBadField, "Event.timestamp"},
		{"EventTag not an array", `misp_json_event {"Event":{"uuid":"` + u + `"},"EventTag":{},"action":"add"}`, KindBadField, "EventTag"},
		{"EventTag element without Tag", `misp_json_event {"Event":{"uuid":"` + u + `"},"EventTag":[{"local":true}],"action":"add"}`, KindMissingField, "EventTag[].Tag"},
		{"tag without name", `misp_json {"Event":{"uuid":"` + u + `","Tag":[{"local":true}]}}`, KindMissingField, "Event.Tag[].name"},
		{"tag message without Tag", `misp_json_tag {"action":"attached to event"}`, KindMissingField, "Tag"},
		{"event tag without event_id", `misp_json_tag {"Tag":{"name":"tlp:red"},"action":"attached to event"}`, KindMissingField, "Tag.event_id"},
		{"heartbeat uptime not a number", `misp_json_self {"status":"alive","uptime":[]}`, KindBadID, "uptime"},
		{"nesting deeper than encoding/json allows", `misp_json {"Event":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`, KindInvalidJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.frame))
			if err == nil {
				t.Fatalf("Parse accepted the frame: %+v", m)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			if pe.Kind != tt.kind || ErrorKindOf(err) != tt.kind {
				t.Errorf("kind = %q, want %q (%v)", pe.Kind, tt.kind, err)
			}
			if pe.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", pe.Field, tt.field, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks payload content: %v", err)
			}
			if !reflect.DeepEqual(m, Message{}) {
				t.Errorf("a rejected frame returned a non-zero Message: %+v", m)
			}
		})
	}
}

func TestParseErrorNamesTheTopicAndOffset(t *testing.T) {
	_, err := Parse([]byte(`misp_json_event {"Event":"x","action":"add"}`))
	want := `parse ZeroMQ frame (topic misp_json_event): bad_uuid: field Event: not a UUID (payload offset 9)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	_, err = Parse([]byte("misp_json_nope" + strings.Repeat("x", 500) + " {}"))
	if err == nil || len(err.Error()) > 160 {
		t.Fatalf("an unknown topic must be quoted short, got %v", err)
	}
}

func TestParseSizeLimit(t *testing.T) {
	frame := readFrame(t, "publish_local")
	p := Parser{MaxSize: len(frame) - 1}
	if _, err := p.Parse(frame); ErrorKindOf(err) != KindTooLarge {
		t.Fatalf("frame one byte over the limit: err = %v, want %s", err, KindTooLarge)
	}
	p.MaxSize = len(frame)
	if _, err := p.Parse(frame); err != nil {
		t.Fatalf("frame exactly at the limit: %v", err)
	}
}

// bigPublishFrame builds a misp_json frame of at least size bytes from the
// captured publish of a pulled event by repeating its attributes (with long
// comments), as a busy event with thousands of attributes would look. The
// event's keys come out sorted, which puts "Tag" after "Attribute".
func bigPublishFrame(t testing.TB, size int) []byte {
	t.Helper()
	frame := readFrame(t, "publish_pulled_local_tags")
	var payload struct {
		Event map[string]json.RawMessage
	}
	if err := json.Unmarshal(frame[len("misp_json "):], &payload); err != nil {
		t.Fatal(err)
	}
	var attrs []map[string]any
	if err := json.Unmarshal(payload.Event["Attribute"], &attrs); err != nil {
		t.Fatal(err)
	}
	// Each attribute without its id, as JSON: `"category":...}`.
	var tails [][]byte
	for _, a := range attrs {
		delete(a, "id")
		a["comment"] = strings.Repeat("lorem ipsum \"quoted\" \\ ", 10)
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		tails = append(tails, b[1:])
	}
	var list bytes.Buffer
	list.WriteByte('[')
	for i := 0; list.Len() < size; i++ {
		if i > 0 {
			list.WriteByte(',')
		}
		fmt.Fprintf(&list, `{"id":"%d",`, i)
		list.Write(tails[i%len(tails)])
	}
	list.WriteByte(']')
	payload.Event["Attribute"] = list.Bytes()
	out, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("misp_json "), out...)
}

func TestParseHugePublishFrame(t *testing.T) {
	frame := bigPublishFrame(t, 10<<20)
	got, err := Parse(frame)
	if err != nil {
		t.Fatalf("Parse %d bytes: %v", len(frame), err)
	}
	// encoding/json sorts the map keys of the rebuilt event, so "Tag" now sits
	// after "Attribute": the parser must still find it.
	want := Message{Topic: TopicPublish, Kind: KindPublish, Size: len(frame),
		EventUUID: "853475bb-cc6b-4e07-b345-ed9e47520557", EventID: "13", OrgID: "1", HasRow: true, Locked: true,
		Timestamp: 1795727979, OrgcUUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", OrgcName: "PARTNER-HIGH",
		HasTags: true, Tags: []Tag{{Name: "tlp:green"},
			{Name: `admiralty-scale:source-reliability="a"`, Local: true},
			{Name: `workflow:state="complete"`, Local: true}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse mismatch\n got %+v\nwant %+v", got, want)
	}
	if bytes.Index(frame, []byte(`"Tag"`)) < bytes.Index(frame, []byte(`"Attribute"`)) {
		t.Errorf("test frame does not put Tag after Attribute")
	}
	if _, err := (Parser{MaxSize: 1 << 20}).Parse(frame); ErrorKindOf(err) != KindTooLarge {
		t.Errorf("1 MiB limit: err = %v, want %s", err, KindTooLarge)
	}
}

func TestParseKeepsNoReferenceToTheFrame(t *testing.T) {
	frame := readFrame(t, "event_edit_local_tags")
	got, err := Parse(frame)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Parse(readFrame(t, "event_edit_local_tags"))
	for i := range frame {
		frame[i] = 'X' // the subscriber reuses nothing, but a caller might
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("message changed when the frame buffer was overwritten:\n got %+v\nwant %+v", got, want)
	}
}
