package misptest

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault describes how the double misbehaves on an endpoint.
//
// Every call first waits Latency. Then it fails with probability ErrorRate (decided by a
// seeded generator per endpoint, so a test sees the same sequence every run). A failing call
// has its connection dropped when DropConn is set, and otherwise gets ErrorStatus (500, 502,
// 504 or 429; 500 when unset). ErrorRate 0 with DropConn or ErrorStatus set means "every call
// fails".
//
// AfterCommit makes a failing call do its work first — the change is committed and its
// ZeroMQ messages are sent — and only then fail as above: the proxy in front of MISP gave up
// waiting (504, a dropped connection) while PHP finished the request. A client cannot tell
// it from a call that never ran.
//
// Times > 0 removes the fault after that many failing calls (a blip, not an outage).
type Fault struct {
	Latency     time.Duration
	ErrorRate   float64
	ErrorStatus int
	DropConn    bool
	AfterCommit bool
	Times       int
}

type faultState struct {
	Fault
	rng    *rand.Rand
	failed int
}

// SetFault installs a fault for endpoint (a route such as "/events/index"; "" applies to every
// route without a fault of its own). The zero Fault removes it.
func (s *Server) SetFault(endpoint string, f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, endpoint)
		return
	}
	hs := fnv.New64a()
	hs.Write([]byte(endpoint))
	s.faults[endpoint] = &faultState{Fault: f, rng: rand.New(rand.NewPCG(s.opts.Seed, hs.Sum64()))}
}

// SetDown makes every REST call fail with a reset connection (MISP's host unreachable behind
// its proxy) until SetDown(false).
func (s *Server) SetDown(down bool) {
	s.faultMu.Lock()
	s.down = down
	s.faultMu.Unlock()
}

func (s *Server) isDown() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.down
}

// applyFault runs the fault for route, if any, and reports whether it answered the call;
// after is set when the call must be served first and then fail (Fault.AfterCommit).
func (s *Server) applyFault(c *call, w http.ResponseWriter, route string) (answered bool, after *Fault) {
	s.faultMu.Lock()
	fs := s.faults[route]
	if fs == nil {
		fs = s.faults[""]
	}
	var f Fault
	fail := false
	if fs != nil {
		f = fs.Fault
		p := f.ErrorRate
		if p == 0 && (f.DropConn || f.ErrorStatus != 0) {
			p = 1
		}
		fail = p > 0 && fs.rng.Float64() < p
		if fail && f.Times > 0 {
			if fs.failed++; fs.failed >= f.Times {
				for k, v := range s.faults {
					if v == fs {
						delete(s.faults, k)
					}
				}
			}
		}
	}
	s.faultMu.Unlock()
	if fs == nil {
		return false, nil
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
			return true, nil
		case <-s.closing:
			t.Stop()
		}
	}
	switch {
	case !fail:
		return false, nil
	case f.AfterCommit:
		return false, &f
	}
	s.failCall(c, w, f)
	return true, nil
}

// serveThenFail serves the call with its answer thrown away, then fails it as f says.
func (s *Server) serveThenFail(c *call, w http.ResponseWriter, rt route, f Fault) {
	answer := c.w
	c.w = &discardWriter{header: http.Header{}}
	s.serveMISP(c, rt)
	c.w, c.status = answer, 0
	s.failCall(c, w, f)
}

// failCall drops the connection or answers f's error status.
func (s *Server) failCall(c *call, w http.ResponseWriter, f Fault) {
	if f.DropConn {
		c.finish()
		resetConn(w, false)
		return
	}
	status := f.ErrorStatus
	if status == 0 {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusServiceUnavailable:
		// These come from the nginx in front of MISP (the captures' Server header), as HTML.
		text := http.StatusText(status)
		body := []byte("<html>\r\n<head><title>" + strconv.Itoa(status) + " " + text + "</title></head>\r\n<body>\r\n<center><h1>" +
			strconv.Itoa(status) + " " + text + "</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n")
		c.w.Header().Set("Content-Type", "text/html")
		c.w.WriteHeader(status)
		c.status = status
		c.w.Write(body)
	case http.StatusTooManyRequests:
		// MISP's per-role rate limit (enforce_rate_limit); the body shape follows CakePHP's
		// exception renderer, the headers MISP's RateLimit. Not captured: inferred.
		c.w.Header().Set("X-Rate-Limit-Limit", "0")
		c.w.Header().Set("X-Rate-Limit-Remaining", "0")
		c.w.Header().Set("X-Rate-Limit-Reset", "60")
		c.errorJSON(status, "Rate limit exceeded.")
	default:
		c.errorJSON(status, "An Internal Error Has Occurred.")
	}
}

// discardWriter takes the answer of a call whose client will never see it.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// resetConn hijacks the connection and closes it without an answer; with rst the close
// sends a TCP reset (linger 0) instead of a FIN.
func resetConn(w http.ResponseWriter, rst bool) {
	if cw, ok := w.(*countingWriter); ok {
		w = cw.ResponseWriter
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		tc.SetLinger(0)
	}
	conn.Close()
}

func newJSONDecoder(b []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec
}

// RowFault is what is wrong with one event's row in /events/index answers.
type RowFault int

const (
	// RowOK removes a row fault.
	RowOK RowFault = iota
	// RowWithoutUUID renders the event's row without its "uuid" (a damaged row, an export
	// filter gone wrong): the page is valid JSON, the row unusable.
	RowWithoutUUID
	// RowBreaksPage makes every index page holding the event answer 500 "An Internal Error
	// Has Occurred." (an event MISP cannot render — invalid UTF-8 in a field makes
	// json_encode throw; inferred, not captured).
	RowBreaksPage
)

// SetIndexRowFault damages the event's row in every later /events/index answer (RowOK
// repairs it). The event itself is unchanged: /events/view and writes still work.
func (s *Server) SetIndexRowFault(eventUUID string, f RowFault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.rowFaults == nil {
		s.rowFaults = map[string]RowFault{}
	}
	key := strings.ToLower(eventUUID)
	if f == RowOK {
		delete(s.rowFaults, key)
		return
	}
	s.rowFaults[key] = f
}

// damageRows applies the row faults to one index page: it reports false when the page
// must answer 500 instead, and removes "uuid" from the rows that lose it.
func (s *Server) damageRows(events []*eventRec, rows []any) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if len(s.rowFaults) == 0 {
		return true
	}
	for i, ev := range events {
		switch s.rowFaults[ev.uuid] {
		case RowBreaksPage:
			return false
		case RowWithoutUUID:
			row := rows[i].(obj)
			kept := make(obj, 0, len(row))
			for _, f := range row {
				if f.K != "uuid" {
					kept = append(kept, f)
				}
			}
			rows[i] = kept
		}
	}
	return true
}
