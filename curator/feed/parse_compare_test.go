package feed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// Parse against JSON libraries doing the same job (issue 15: is the
// hand-written scanner worth keeping?). Each candidate turns a frame into the
// same Message, and the same *ParseError, as Parse; FuzzParseCandidates holds
// them to it, so that the benchmarks compare equal work. The numbers and the
// decision are in doc.go. valyala/fastjson was measured the same way in a
// scratch copy, so that go.mod does not carry a library the code does not use.

type parseCandidate struct {
	name  string
	parse func(frame []byte) (Message, error)
	// fieldOrder: the candidate checks fields in its own order rather than in
	// document order, so when a payload has several bad fields it may name
	// another one (acceptance and messages are still the same).
	fieldOrder bool
	// unfaithful says why the candidate differs from Parse on some input; it
	// is then only compared on the captured frames.
	unfaithful string
}

func parseCandidates() []parseCandidate {
	return append(stdjsonCandidates(), jsontextCandidates()...)
}

// splitFrame is the topic half of Parser.Parse, shared by the candidates.
func splitFrame(frame []byte) (Topic, Kind, []byte, Message, error) {
	sp := bytes.IndexByte(frame, ' ')
	if sp < 0 {
		return "", 0, nil, Message{}, &ParseError{Kind: KindNoSpace, Offset: -1,
			Detail: fmt.Sprintf("no space in a %d-byte frame", len(frame))}
	}
	topic, kind, ok := lookupTopic(frame[:sp])
	if !ok {
		return "", 0, nil, Message{}, &ParseError{Kind: KindUnknownTopic, Offset: -1,
			Detail: fmt.Sprintf("topic %q", truncate(frame[:sp], 64))}
	}
	return topic, kind, frame[sp+1:], Message{Topic: topic, Kind: kind, Size: len(frame)}, nil
}

func lowerUUID(v string) string {
	if strings.ContainsAny(v, "ABCDEF") {
		return strings.ToLower(v)
	}
	return v
}

// checkCandidate compares a candidate with Parse on one frame.
func checkCandidate(t *testing.T, c parseCandidate, frame []byte) {
	t.Helper()
	want, werr := Parse(frame)
	got, gerr := c.parse(frame)
	if sp := bytes.IndexByte(frame, ' '); sp >= 0 && hasDuplicateKeys(frame[sp+1:]) {
		return // which duplicate counts is not part of the contract (FuzzParse)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: message\n got %+v\nwant %+v", c.name, got, want)
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: error %v, Parse %v", c.name, gerr, werr)
	}
	if werr == nil {
		return
	}
	wk, gk := ErrorKindOf(werr), ErrorKindOf(gerr)
	switch {
	case c.fieldOrder && (wk == KindInvalidJSON) == (gk == KindInvalidJSON):
	case wk != gk:
		t.Fatalf("%s: error kind %q (%v), Parse %q (%v)", c.name, gk, gerr, wk, werr)
	case wk != KindInvalidJSON && gerr.Error() != werr.Error():
		// Field, offset and detail too; a syntax error's detail is the
		// library's (and its offset may point elsewhere in the bad token).
		t.Fatalf("%s: error %v, Parse %v", c.name, gerr, werr)
	}
}

// candidateSeeds are inputs beyond the captured frames: every error kind and
// the rules that differ between JSON libraries (UTF-8, surrogates, depth,
// duplicate names, white space, case of keys).
func candidateSeeds() []string {
	const u = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"
	deep := func(n int) string { // nesting n+1, counting the root object
		return `misp_json {"Event":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	return []string{
		``, `misp_json_event`, `misp_json_event `, "misp_json_self \t{}\n", `misp_jso {}`,
		`misp_json_self {} {}`, `misp_json_self {}}`, `misp_json_self [}`, `misp_json_self "alive"`,
		`misp_json_self {"status":"a\x"}`, "misp_json_self {\"status\":\"a\tb\"}",
		"misp_json_self {\"status\":\"\xff\xfe\"}", `misp_json_self {"status":"a\ud800b\udc00\ud800x"}`,
		`misp_json_self {"st\u0061tus":"x","uptime":"12"}`, `misp_json_self {"uptime":1e3}`, `misp_json_self {"uptime":-0}`,
		deep(maxDepth - 1), deep(maxDepth),
		`misp_json_event {"Event":0123,"action":"add_from_connected_server"}`,
		`misp_json_event {"Event":4711,"Server":2,"action":"add_from_connected_server"}`,
		`misp_json_event {"Event":"5A3C2FCD-8328-42BB-A95E-4F4402DE0B81","action":"\u0061dd"}`,
		`misp_json_event {"Event":{"uuid":"` + u + `","locked":1,"published":"0","timestamp":"99999999999999999999"},"action":"edit"}`,
		`misp_json_event {"Event":{"uuid":"` + u + `"},"Orgc":{"uuid":"x"},"EventTag":[{"local":true},{"Tag":null}],"action":"add"}`,
		`misp_json_event {"Event":true,"Server":{},"action":1}`, `misp_json_event {"Server":"","EventTag":{}}`,
		`misp_json {"event":{"uuid":"` + u + `"}}`, `misp_json {"Event":"` + u + `"}`,
		`misp_json {"Event":{"uuid":"` + u + `","Orgc":[],"Tag":[{"local":true},"x",{"name":"a","local":"yes"}]}}`,
		`misp_json_tag {"Tag":{"name":"tlp:red"},"action":"attached to event"}`,
		`misp_json_tag {"Tag":{"name":"\u0074","event_id":"\u0031","local":"\u0031"},"action":"attached to event"}`,
		`misp_json_tag {"Tag":"x","action":null}`,
		`misp_json_event {"Event":{"uuid":"` + u + `","uuid":"x"},"action":"add"}`,
	}
}

// FuzzParseCandidates checks that each candidate gives Parse's results.
func FuzzParseCandidates(f *testing.F) {
	frames, _ := filepath.Glob(filepath.Join("testdata", "frames", "*.frame"))
	for _, name := range frames {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range candidateSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, c := range parseCandidates() {
			if c.unfaithful == "" {
				checkCandidate(t, c, frame)
			}
		}
	})
}

func TestParseCandidatesOnCapturedFrames(t *testing.T) {
	frames, _ := filepath.Glob(filepath.Join("testdata", "frames", "*.frame"))
	for _, c := range parseCandidates() {
		t.Run(c.name, func(t *testing.T) {
			for _, name := range frames {
				checkCandidate(t, c, readFrame(t, strings.TrimSuffix(filepath.Base(name), ".frame")))
			}
			checkCandidate(t, c, bigPublishFrame(t, 2<<20))
		})
	}
}

// candidateBenchFrames are BenchmarkParse's frames, less the ignored topic
// (all candidates share Parse's topic lookup).
func candidateBenchFrames(b *testing.B) []benchFrame {
	var out []benchFrame
	for _, f := range parseBenchFrames(b) {
		if f.name != "audit_ignored" {
			out = append(out, f)
		}
	}
	return out
}

// BenchmarkParseCandidates runs Parse ("scanner") and each candidate on the
// same frames: ns/op, B/op, allocs/op.
func BenchmarkParseCandidates(b *testing.B) {
	all := append([]parseCandidate{{name: "scanner", parse: Parse}}, parseCandidates()...)
	for _, f := range candidateBenchFrames(b) {
		for _, c := range all {
			b.Run(f.name+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(f.frame)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.parse(f.frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkParseCandidatesRatio reports, per frame and candidate, the median
// over alternating rounds of time(candidate) / time(Parse), each round about
// 300 µs of Parse (metric x-scanner; ns/op is the candidate's median time per
// frame). On a shared, loaded machine the ns/op of two benchmarks run seconds
// apart drift by ±50%; neighbouring rounds see the same load.
func BenchmarkParseCandidatesRatio(b *testing.B) {
	timeN := func(b *testing.B, parse func([]byte) (Message, error), frame []byte, n int) time.Duration {
		start := time.Now()
		for range n {
			if _, err := parse(frame); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	for _, f := range candidateBenchFrames(b) {
		n := 1
		for timeN(b, Parse, f.frame, n) < 300*time.Microsecond {
			n *= 2
		}
		for _, c := range parseCandidates() {
			b.Run(f.name+"/"+c.name, func(b *testing.B) {
				var ratios, perFrame []float64
				round := 0
				for b.Loop() {
					var tp, tc time.Duration
					if round%2 == 0 {
						tp, tc = timeN(b, Parse, f.frame, n), timeN(b, c.parse, f.frame, n)
					} else {
						tc, tp = timeN(b, c.parse, f.frame, n), timeN(b, Parse, f.frame, n)
					}
					round++
					ratios = append(ratios, float64(tc)/float64(tp))
					perFrame = append(perFrame, float64(tc)/float64(n))
				}
				b.ReportMetric(median(ratios), "x-scanner")
				b.ReportMetric(median(perFrame), "ns/op")
			})
		}
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}
