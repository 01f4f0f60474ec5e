package misptest

import (
	"encoding/json"
	"testing"
)

func TestPHPJSONEncodings(t *testing.T) {
	v := obj{{"name", `workflow:state="complete"`}, {"url", "/events/view/1"}, {"html", "<a&b>"}, {"n", 3}, {"none", nil}, {"list", []any{}}}
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"compact keeps order, slashes and HTML", compactJSON(v), `{"name":"workflow:state=\"complete\"","url":"/events/view/1","html":"<a&b>","n":3,"none":null,"list":[]}`},
		{"pretty is PHP's JSON_PRETTY_PRINT", prettyJSON(obj{{"a", []any{"x"}}, {"b", obj{}}}), "{\n    \"a\": [\n        \"x\"\n    ],\n    \"b\": {}\n}"},
		{"plain json_encode escapes slashes and unicode", phpDefaultJSON(obj{{"url", "/tags/é"}}), `{"url":"\/tags\/\u00e9"}`},
		{"h() on error messages", []byte(h(`It's "x" <b>&`)), "It&#039;s &quot;x&quot; &lt;b&gt;&amp;"},
	}
	for _, tc := range cases {
		if string(tc.got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
}

func FuzzJSONStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\b\f\n\r\t", "é\u2028\u2029", "bad\xff\xfeutf8", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, b, err)
		}
		want, _ := encodeJSON(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q round-trips to %q, encoding/json gives %q", s, back, wantBack)
		}
	})
}
