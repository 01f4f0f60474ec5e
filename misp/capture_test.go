package misp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey looks like a real MISP key (40 alphanumerics) and is easy to spot in output.
const testKey = "TESTKEYdoNotLeak0123456789abcdefGHIJKLMN"

// capture is one interaction recorded from a real MISP 2.5.1 (testdata/real/README.md).
type capture struct {
	Name    string `json:"name"`
	Request struct {
		Method string          `json:"method"`
		Path   string          `json:"path"`
		Body   json.RawMessage `json:"body"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		JSON    json.RawMessage   `json:"json"`
		Text    *string           `json:"text"`
	} `json:"response"`
}

// loadCapture reads testdata/<rel>, e.g. "real/api/24_warninglists_add_custom.json".
func loadCapture(t testing.TB, rel string) capture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	var c capture
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("decode capture %s: %v", rel, err)
	}
	if c.Response.Status == 0 {
		t.Fatalf("capture %s has no response status", rel)
	}
	return c
}

// body is the answer body as MISP sent it (JSON re-serialised by the capture tool, or text).
func (c capture) body() []byte {
	if c.Response.Text != nil {
		return []byte(*c.Response.Text)
	}
	return c.Response.JSON
}

// copiedHeaders are the captured headers worth replaying (not Date, Set-Cookie, lengths).
var copiedHeaders = []string{"Content-Type", "Location", "X-Result-Count", "Retry-After"}

// replay answers with a captured response.
func replay(t testing.TB, rel string) http.HandlerFunc {
	c := loadCapture(t, rel)
	return func(w http.ResponseWriter, r *http.Request) {
		for _, h := range copiedHeaders {
			if v, ok := c.Response.Headers[h]; ok {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(c.Response.Status)
		_, _ = w.Write(c.body())
	}
}

// answer answers with a status and a body (JSON unless a Content-Type header says otherwise).
func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// dropConnection closes the TCP connection without an answer (a network error).
func dropConnection(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// recorded is one request the fake MISP received.
type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// fakeMISP serves queued handlers per "METHOD /path"; the last handler of a queue repeats.
type fakeMISP struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string][]http.HandlerFunc
	reqs   []recorded
}

func newFake(t testing.TB) *fakeMISP {
	f := &fakeMISP{t: t, routes: map[string][]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMISP) on(method, path string, hs ...http.HandlerFunc) *fakeMISP {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[method+" "+path] = append(f.routes[method+" "+path], hs...)
	return f
}

func (f *fakeMISP) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	q := f.routes[key]
	var h http.HandlerFunc
	if len(q) > 0 {
		h = q[0]
		if len(q) > 1 {
			f.routes[key] = q[1:]
		}
	}
	f.mu.Unlock()
	if h == nil {
		f.t.Errorf("fake MISP: unexpected request %s", key)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h(w, r)
}

func (f *fakeMISP) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// count returns how many requests hit "METHOD /path".
func (f *fakeMISP) count(method, path string) int {
	n := 0
	for _, r := range f.requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// last returns the last request to "METHOD /path".
func (f *fakeMISP) last(method, path string) recorded {
	f.t.Helper()
	reqs := f.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && reqs[i].Path == path {
			return reqs[i]
		}
	}
	f.t.Fatalf("no request %s %s", method, path)
	return recorded{}
}

// sleeps records the backoff delays a test client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// client builds a Client for the fake: no rate limit, no real backoff waits (they are
// recorded in the returned *sleeps). mutate may change the options.
func (f *fakeMISP) client(mutate ...func(*Options)) (*Client, *sleeps) {
	f.t.Helper()
	opts := Options{URL: f.srv.URL, APIKey: testKey, QPS: -1, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 50 * time.Millisecond}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := New(opts)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	s := &sleeps{}
	c.sleep = s.sleep
	return c, s
}

// jsonEqual compares two JSON documents semantically.
func jsonEqual(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("request body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("request body = %s, want %s", gb, wb)
	}
}

// captureFiles lists testdata/real captures whose request path starts with prefix.
func captureFiles(t testing.TB, method, pathPrefix string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(filepath.Join("testdata", "real"), func(p string, info os.FileInfo, err error) error {
		// Only REST captures (…/api/NN_….json); zmq/ captures have no response.
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".json") || filepath.Base(filepath.Dir(p)) != "api" {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		c := loadCapture(t, filepath.ToSlash(rel))
		if (method == "" || c.Request.Method == method) && strings.HasPrefix(c.Request.Path, pathPrefix) {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestCaptureHelperServesTheRecordedAnswer(t *testing.T) {
	f := newFake(t)
	f.on("POST", "/events/index", replay(t, "real/sync/api/51_A_events_index_eventid_e1.json"))
	resp, err := http.Post(f.srv.URL+"/events/index", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Result-Count") != "1" || !json.Valid(body) {
		t.Fatalf("status %d, X-Result-Count %q, valid JSON %v", resp.StatusCode, resp.Header.Get("X-Result-Count"), json.Valid(body))
	}
	if got := captureFiles(t, "POST", "/events/index"); len(got) < 3 {
		t.Fatalf("captureFiles found %v", got)
	}
}
