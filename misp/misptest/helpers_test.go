package misptest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// resp is one HTTP answer of the double.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// decode parses the body as JSON (numbers as json.Number).
func (r resp) decode(t *testing.T) any {
	t.Helper()
	v, err := decodeJSONBody(r.body)
	if err != nil {
		t.Fatalf("decode body %q: %v", r.body, err)
	}
	return v
}

// m returns the body as a JSON object.
func (r resp) m(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.decode(t).(map[string]any)
	if !ok {
		t.Fatalf("body is not an object: %s", r.body)
	}
	return m
}

// noRedirect is a client that returns 3xx answers as they are.
var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends a REST request the way a MISP client does: raw key, Accept and Content-Type JSON.
func do(t *testing.T, s *Server, method, path, key string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// newTestServer starts a double closed at the end of the test.
func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond until it holds or 20s pass (generous for a loaded CI machine).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// topics lists the topics of msgs.
func topics(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Topic
	}
	return out
}

// payload decodes a message payload as an object.
func payload(t *testing.T, m Message) map[string]any {
	t.Helper()
	v, err := decodeJSONBody(m.Payload)
	if err != nil {
		t.Fatalf("decode %s payload %q: %v", m.Topic, m.Payload, err)
	}
	o, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s payload is not an object: %s", m.Topic, m.Payload)
	}
	return o
}

type jsonNumber = json.Number

// compactBody is the body without insignificant whitespace, key order kept.
func compactBody(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("compact %q: %v", b, err)
	}
	return out.String()
}
