package feed

import "testing"

// BenchmarkParse measures Parse on captured frames and on a 10 MiB misp_json.
// BenchmarkParseCandidates compares it with JSON libraries doing the same job
// (parse_compare_test.go; the numbers are in doc.go).
func BenchmarkParse(b *testing.B) {
	cases := parseBenchFrames(b)
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
}

// benchFrame is one frame the parser benchmarks run on.
type benchFrame struct {
	name  string
	frame []byte
}

// parseBenchFrames are captured frames of every kind the parser meets, an ignored
// topic and a 10 MiB misp_json.
func parseBenchFrames(b *testing.B) []benchFrame {
	return []benchFrame{
		{"event_add_row", readFrame(b, "event_add_pulled_row")},
		{"event_edit_row_4_tags", readFrame(b, "event_edit_pulled_local_tags_null_reltype")},
		{"add_from_connected_server", readFrame(b, "event_add_from_server_uuid")},
		{"tag_attached_to_event", readFrame(b, "tag_attached_to_event_local")},
		{"heartbeat", readFrame(b, "self_heartbeat")},
		{"audit_ignored", readFrame(b, "audit")},
		{"publish_3KiB", readFrame(b, "publish_pulled_local_tags")},
		{"publish_10MiB", bigPublishFrame(b, 10<<20)},
	}
}
