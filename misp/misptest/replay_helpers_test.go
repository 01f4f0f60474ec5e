package misptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realDir holds the captures of a real MISP 2.5.1, with the same relative paths as
// /work/shared/misp/real/.
const realDir = "../testdata/real"

// capture is one recorded REST interaction.
type capture struct {
	rel     string
	method  string
	path    string
	headers map[string]string
	body    json.RawMessage // null when there was none
	status  int
	rheader map[string]string
	json    any // ordered; nil when the answer was not JSON
	hasJSON bool
}

func loadCapture(t *testing.T, rel string) capture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realDir, rel))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	var raw struct {
		Request struct {
			Method  string            `json:"method"`
			Path    string            `json:"path"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"request"`
		Response struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			JSON    json.RawMessage   `json:"json"`
		} `json:"response"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("parse capture %s: %v", rel, err)
	}
	c := capture{rel: rel, method: raw.Request.Method, path: raw.Request.Path, headers: raw.Request.Headers,
		body: raw.Request.Body, status: raw.Response.Status, rheader: raw.Response.Headers}
	if len(raw.Response.JSON) > 0 {
		v, err := parseOrdered(raw.Response.JSON)
		if err != nil {
			t.Fatalf("parse captured answer %s: %v", rel, err)
		}
		c.json, c.hasJSON = v, true
	}
	return c
}

// zmqCapture is one recorded ZeroMQ message.
type zmqCapture struct {
	Topic   string          `json:"topic"`
	Raw     string          `json:"raw"`
	NFrames int             `json:"n_frames"`
	Payload json.RawMessage `json:"payload"`
}

func loadZMQ(t *testing.T, rel string, drop func(zmqCapture) bool) []zmqCapture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realDir, rel))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	var raw struct {
		Messages []zmqCapture `json:"messages"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("parse capture %s: %v", rel, err)
	}
	var out []zmqCapture
	for _, m := range raw.Messages {
		// Audit, user and heartbeat messages are not modelled (see the table in replay_test.go).
		if m.Topic == "misp_json_audit" || m.Topic == "misp_json_user" || m.Topic == "misp_json_self" {
			continue
		}
		if drop != nil && drop(m) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// world is one double replaying a captured session.
type world struct {
	t     *testing.T
	s     *Server
	keys  map[string]string // capture key label → key on the double
	subst map[string]string // captured string → the double's (attribute uuids)
}

func newWorld(t *testing.T, opts Options) *world {
	s := newTestServer(t, opts)
	return &world{t: t, s: s, subst: map[string]string{}, keys: map[string]string{
		"<admin API key, 40 chars>": s.AdminKey(),
		"<API key: A admin>":        s.AdminKey(),
	}}
}

func (w *world) substitute(s string) string {
	for from, to := range w.subst {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

type step struct {
	rules      shapeRules
	sameLength bool // the body must have the captured Content-Length (fully reproducible answers)
	zmq        string
	zmqDrop    func(zmqCapture) bool
}

// replay sends the captured request and compares the answer (and the ZeroMQ messages it
// caused, when zmq names a capture) with what the real MISP did.
func (w *world) replay(rel string, st step) {
	t := w.t
	t.Helper()
	c := loadCapture(t, rel)
	mark := len(w.s.Published())
	var body io.Reader
	if len(c.body) > 0 && string(c.body) != "null" {
		var asString string
		if json.Unmarshal(c.body, &asString) == nil {
			body = strings.NewReader(w.substitute(asString)) // sent as raw text (warninglists_extra/api/15)
		} else {
			body = bytes.NewReader([]byte(w.substitute(string(c.body))))
		}
	}
	req, err := http.NewRequest(c.method, w.s.URL()+w.substitute(c.path), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.headers {
		if k == "Authorization" {
			if key, ok := w.keys[v]; ok {
				v = key
			} else if strings.HasPrefix(v, "<") {
				t.Fatalf("%s: no key for %s", rel, v)
			}
		}
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()

	if res.StatusCode != c.status {
		t.Errorf("%s: status %d, captured %d; body %s", rel, res.StatusCode, c.status, got)
	}
	if want := c.rheader["Content-Type"]; want != "" && res.Header.Get("Content-Type") != want {
		t.Errorf("%s: Content-Type %q, captured %q", rel, res.Header.Get("Content-Type"), want)
	}
	if want, ok := c.rheader["X-Result-Count"]; ok && res.Header.Get("X-Result-Count") != want {
		t.Errorf("%s: X-Result-Count %q, captured %q", rel, res.Header.Get("X-Result-Count"), want)
	}
	if want, ok := c.rheader["Location"]; ok {
		wu, _ := url.Parse(want)
		gu, err := url.Parse(res.Header.Get("Location"))
		if err != nil || gu.Path != wu.Path || gu.Host == "" {
			t.Errorf("%s: Location %q, captured %q (path and absolute form must match)", rel, res.Header.Get("Location"), want)
		}
	}
	if st.sameLength {
		if want := c.rheader["Content-Length"]; fmt.Sprint(len(got)) != want {
			t.Errorf("%s: %d body bytes, captured Content-Length %s; body %s", rel, len(got), want, got)
		}
	}
	if c.hasJSON {
		v, err := parseOrdered(got)
		if err != nil {
			t.Errorf("%s: answer is not JSON: %v: %s", rel, err, got)
		} else {
			for _, d := range compareShape(c.json, v, st.rules) {
				t.Errorf("%s: %s", rel, d)
			}
		}
	} else if len(got) != 0 {
		t.Errorf("%s: captured an empty body, the double sent %q", rel, got)
	}
	if st.zmq != "" {
		w.expectZMQ(st.zmq, mark, st.rules, st.zmqDrop)
	}
}

// expectZMQ compares the messages published since mark with a captured sequence; it waits
// for them (background jobs publish a moment later).
func (w *world) expectZMQ(rel string, mark int, rules shapeRules, drop func(zmqCapture) bool) {
	t := w.t
	t.Helper()
	want := loadZMQ(t, rel, drop)
	var got []Message
	eventually(t, fmt.Sprintf("%d messages of %s", len(want), rel), func() bool {
		got = w.s.Published()[mark:]
		return len(got) >= len(want)
	})
	if len(got) > len(want) {
		// Let stragglers (a background job) arrive before judging the sequence.
		got = w.s.Published()[mark:]
	}
	wantTopics := make([]string, len(want))
	for i, m := range want {
		wantTopics[i] = m.Topic
	}
	if strings.Join(topics(got), ",") != strings.Join(wantTopics, ",") {
		t.Errorf("%s: topics\n got %v\nwant %v", rel, topics(got), wantTopics)
		return
	}
	for i, m := range want {
		if m.NFrames != 1 || !strings.HasPrefix(m.Raw, m.Topic+" ") {
			t.Fatalf("%s: capture %d is not a single 'topic json' frame", rel, i)
		}
		frame := string(got[i].Frame())
		if !strings.HasPrefix(frame, m.Topic+" ") || strings.ContainsAny(string(got[i].Payload), "\n") {
			t.Errorf("%s[%d]: frame %q is not '<topic> <compact json>'", rel, i, frame)
		}
		wv, err := parseOrdered([]byte(strings.TrimPrefix(m.Raw, m.Topic+" ")))
		if err != nil {
			// Redacted raw frames (API keys replaced) are not JSON any more; use the payload.
			wv, err = parseOrdered(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
		}
		gv, err := parseOrdered(got[i].Payload)
		if err != nil {
			t.Errorf("%s[%d]: payload is not JSON: %v", rel, i, err)
			continue
		}
		for _, d := range compareShape(wv, gv, rules) {
			t.Errorf("%s[%d] %s: %s", rel, i, m.Topic, d)
		}
	}
}

// mark is the position in the message log before a simulated sync step.
func (w *world) mark() int { return len(w.s.Published()) }

// addAttributes appends n generated attributes to an event (like /attributes/add, which the
// double does not model) and returns their uuids.
func (w *world) addAttributes(uuid string, n int) []string {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.eventByUUID(uuid)
	if ev == nil {
		w.t.Fatalf("no event %s", uuid)
	}
	var out []string
	for _, a := range s.generateAttrsLocked(ev, n, s.now().Unix()) {
		out = append(out, a.uuid)
	}
	return out
}

// ---- comparison rules ----

// exactKeys are compared by value: messages, flags, counts, and the ids the replay reproduces
// (event, org, tag, warninglist and user ids follow the captured sessions). Tag colours are
// not: MISP gives a new tag a random one.
var exactKeys = map[string]bool{
	"name": true, "message": true, "url": true, "errors": true, "saved": true, "success": true,
	"action": true, "published": true, "locked": true, "local": true, "deleted": true, "enabled": true,
	"default": true, "category": true, "type": true, "attribute_count": true, "Server": true,
	"exportable": true, "numerical_value": true, "org_id": true, "orgc_id": true,
	"event_id": true, "tag_id": true, "user_id": true, "warninglist_id": true, "matched": true,
	"value": true, "valid_attributes": true, "warninglist_entry_count": true, "id": true,
	"uuid": true, "orgc_uuid": true, "distribution": true, "Event": true, "role_id": true,
	"mandatory_fields": true, "description": true, "version": true, "publish_timestamp": true,
	"perm_sync": true, "perm_site_admin": true, "perm_publish": true, "perm_tagger": true,
	"perm_tag_editor": true, "perm_warninglist": true, "permission": true, "permission_description": true,
	"relationship_type": true, "is_galaxy": true, "hide_tag": true, "local_only": true,
	"request_encoding": true, "filter_sightings": true, "pymisp_recommended_version": true,
}

// notExactUnder are subtrees whose values the double generates itself.
var notExactUnder = []string{
	".Attribute", ".EventTag[].id", ".WarninglistEntry[].id", ".WarninglistType[].id",
	".Sighting", ".Object", ".User.id", ".User.email",
}

func defaultRules() shapeRules {
	return shapeRules{
		exact: func(path, key string) bool {
			if !exactKeys[key] {
				return false
			}
			for _, p := range notExactUnder {
				if strings.Contains(path, p) {
					return false
				}
			}
			// The instance uuid of getVersion is the double's own.
			return path != ".uuid"
		},
		lenFree: func(path string) bool {
			return strings.HasSuffix(path, ".Attribute")
		},
		optional: func(path, key string) bool {
			// Generated attributes have no warninglist hits, attribute tags or sightings of
			// their own unless a step adds them.
			if strings.Contains(path, ".Attribute") && (key == "warnings" || key == "Tag" || key == "Sighting") {
				return true
			}
			return false
		},
		zeroness: func(key string) bool { return key == "publish_timestamp" },
	}
}

// with returns r with extra array paths whose length may differ.
func (r shapeRules) withLenFree(suffixes ...string) shapeRules {
	prev := r.lenFree
	r.lenFree = func(path string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(path, s) {
				return true
			}
		}
		return prev != nil && prev(path)
	}
	return r
}

// dropAttributeTags removes "attached to attribute" messages from a captured pull or push:
// the double does not model attribute tags of synchronised events.
func dropAttributeTags(m zmqCapture) bool {
	return m.Topic == "misp_json_tag" && strings.Contains(string(m.Payload), `"attached to attribute"`)
}
