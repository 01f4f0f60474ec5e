package feed

import (
	"bytes"
	"encoding/json"
	"testing"
)

// BenchmarkParse measures Parse on captured frames and on a 10 MiB misp_json.
// The encoding/json sub-benchmarks decode the same fields into small structs
// (the straightforward alternative) for comparison.
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"event_add_row", readFrame(b, "event_add_pulled_row")},
		{"event_edit_row_4_tags", readFrame(b, "event_edit_pulled_local_tags_null_reltype")},
		{"add_from_connected_server", readFrame(b, "event_add_from_server_uuid")},
		{"tag_attached_to_event", readFrame(b, "tag_attached_to_event_local")},
		{"heartbeat", readFrame(b, "self_heartbeat")},
		{"audit_ignored", readFrame(b, "audit")},
		{"publish_3KiB", readFrame(b, "publish_pulled_local_tags")},
		{"publish_10MiB", bigPublishFrame(b, 10<<20)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(c.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, c := range cases {
		if c.name != "event_add_row" && c.name != "publish_10MiB" && c.name != "publish_3KiB" {
			continue
		}
		b.Run("encoding_json/"+c.name, func(b *testing.B) {
			payload := c.frame[bytes.IndexByte(c.frame, ' ')+1:]
			b.SetBytes(int64(len(c.frame)))
			b.ReportAllocs()
			for b.Loop() {
				if err := json.Unmarshal(payload, new(stdEventPayload)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type stdTag struct {
	Name  string `json:"name"`
	Local bool   `json:"local"`
}

type stdEventPayload struct {
	Action string `json:"action"`
	Event  struct {
		ID        string `json:"id"`
		UUID      string `json:"uuid"`
		Locked    bool   `json:"locked"`
		Published bool   `json:"published"`
		Timestamp string `json:"timestamp"`
		Orgc      struct {
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"Orgc"`
		Tag []stdTag `json:"Tag"`
	} `json:"Event"`
	Orgc struct {
		UUID string `json:"uuid"`
		Name string `json:"name"`
	} `json:"Orgc"`
	EventTag []struct {
		Local bool   `json:"local"`
		Tag   stdTag `json:"Tag"`
	} `json:"EventTag"`
}
