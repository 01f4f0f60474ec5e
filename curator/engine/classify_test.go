package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/misptrust/misp-trust-operator/curator/feed"
)

// frame parses one frame captured from a real MISP 2.5.1 (curator/feed/testdata/frames).
func frame(t testing.TB, name string) feed.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "feed", "testdata", "frames", name+".frame"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := feed.Parse(b)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return m
}

func TestClassifyCapturedFrames(t *testing.T) {
	cases := []struct {
		frame string
		want  string
	}{
		{"event_add_from_server_uuid", msgPulled},
		{"event_edit_from_server_uuid", msgPulled},
		{"event_add_from_server_numeric", msgPulledByID},
		{"event_edit_from_server_numeric", msgPulledByID},
		{"event_add_pulled_row", msgSyncedRow},
		{"event_add_pushed_row", msgSyncedRow},
		{"event_edit_pulled_local_tags_null_reltype", msgSyncedRow},
		{"event_add_local", msgLocalRow},
		{"event_edit_local_tags", msgLocalRow},
		{"event_delete", msgDelete},
		{"publish_local", msgPublish},
		{"publish_pulled_local_tags", msgPublish},
		{"tag_attached_to_event_global", msgTag},
		{"tag_attached_to_event_local", msgTag},
		{"tag_detached_from_event", msgTag},
		{"tag_attached_to_attribute", msgOther},
		{"tag_add", msgOther},
		{"attribute_add", msgOther},
		{"self_heartbeat", msgOther},
		{"audit", msgOther},
		{"organisation", msgOther},
	}
	for _, tc := range cases {
		t.Run(tc.frame+" is "+tc.want, func(t *testing.T) {
			if got := classify(frame(t, tc.frame)); got != tc.want {
				t.Fatalf("classify = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClassifyIncompleteMessages(t *testing.T) {
	cases := []struct {
		name string
		m    feed.Message
		want string
	}{
		{"pull without event", feed.Message{Kind: feed.KindEvent, Action: feed.ActionAddFromConnectedServer}, msgInvalid},
		{"row without uuid", feed.Message{Kind: feed.KindEvent, Action: feed.ActionAdd, HasRow: true, Locked: true}, msgInvalid},
		{"add without row", feed.Message{Kind: feed.KindEvent, Action: feed.ActionEdit, EventUUID: "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"}, msgInvalid},
		{"unknown event action", feed.Message{Kind: feed.KindEvent, Action: "publish", EventUUID: "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"}, msgOther},
		{"publish without uuid", feed.Message{Kind: feed.KindPublish}, msgInvalid},
		{"event tag without event id", feed.Message{Kind: feed.KindEventTag, Action: feed.ActionTagAttachedToEvent}, msgInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.m); got != tc.want {
				t.Fatalf("classify = %s, want %s", got, tc.want)
			}
		})
	}
}
