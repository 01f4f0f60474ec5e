package misptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// okv is a JSON object with its key order, as decoded by parseOrdered.
type okv struct {
	keys []string
	vals map[string]any
}

// parseOrdered decodes JSON keeping object key order and numbers as json.Number.
func parseOrdered(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &okv{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
	}
	return tok, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "string"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case *okv:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// shapeRules say which differences between a capture and the double are legitimate.
type shapeRules struct {
	// exact reports whether the scalar at path (dotted, "[]" for array elements; key is the
	// nearest object key) must equal the captured one.
	exact func(path, key string) bool
	// lenFree reports whether an array at path may have another length than in the capture
	// (the double seeds fewer default warninglists, generates its own attributes ...). Its
	// elements are then compared with the first captured element, types only.
	lenFree func(path string) bool
	// optional reports whether a captured key at path may be absent from the double's answer.
	optional func(path, key string) bool
	// zeroness reports keys whose "0"-ness alone is compared (publish_timestamp).
	zeroness func(key string) bool
}

func (r shapeRules) isExact(path, key string) bool { return r.exact != nil && r.exact(path, key) }
func (r shapeRules) isLenFree(path string) bool    { return r.lenFree != nil && r.lenFree(path) }
func (r shapeRules) isOptional(path, key string) bool {
	return r.optional != nil && r.optional(path, key)
}
func (r shapeRules) isZeroness(key string) bool { return r.zeroness != nil && r.zeroness(key) }

// compareShape compares got with the captured want: same JSON types, same keys in the same
// order, same array lengths, and equal values where the rules say so. It returns every
// difference found.
func compareShape(want, got any, r shapeRules) []string {
	var diffs []string
	var walk func(path, key string, want, got any, exact bool)
	walk = func(path, key string, want, got any, exact bool) {
		at := path
		if at == "" {
			at = "(root)"
		}
		if jsonType(want) != jsonType(got) {
			diffs = append(diffs, fmt.Sprintf("%s: type %s, captured %s (%s)", at, jsonType(got), jsonType(want), short(want)))
			return
		}
		switch w := want.(type) {
		case *okv:
			g := got.(*okv)
			// Key order: the double's keys must be the captured ones, in order, minus
			// optional captured keys it does not send.
			var wantKeys []string
			for _, k := range w.keys {
				if _, ok := g.vals[k]; !ok {
					if !r.isOptional(path, k) {
						diffs = append(diffs, fmt.Sprintf("%s: missing key %q", at, k))
					}
					continue
				}
				wantKeys = append(wantKeys, k)
			}
			var gotKeys []string
			for _, k := range g.keys {
				if _, ok := w.vals[k]; !ok {
					if !r.isOptional(path, k) {
						diffs = append(diffs, fmt.Sprintf("%s: extra key %q", at, k))
					}
					continue
				}
				gotKeys = append(gotKeys, k)
			}
			if strings.Join(wantKeys, ",") != strings.Join(gotKeys, ",") {
				diffs = append(diffs, fmt.Sprintf("%s: key order %v, captured %v", at, gotKeys, wantKeys))
			}
			for _, k := range wantKeys {
				walk(path+"."+k, k, w.vals[k], g.vals[k], exact)
			}
		case []any:
			g := got.([]any)
			if r.isLenFree(path) {
				if len(w) == 0 {
					return
				}
				for i, e := range g {
					walk(fmt.Sprintf("%s[%d]", path, i), key, w[0], e, false)
				}
				return
			}
			if len(w) != len(g) {
				diffs = append(diffs, fmt.Sprintf("%s: %d elements, captured %d", at, len(g), len(w)))
				return
			}
			for i := range w {
				walk(path+"[]", key, w[i], g[i], exact)
			}
		default:
			if r.isZeroness(key) && exact {
				if (fmt.Sprint(want) == "0") != (fmt.Sprint(got) == "0") {
					diffs = append(diffs, fmt.Sprintf("%s: %s, captured %s (zero-ness differs)", at, short(got), short(want)))
				}
				return
			}
			if exact && r.isExact(path, key) && fmt.Sprint(want) != fmt.Sprint(got) {
				diffs = append(diffs, fmt.Sprintf("%s: %s, captured %s", at, short(got), short(want)))
			}
		}
	}
	walk("", "", want, got, true)
	return diffs
}

func short(v any) string {
	var s string
	switch x := v.(type) {
	case *okv:
		s = "{" + strings.Join(x.keys, ",") + "}"
	case string:
		s = fmt.Sprintf("%q", x)
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func TestCompareShapeFindsDifferences(t *testing.T) {
	rules := shapeRules{exact: func(_, key string) bool { return key == "name" }}
	cases := []struct {
		name      string
		want, got string
		diffs     int
	}{
		{"identical", `{"id":"1","name":"a","tags":[]}`, `{"id":"2","name":"a","tags":[]}`, 0},
		{"string id became a number", `{"id":"1"}`, `{"id":1}`, 1},
		{"empty list became an object", `{"tags":[]}`, `{"tags":{}}`, 1},
		{"missing key", `{"id":"1","Tag":[]}`, `{"id":"1"}`, 1},
		{"extra key", `{"id":"1"}`, `{"id":"1","Tag":[]}`, 1},
		{"key order", `{"a":1,"b":2}`, `{"b":2,"a":1}`, 1},
		{"exact value", `{"name":"Invalid event"}`, `{"name":"Invalid event."}`, 1},
		{"array length", `[1,2]`, `[1]`, 1},
		{"bool versus string", `{"published":true}`, `{"published":"1"}`, 1},
		{"null versus empty string", `{"relationship_type":null}`, `{"relationship_type":""}`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := parseOrdered([]byte(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			g, err := parseOrdered([]byte(tc.got))
			if err != nil {
				t.Fatal(err)
			}
			if d := compareShape(w, g, rules); len(d) != tc.diffs {
				t.Errorf("got %d differences %v, want %d", len(d), d, tc.diffs)
			}
		})
	}
}
