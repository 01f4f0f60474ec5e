package misptest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusSequence sends n getVersion calls and returns their statuses (0 for a transport error).
func statusSequence(t *testing.T, s *Server, path string, n int) []int {
	t.Helper()
	var out []int
	for range n {
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", s.AdminKey())
		res, err := noRedirect.Do(req)
		if err != nil {
			out = append(out, 0)
			continue
		}
		res.Body.Close()
		out = append(out, res.StatusCode)
	}
	return out
}

func TestFaultErrorRateIsSeededAndDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		s := newTestServer(t, Options{Seed: seed})
		s.SetFault("/servers/getVersion", Fault{ErrorRate: 0.5, ErrorStatus: 502})
		return statusSequence(t, s, "/servers/getVersion", 40)
	}
	a, b, c := run(7), run(7), run(8)
	if !equalInts(a, b) {
		t.Errorf("same seed, different sequences:\n%v\n%v", a, b)
	}
	if equalInts(a, c) {
		t.Errorf("different seeds, same sequence %v", a)
	}
	fails := 0
	for _, st := range a {
		switch st {
		case 502:
			fails++
		case 200:
		default:
			t.Fatalf("unexpected status %d", st)
		}
	}
	if fails < 8 || fails > 32 {
		t.Errorf("%d of 40 failed at rate 0.5", fails)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFaultStatuses(t *testing.T) {
	s := newTestServer(t, Options{})
	cases := []struct {
		status      int
		contentType string
		body        string
	}{
		{500, "application/json; charset=UTF-8", `{"name":"An Internal Error Has Occurred.","message":"An Internal Error Has Occurred.","url":"\/events\/index"}`},
		{502, "text/html", "<center><h1>502 Bad Gateway</h1></center>"},
		{429, "application/json; charset=UTF-8", `"name":"Rate limit exceeded."`},
	}
	for _, tc := range cases {
		s.SetFault("/events/index", Fault{ErrorStatus: tc.status})
		r := do(t, s, "POST", "/events/index", s.AdminKey(), map[string]any{})
		if r.status != tc.status || r.header.Get("Content-Type") != tc.contentType || !strings.Contains(string(r.body), tc.body) {
			t.Errorf("%d: got %d %q %s", tc.status, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	// Faults are per route: others are unaffected; the zero Fault removes it.
	if r := do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil); r.status != 200 {
		t.Errorf("other route: %d", r.status)
	}
	s.SetFault("/events/index", Fault{})
	if r := do(t, s, "POST", "/events/index", s.AdminKey(), map[string]any{}); r.status != 200 {
		t.Errorf("after removal: %d", r.status)
	}
}

func TestFaultAllRoutesAndPrecedence(t *testing.T) {
	s := newTestServer(t, Options{})
	s.SetFault("", Fault{ErrorStatus: 500})
	s.SetFault("/servers/getVersion", Fault{Latency: time.Millisecond})
	if r := do(t, s, "POST", "/events/index", s.AdminKey(), nil); r.status != 500 {
		t.Errorf("all-routes fault: %d", r.status)
	}
	if r := do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil); r.status != 200 {
		t.Errorf("a route's own fault replaces the all-routes one: %d", r.status)
	}
}

func TestFaultLatencyOutlastsAClientTimeout(t *testing.T) {
	s := newTestServer(t, Options{})
	s.SetFault("/events/view", Fault{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/events/view/1", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", s.AdminKey())
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a deadline", err)
	}
	// The slow call is still counted; the next route is not slowed.
	eventually(t, "the cancelled call to be recorded", func() bool { return s.Calls("/events/view") == 1 })
	if r := do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil); r.status != 200 {
		t.Errorf("%d", r.status)
	}
}

func TestDroppedConnectionsAndDown(t *testing.T) {
	s := newTestServer(t, Options{})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (int, error) {
		req, _ := http.NewRequest("POST", s.URL()+"/tags/attachTagToObject", strings.NewReader(`{}`))
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", s.AdminKey())
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	s.SetFault("/tags/attachTagToObject", Fault{DropConn: true})
	if st, err := get(); err == nil {
		t.Errorf("dropped connection answered %d", st)
	}
	s.SetFault("/tags/attachTagToObject", Fault{})
	s.SetDown(true)
	if st, err := get(); err == nil {
		t.Errorf("down server answered %d", st)
	}
	s.SetDown(false)
	if st, err := get(); err != nil || st != 405 {
		t.Errorf("back up: %d %v", st, err)
	}
	// Every attempt counts, with status 0 when there was no answer.
	var zero int
	for _, r := range s.Requests() {
		if r.Status == 0 {
			zero++
		}
	}
	if s.Calls("/tags/attachTagToObject") != 3 || zero != 2 {
		t.Errorf("calls %d, unanswered %d", s.Calls("/tags/attachTagToObject"), zero)
	}
}

func TestIntrospection(t *testing.T) {
	s := newTestServer(t, Options{})
	ev := s.AddEvent(Event{Attributes: 2})
	key := s.AdminKey()
	var bytes int64
	for _, r := range []resp{
		do(t, s, "GET", "/events/view/"+ev.UUID, key, nil),
		do(t, s, "POST", "/events/index", key, map[string]any{"eventid": ev.UUID}),
		do(t, s, "POST", "/tags/attachTagToObject", key, map[string]any{"uuid": ev.UUID, "tag": "tlp:amber", "local": 1}),
		do(t, s, "GET", "/tags/attachTagToObject", key, nil), // refused, but a GET is no write
		do(t, s, "POST", "/warninglists/toggleEnable", key, map[string]any{"id": 101, "enabled": 1}),
		do(t, s, "POST", "/warninglists/checkValue", key, []any{"10.1.1.1"}),
	} {
		bytes += int64(len(r.body))
	}
	if s.Calls("/events/view") != 1 || s.Calls("/events/index") != 1 || s.Calls("/tags/attachTagToObject") != 2 {
		t.Errorf("calls %v", s.CallsByRoute())
	}
	if s.WriteCalls() != 2 {
		t.Errorf("write calls %d, want 2", s.WriteCalls())
	}
	if s.BytesServed() != bytes {
		t.Errorf("bytes served %d, client read %d", s.BytesServed(), bytes)
	}
	do(t, s, "POST", "/events/add", key, map[string]any{"Event": map[string]any{"info": "x"}})
	if s.WriteCalls() != 3 || s.Calls("/events/add") != 1 {
		t.Errorf("an unmodelled POST: write calls %d, calls %d", s.WriteCalls(), s.Calls("/events/add"))
	}
	reqs := s.Requests()
	if len(reqs) != 7 || reqs[2].Route != "/tags/attachTagToObject" || reqs[2].Status != 200 || !strings.Contains(reqs[2].Body, "tlp:amber") || reqs[2].UserID != "1" {
		t.Errorf("request log %+v", reqs)
	}
	for _, r := range reqs {
		if strings.Contains(r.Body, key) {
			t.Error("the request log holds an API key")
		}
	}
	s.ResetStats()
	if s.Calls("/events/view") != 0 || s.WriteCalls() != 0 || s.BytesServed() != 0 || len(s.Requests()) != 0 {
		t.Error("ResetStats kept something")
	}
}

func TestConcurrentCallsAreSafe(t *testing.T) {
	s := newTestServer(t, Options{})
	p := s.AddOrg("P", "")
	var uuids []string
	for range 8 {
		uuids = append(uuids, s.SimulatePull(Event{Orgc: p, Published: true, Attributes: 1}).UUID)
	}
	var wg sync.WaitGroup
	for i, u := range uuids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tag := range []string{"tlp:amber", `workflow:state="complete"`, `admiralty-scale:source-reliability="a"`} {
				do(t, s, "POST", "/tags/attachTagToObject", s.AdminKey(), map[string]any{"uuid": u, "tag": tag, "local": 1})
			}
			do(t, s, "POST", "/events/publish/"+u, s.AdminKey(), nil)
			s.SimulatePullEdit(u, func(e *Event) { e.Attributes += i })
		}()
	}
	wg.Wait()
	for _, u := range uuids {
		ev, _ := s.Event(u)
		if len(ev.Tags) != 3 || !ev.Published {
			t.Errorf("%s: %+v", u, ev)
		}
	}
	if n := s.Calls("/tags/attachTagToObject"); n != 24 {
		t.Errorf("%d attach calls", n)
	}
}

func TestAfterCommitFaultCommitsThenFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  Fault
		status int // 0: connection dropped
	}{
		{"504 from the proxy", Fault{ErrorStatus: 504, AfterCommit: true}, 504},
		{"connection dropped", Fault{DropConn: true, AfterCommit: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Options{})
			e := s.AddEvent(Event{Orgc: Org{UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8"}, Locked: true, Published: true, Attributes: 1,
				Tags: []EventTag{{Name: `workflow:state="incomplete"`}}})
			s.SetFault("/tags/removeTagFromObject", tc.fault)
			body := map[string]any{"uuid": e.UUID, "tag": `workflow:state="incomplete"`}
			req, _ := http.NewRequest("POST", s.URL()+"/tags/removeTagFromObject", strings.NewReader(`{"uuid":"`+e.UUID+`","tag":"workflow:state=\"incomplete\""}`))
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", s.AdminKey())
			status := 0
			if res, err := noRedirect.Do(req); err == nil {
				status = res.StatusCode
				res.Body.Close()
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			got, _ := s.Event(e.UUID)
			if len(got.Tags) != 0 || got.Published {
				t.Fatalf("the removal was not committed: %+v", got)
			}
			// The client's retry finds nothing left to remove: the trap of a blind retry.
			s.SetFault("/tags/removeTagFromObject", Fault{})
			if r := do(t, s, "POST", "/tags/removeTagFromObject", s.AdminKey(), body); r.status != 404 {
				t.Fatalf("retry: %d %s", r.status, r.body)
			}
			if reqs := s.Requests(); reqs[0].Status != tc.status {
				t.Errorf("recorded status %d, want %d", reqs[0].Status, tc.status)
			}
		})
	}
}

func TestIndexRowFaults(t *testing.T) {
	s := newTestServer(t, Options{})
	var events []Event
	for range 5 {
		events = append(events, s.AddEvent(Event{Orgc: Org{UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8"}, Locked: true, Attributes: 1}))
	}
	page := func(limit, p int) resp {
		return do(t, s, "POST", "/events/index", s.AdminKey(), map[string]any{"limit": limit, "page": p, "sort": "id", "direction": "asc"})
	}
	s.SetIndexRowFault(events[1].UUID, RowWithoutUUID)
	r := page(5, 1)
	rows, _ := r.decode(t).([]any)
	if r.status != 200 || len(rows) != 5 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for i, row := range rows {
		_, has := row.(map[string]any)["uuid"]
		if has == (i == 1) {
			t.Errorf("row %d has uuid: %v", i, has)
		}
	}
	s.SetIndexRowFault(events[1].UUID, RowOK)
	s.SetIndexRowFault(events[3].UUID, RowBreaksPage)
	for _, tc := range []struct{ limit, page, status int }{{5, 1, 500}, {2, 1, 200}, {2, 2, 500}, {1, 3, 200}, {1, 4, 500}, {1, 5, 200}} {
		if r := page(tc.limit, tc.page); r.status != tc.status {
			t.Errorf("limit %d page %d: %d, want %d", tc.limit, tc.page, r.status, tc.status)
		}
	}
	if r := do(t, s, "POST", "/events/index", s.AdminKey(), map[string]any{"eventid": events[3].UUID}); r.status != 500 {
		t.Errorf("the event's own metadata read: %d, want 500", r.status)
	}
}

func TestFaultTimesEndsTheFault(t *testing.T) {
	s := newTestServer(t, Options{})
	s.SetFault("/servers/getVersion", Fault{ErrorStatus: 504, Times: 2})
	if got := statusSequence(t, s, "/servers/getVersion", 4); !equalInts(got, []int{504, 504, 200, 200}) {
		t.Fatalf("statuses %v, want two failures then successes", got)
	}
}
