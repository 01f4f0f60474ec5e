package misp

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for every decoder of MISP answers. Their seed corpus is the real MISP 2.5.1
// answers in testdata/real (plus a few hand-made edge cases), so `go test` runs them as
// ordinary tests; `go test -fuzz=FuzzX ./misp/` explores further.

// addCaptures seeds f with the bodies of the captures of method+path prefix.
func addCaptures(f *testing.F, method, pathPrefix string) int {
	n := 0
	for _, rel := range captureFiles(f, method, pathPrefix) {
		f.Add(loadCapture(f, rel).body())
		n++
	}
	return n
}

func FuzzDecodeEventIndex(f *testing.F) {
	if addCaptures(f, "", "/events/index") == 0 {
		f.Fatal("no /events/index capture")
	}
	for _, s := range []string{`[]`, `[{"uuid":"A","timestamp":5,"EventTag":[{"local":"1","Tag":null}]}]`, `[{"uuid":1,"Orgc":{"uuid":2}}]`,
		`{"Event":[]}`, `[{"uuid":"x","EventTag":{}}]`, `[null]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, skipped, err := decodeEventIndex(body)
		if err != nil {
			if events != nil || skipped != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		for i, s := range skipped {
			if s.Reason == "" || s.Index < 0 || (i > 0 && s.Index <= skipped[i-1].Index) {
				t.Fatalf("bad skipped row %+v", s)
			}
		}
		for _, e := range events {
			if e.UUID == "" || e.UUID != strings.ToLower(e.UUID) || e.OrgcUUID != strings.ToLower(e.OrgcUUID) {
				t.Fatalf("bad event %+v", e)
			}
			if !e.Timestamp.IsZero() && (e.Timestamp.Unix() <= 0 || e.Timestamp.Location().String() != "UTC") {
				t.Fatalf("bad timestamp %v", e.Timestamp)
			}
			for _, tag := range e.Tags {
				if tag.Name == "" {
					t.Fatalf("tag without a name in %+v", e)
				}
			}
		}
	})
}

func FuzzDecodeWarninglistIndex(f *testing.F) {
	if addCaptures(f, "", "/warninglists/index") == 0 {
		f.Fatal("no /warninglists/index capture")
	}
	for _, s := range []string{`{"Warninglists":[]}`, `{"Warninglists":null}`, `{"Warninglists":[{"Warninglist":{"id":1,"valid_attributes":" , ALL,"}}]}`,
		`{"Warninglists":[{}]}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		lists, err := decodeWarninglistIndex(body)
		if err != nil {
			return
		}
		for _, wl := range lists {
			if wl.ID == "" || wl.Entries != nil {
				t.Fatalf("bad list %+v", wl)
			}
			for _, a := range wl.MatchingAttributes {
				if strings.TrimSpace(a) == "" && a != "" {
					t.Fatalf("blank attribute in %q", wl.MatchingAttributes)
				}
			}
		}
	})
}

func FuzzDecodeWarninglist(f *testing.F) {
	if addCaptures(f, "", "/warninglists/view/")+addCaptures(f, "", "/warninglists/edit/")+addCaptures(f, "", "/warninglists/add") == 0 {
		f.Fatal("no warninglist capture")
	}
	for _, s := range []string{`{"Warninglist":{"id":"1","WarninglistEntry":[{"value":1,"comment":null}],"WarninglistType":[{"type":"ALL"}]}}`,
		`{"Warninglist":{"id":"1","version":2,"matching_attributes":["a"]}}`, `{"Warninglist":null}`, `{"Warninglist":{"id":""}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		wl, err := decodeWarninglistView(body)
		if err != nil {
			if wl != nil {
				t.Fatal("list returned with an error")
			}
			return
		}
		if wl.ID == "" || wl.Entries == nil || wl.EntryCount != len(wl.Entries) {
			t.Fatalf("bad list %+v", wl)
		}
	})
}

func FuzzDecodeCheckValue(f *testing.F) {
	if addCaptures(f, "POST", "/warninglists/checkValue") == 0 {
		f.Fatal("no checkValue capture")
	}
	for _, s := range []string{`[]`, `{}`, `[[{"id":"1","name":"n","matched":"0"}]]`, `{"a":[]}`, `{"a":null}`, `"a"`, `{"a":[{"id":{}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		hits, err := decodeCheckValue(body)
		if err != nil {
			if hits != nil {
				t.Fatal("hits returned with an error")
			}
			return
		}
		for v, hs := range hits {
			if len(hs) == 0 {
				t.Fatalf("value %q present without hits", v)
			}
		}
	})
}

func FuzzDecodeSave(f *testing.F) {
	for _, prefix := range []string{"/warninglists/toggleEnable", "/tags/", "/events/publish/"} {
		addCaptures(f, "POST", prefix)
	}
	for _, s := range []string{`{"saved":false,"errors":"Warninglist not found."}`, `{"saved":"1","success":"1 warninglist(s) enabled"}`,
		`{"success":false}`, `{"success":null}`, `{"saved":[]}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeSave(body)
		if err != nil {
			return
		}
		_ = b.message()
		if b.Saved != nil && !bool(*b.Saved) && !b.failed() {
			t.Fatal("saved:false not reported as failed")
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	n := 0
	for _, rel := range captureFiles(f, "", "/") {
		c := loadCapture(f, rel)
		if c.Response.Status >= 300 {
			f.Add(c.Response.Status, c.body())
			n++
		}
	}
	if n == 0 {
		f.Fatal("no error capture")
	}
	for _, s := range []string{`{"name":"a &quot;b&quot;","errors":{"&#039;k":["&amp;"]}}`, `<html>502</html>`, `{"saved":"0","errors":"x"}`, `{"message":5}`, ``} {
		f.Add(403, []byte(s))
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		p := decodeError(status, body)
		kind := classify(status, p)
		if kind == nil {
			t.Fatal("no kind")
		}
		switch {
		case status == http.StatusNotFound && kind != ErrNotFound,
			status == http.StatusMethodNotAllowed && kind != ErrNotAllowed,
			status >= 500 && kind != ErrServer:
			t.Fatalf("HTTP %d classified as %v", status, kind)
		}
		if p.Message == "" && http.StatusText(status) != "" {
			t.Fatalf("empty message for HTTP %d", status)
		}
		e := &APIError{Op: "op", Method: "GET", Endpoint: "/x", Status: status, Message: p.Message, Errors: redactAll(p.Errors, testKey), Kind: kind}
		if s := e.Error(); !strings.Contains(s, "HTTP "+strconv.Itoa(status)) || !errors.Is(e, kind) {
			t.Fatalf("Error() = %q", s)
		}
	})
}

func FuzzFlex(f *testing.F) {
	for _, s := range []string{`"12"`, `12`, `-1.5e3`, `null`, `true`, `"0"`, `""`, `"1e300"`, `{}`, `"\u0000"`, `9223372036854775808`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var s flexString
		var i flexInt
		var b flexBool
		errS := s.UnmarshalJSON(raw)
		errI := i.UnmarshalJSON(raw)
		_ = b.UnmarshalJSON(raw)
		if errS != nil && errI == nil {
			t.Fatalf("flexInt accepted %q that flexString refused", raw)
		}
		if errI == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err == nil && n != int64(i) {
				t.Fatalf("%q: flexInt %d, string %q", raw, i, s)
			}
		}
	})
}
