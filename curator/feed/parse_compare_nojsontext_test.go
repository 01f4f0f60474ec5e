//go:build !goexperiment.jsonv2

package feed

// jsontextCandidates is empty when encoding/json/jsontext is not built
// (Go 1.26 needs GOEXPERIMENT=jsonv2); see parse_compare_jsontext_test.go.
func jsontextCandidates() []parseCandidate { return nil }
