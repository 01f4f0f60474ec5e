package misptest

import "net/http"

func (s *Server) record(rec RequestRecord, rt route) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.calls[rec.Route]++
	h, known := routes[rt.key]
	// A write is a state-changing call: a modelled write action, or any POST/PUT/DELETE to an
	// endpoint the double does not model (/events/add, /servers/pull, ...), which the code
	// under test should not be calling unnoticed.
	if rec.Method != http.MethodGet && rec.Method != http.MethodHead && (!known || h.write) {
		s.writes++
	}
	s.bytes += rec.Bytes
	s.requests = append(s.requests, rec)
}

// Calls is the number of requests for a route such as "/events/index" or
// "/tags/attachTagToObject", whatever their outcome (faults and auth failures included).
func (s *Server) Calls(endpoint string) int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.calls[endpoint]
}

// WriteCalls is the number of state-changing requests (tag, publish, unpublish, alert,
// warninglist add/edit/delete/toggleEnable, and any POST to an unmodelled endpoint), whatever
// their outcome.
func (s *Server) WriteCalls() int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.writes
}

// BytesServed is the total size of all response bodies.
func (s *Server) BytesServed() int64 {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.bytes
}

// Requests is the request log, oldest first.
func (s *Server) Requests() []RequestRecord {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return append([]RequestRecord(nil), s.requests...)
}

// CallsByRoute is a copy of all per-route counters.
func (s *Server) CallsByRoute() map[string]int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetStats clears counters, bytes and the request log (not the state, not Published).
func (s *Server) ResetStats() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.calls = map[string]int{}
	s.writes = 0
	s.bytes = 0
	s.requests = nil
	if s.capacity != nil {
		s.capacity.resetStats()
	}
}
