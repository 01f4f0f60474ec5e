package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

func TestRequireLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8443", true}, {"127.0.0.2:1", true}, {"[::1]:8443", true}, {"localhost:8443", true},
		{"0.0.0.0:8443", false}, {":8443", false}, {"[::]:8443", false}, {"192.0.2.10:8443", false},
		{"misp.example:8443", false}, {"8443", false},
	} {
		if err := requireLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("non-loopback REST address needs -allow-remote", func(t *testing.T) {
		if _, err := parseFlags([]string{"-listen", "0.0.0.0:8443"}, io.Discard, env(nil)); err == nil || !strings.Contains(err.Error(), "-allow-remote") {
			t.Errorf("err %v", err)
		}
		if _, err := parseFlags([]string{"-listen", "0.0.0.0:8443", "-allow-remote"}, io.Discard, env(nil)); err != nil {
			t.Errorf("with -allow-remote: %v", err)
		}
	})
	t.Run("non-loopback ZeroMQ address too, unless ZeroMQ is off", func(t *testing.T) {
		if _, err := parseFlags([]string{"-zmq-listen", "0.0.0.0:50000"}, io.Discard, env(nil)); err == nil {
			t.Error("accepted")
		}
		if _, err := parseFlags([]string{"-zmq-listen", "0.0.0.0:50000", "-no-zmq"}, io.Discard, env(nil)); err != nil {
			t.Errorf("-no-zmq: %v", err)
		}
	})
	t.Run("secrets from the environment", func(t *testing.T) {
		c, err := parseFlags(nil, io.Discard, env(map[string]string{"MISPSIM_API_KEY": "k", "MISPSIM_ZMQ_PASSWORD": "p"}))
		if err != nil || c.apiKey != "k" || c.zmqPassword != "p" {
			t.Errorf("%+v %v", c, err)
		}
	})
	t.Run("stray arguments", func(t *testing.T) {
		if _, err := parseFlags([]string{"extra"}, io.Discard, env(nil)); err == nil {
			t.Error("accepted")
		}
	})
}

// sim is a running mispsim.
type sim struct {
	url   string
	zmq   string
	lines []string
}

func startSim(t *testing.T, args ...string) sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args = append([]string{"-listen", "127.0.0.1:0", "-zmq-listen", "127.0.0.1:0", "-heartbeat", "-1s"}, args...)
	go func() {
		done <- run(ctx, args, pw, io.Discard, func(string) string { return "" })
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("mispsim did not stop")
		}
	})
	var s sim
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		s.lines = append(s.lines, line)
		if u, ok := strings.CutPrefix(line, "MISP 2.5.1 double listening on "); ok {
			s.url = u
		}
		if z, ok := strings.CutPrefix(line, "ZeroMQ publisher on "); ok {
			s.zmq = strings.Fields(z)[0]
		}
		if strings.HasPrefix(line, "simulator API:") {
			go io.Copy(io.Discard, pr)
			return s
		}
	}
	select {
	case err := <-done:
		t.Fatalf("mispsim exited: %v (output %q)", err, s.lines)
	case <-time.After(20 * time.Second):
		t.Fatalf("no start banner: %q", s.lines)
	}
	return s
}

func (s sim) call(t *testing.T, method, path, key string, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	res, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func TestMispsim(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.json")
	os.WriteFile(seed, []byte(`{
	  "orgs": [{"name": "PARTNER-HIGH", "uuid": "1521ae8b-48de-4766-8b2a-fdecef763fa8"}],
	  "servers": [{"name": "PARTNER-HIGH (instance B)", "remote_org": {"name": "PARTNER-HIGH"}}],
	  "users": [{"org": {"name": "ORGNAME"}, "role": {"publish": true, "tagger": true}, "key": "PublisherKey000000000000000000000000000A"}],
	  "warninglists": [{"name": "org-confidence-level-high", "type": "string", "category": "known", "description": "d",
	                    "enabled": true, "entries": ["org_uuid:1521ae8b-48de-4766-8b2a-fdecef763fa8 # PARTNER-HIGH"]}],
	  "events": [{"uuid": "853475bb-cc6b-4e07-b345-ed9e47520557", "orgc": {"name": "PARTNER-HIGH"}, "published": true,
	              "attributes": 3, "tags": ["tlp:green"], "via": "pull"}]
	}`), 0o600)
	s := startSim(t, "-seed", seed, "-background-jobs", "-job-delay", "10ms")
	if s.url == "" || !strings.HasPrefix(s.zmq, "tcp://127.0.0.1:") {
		t.Fatalf("banner %q", s.lines)
	}
	for _, l := range s.lines {
		if strings.Contains(l, "PublisherKey") {
			t.Errorf("a seeded key was printed: %q", l)
		}
	}
	admin := misptest.DefaultAdminKey
	pub := "PublisherKey000000000000000000000000000A"

	t.Run("seeded state answers over the MISP API", func(t *testing.T) {
		st, b := s.call(t, "GET", "/events/view/853475bb-cc6b-4e07-b345-ed9e47520557", pub, "")
		if st != 200 || !bytes.Contains(b, []byte(`"PARTNER-HIGH"`)) {
			t.Fatalf("%d %s", st, b)
		}
		st, b = s.call(t, "GET", "/servers/index", admin, "")
		if st != 200 || !bytes.Contains(b, []byte(`"remote_org_id": "2"`)) || !bytes.Contains(b, []byte(`"uuid": "1521ae8b-48de-4766-8b2a-fdecef763fa8"`)) {
			t.Errorf("seeded server link: %d %s", st, b)
		}
		st, b = s.call(t, "POST", "/warninglists/checkValue", pub, `["org_uuid:1521ae8b-48de-4766-8b2a-fdecef763fa8"]`)
		if st != 200 || !bytes.Contains(b, []byte("org-confidence-level-high")) {
			t.Errorf("checkValue %d %s", st, b)
		}
	})
	t.Run("POST /_sim/pull creates and pulls an event", func(t *testing.T) {
		st, b := s.call(t, "POST", "/_sim/pull", "", `{"orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},"published":true,"attributes":2,"tags":["tlp:green",{"name":"x:y","local":true}]}`)
		var ev eventView
		if st != 200 || json.Unmarshal(b, &ev) != nil || !ev.Locked || !ev.Published || ev.Attributes != 2 || len(ev.Tags) != 1 || ev.Orgc.Name != "CIRCL" {
			t.Fatalf("%d %s", st, b)
		}
		st, b = s.call(t, "POST", "/_sim/pull", "", `{"uuid":"`+ev.UUID+`","add_attributes":1}`)
		if err := json.Unmarshal(b, &ev); st != 200 || err != nil || ev.Attributes != 3 {
			t.Errorf("pull edit: %d %s", st, b)
		}
		st, b = s.call(t, "GET", "/_sim/messages?since=0", "", "")
		if st != 200 || !bytes.Contains(b, []byte("edit_from_connected_server")) {
			t.Errorf("messages %d %.300s", st, b)
		}
	})
	t.Run("POST /_sim/push", func(t *testing.T) {
		st, b := s.call(t, "POST", "/_sim/push", "", `{"orgc":{"uuid":"1521ae8b-48de-4766-8b2a-fdecef763fa8"},"published":true,"attributes":1}`)
		var ev eventView
		if st != 200 || json.Unmarshal(b, &ev) != nil || ev.Org.UUID != "1521ae8b-48de-4766-8b2a-fdecef763fa8" {
			t.Fatalf("%d %s", st, b)
		}
		if st, b := s.call(t, "POST", "/_sim/push", "", `{"published":true}`); st != 400 {
			t.Errorf("push without orgc: %d %s", st, b)
		}
		if st, b := s.call(t, "POST", "/_sim/push", "", `{"orgc":{"uuid":"x"},"unknown":1}`); st != 400 {
			t.Errorf("unknown field: %d %s", st, b)
		}
	})
	t.Run("faults and down", func(t *testing.T) {
		if st, b := s.call(t, "POST", "/_sim/fault", "", `{"endpoint":"/events/index","error_status":502}`); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		if st, _ := s.call(t, "POST", "/events/index", admin, `{}`); st != 502 {
			t.Errorf("faulted index: %d", st)
		}
		s.call(t, "POST", "/_sim/fault", "", `{"endpoint":"/events/index"}`)
		if st, _ := s.call(t, "POST", "/events/index", admin, `{}`); st != 200 {
			t.Errorf("fault removed: %d", st)
		}
		if st, b := s.call(t, "POST", "/_sim/fault", "", `{"error_status":418}`); st != 400 {
			t.Errorf("bad status accepted: %d %s", st, b)
		}
		s.call(t, "POST", "/_sim/down", "", `{"down":true}`)
		req, _ := http.NewRequest("GET", s.url+"/servers/getVersion", nil)
		if res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err == nil {
			res.Body.Close()
			t.Errorf("down server answered %d", res.StatusCode)
		}
		s.call(t, "POST", "/_sim/down", "", `{"down":false}`)
	})
	t.Run("publisher controls", func(t *testing.T) {
		st, b := s.call(t, "POST", "/_sim/publisher", "", `{"restart":true,"silent":false,"drop_rate":0}`)
		var stats map[string]any
		if st != 200 || json.Unmarshal(b, &stats) != nil || stats["restarts"] != float64(1) {
			t.Errorf("%d %s", st, b)
		}
	})
	t.Run("GET /_sim/requests lists the calls naming one event", func(t *testing.T) {
		const ev = "853475bb-cc6b-4e07-b345-ed9e47520557"
		var calls []struct {
			Method, Route string
			Status        int
		}
		st, b := s.call(t, "GET", "/_sim/requests?event="+ev, "", "")
		if st != 200 || json.Unmarshal(b, &calls) != nil {
			t.Fatalf("%d %s", st, b)
		}
		// The seeded-state subtest viewed this event once; nothing else named it.
		if len(calls) != 1 || calls[0].Route != "/events/view" || calls[0].Status != 200 {
			t.Errorf("calls naming %s = %+v", ev, calls)
		}
		st, b = s.call(t, "GET", "/_sim/requests", "", "")
		if st != 200 || json.Unmarshal(b, &calls) != nil || len(calls) < 4 {
			t.Errorf("all calls: %d %s", st, b)
		}
	})
	t.Run("GET /_sim/stats", func(t *testing.T) {
		st, b := s.call(t, "GET", "/_sim/stats", "", "")
		var stats struct {
			Calls       map[string]int `json:"calls"`
			BytesServed int64          `json:"bytes_served"`
			ZMQMessages int            `json:"zmq_messages"`
		}
		if st != 200 || json.Unmarshal(b, &stats) != nil || stats.Calls["/events/view"] != 1 || stats.Calls["/events/index"] != 2 ||
			stats.BytesServed == 0 || stats.ZMQMessages == 0 {
			t.Errorf("%d %s", st, b)
		}
		if _, ok := stats.Calls["/_sim/stats"]; ok {
			t.Error("the simulator API is counted as MISP calls")
		}
	})
}

func TestMispsimRemoteModeNeedsTheKeyForTheSimAPI(t *testing.T) {
	s := startSim(t, "-allow-remote", "-no-zmq")
	if st, _ := s.call(t, "GET", "/_sim/stats", "", ""); st != 403 {
		t.Errorf("without key: %d", st)
	}
	if st, _ := s.call(t, "GET", "/_sim/stats", misptest.DefaultAdminKey, ""); st != 200 {
		t.Errorf("with key: %d", st)
	}
	if s.zmq != "" {
		t.Errorf("ZeroMQ started with -no-zmq: %s", s.zmq)
	}
}

func TestMispsimBadSeedFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body string }{
		{"unknown field", `{"orgz": []}`},
		{"user without key", `{"users": [{"role": {"tagger": true}}]}`},
		{"bad via", `{"events": [{"orgc": {"name": "X"}, "via": "carrier pigeon"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, "seed.json")
			os.WriteFile(f, []byte(tc.body), 0o600)
			err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-no-zmq", "-seed", f}, io.Discard, io.Discard, func(string) string { return "" })
			if err == nil {
				t.Error("accepted")
			}
		})
	}
}
