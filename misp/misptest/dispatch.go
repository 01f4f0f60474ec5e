package misptest

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// call is one REST request being served.
type call struct {
	s          *Server
	w          http.ResponseWriter
	r          *http.Request
	route      string
	params     []string          // positional URL parameters after the action
	named      map[string]string // CakePHP named parameters (/key:value)
	jsonExt    bool              // the path ended in .json
	user       *userRec
	body       []byte
	data       any // decoded JSON body; nil when empty
	compact    bool
	status     int
	recordUser string
	finish     func() // records the call in the statistics (once)
	recorded   bool
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.adminMu.RLock()
		a := s.admin
		s.adminMu.RUnlock()
		if a != nil {
			a.ServeHTTP(w, r)
			return
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	rt := parseRoute(r.URL.Path)
	cw := &countingWriter{ResponseWriter: w}
	c := &call{s: s, w: cw, r: r, route: rt.route, params: rt.params, named: rt.named, jsonExt: rt.jsonExt, body: body}
	rec := RequestRecord{Time: s.now(), Method: r.Method, Route: rt.route, Path: r.URL.Path, Body: string(body)}
	c.finish = func() {
		if c.recorded {
			return
		}
		c.recorded = true
		rec.Status = cw.status
		rec.Bytes = cw.n
		rec.UserID = c.recordUser
		s.record(rec, rt)
	}
	defer c.finish()

	if s.isDown() {
		// Recorded before the reset, so that a test sees the call once its client has failed.
		c.finish()
		resetConn(w, true)
		return
	}
	answered, after := s.applyFault(c, w, rt.route)
	switch {
	case answered:
	case after != nil:
		s.serveThenFail(c, w, rt, *after)
	case s.capacity != nil:
		// A worker of the capacity model serves it, after its place in MISP's queue.
		s.capacity.serve(c, rt.route, func() { s.serveMISP(c, rt) })
	default:
		s.serveMISP(c, rt)
	}
}

// serveMISP is MISP's AppController::beforeFilter followed by the action.
func (s *Server) serveMISP(c *call, rt route) {
	ua := c.r.Header.Get("User-Agent")
	c.compact = strings.HasPrefix(ua, "PyMISP") || strings.HasPrefix(ua, "MISP") || c.jsonExt

	if !c.isREST() {
		// Without Accept: application/json MISP treats the call as a browser request and
		// never looks at the API key: an unauthenticated browser is sent to the login page
		// (misp-api.md §2.0). The double has no sessions, so every such call is unauthenticated.
		c.w.Header().Set("Location", s.url+"/users/login")
		c.w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		c.w.WriteHeader(http.StatusFound)
		c.status = http.StatusFound
		return
	}
	user := s.authenticate(c.r)
	if user == nil {
		c.errorJSON(http.StatusForbidden, "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.")
		return
	}
	c.user = user
	c.recordUser = itoa(user.id)
	if c.isJSONBody() && len(strings.TrimSpace(string(c.body))) > 0 {
		data, err := decodeJSONBody(c.body)
		if err != nil {
			c.errorJSON(http.StatusMethodNotAllowed, "Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON string. This request has been blocked to avoid an unfiltered request.")
			return
		}
		c.data = data
	}
	h, ok := routes[rt.key]
	if !ok {
		s.logf("misptest: unmodelled endpoint %s %s", c.r.Method, rt.route)
		c.errorJSON(http.StatusNotFound, "Not Found")
		return
	}
	if h.acl != nil {
		if !h.acl(user) {
			c.errorJSON(http.StatusForbidden, "You do not have permission to use this functionality.")
			return
		}
	}
	h.fn(s, c)
}

// isREST is IndexFilterComponent::isRest: Accept preferring application/json, or a .json URL.
func (c *call) isREST() bool {
	if c.jsonExt {
		return true
	}
	accept := c.r.Header.Get("Accept")
	if accept == "" {
		return false
	}
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			fmt.Sscanf(v, "%g", &q)
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "application/json"
}

func (c *call) isJSONBody() bool {
	mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// authenticate implements AppController::__loginByAuthKey: the Authorization header (or
// X-MISP-AUTH) is split on ",", each part must be 40 letters/digits; "Basic ..." is ignored.
func (s *Server) authenticate(r *http.Request) *userRec {
	for _, hname := range []string{"Authorization", "X-MISP-AUTH"} {
		v := r.Header.Get(hname)
		if v == "" || strings.HasPrefix(v, "Basic") {
			continue
		}
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !validKey(part) {
				continue
			}
			s.mu.Lock()
			var found *userRec
			for _, u := range s.users {
				if u.key == part {
					found = u
					break
				}
			}
			s.mu.Unlock()
			if found != nil {
				return found
			}
		}
		return nil
	}
	return nil
}

func validKey(k string) bool {
	if len(k) != 40 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// route is a parsed CakePHP URL /controller/action/param/named:value.
type route struct {
	key     string // lower-case "controller/action" used for dispatch
	route   string // canonical "/controller/action"
	params  []string
	named   map[string]string
	jsonExt bool
}

func parseRoute(path string) route {
	rt := route{named: map[string]string{}}
	p := strings.Trim(path, "/")
	if strings.HasSuffix(p, ".json") {
		p = strings.TrimSuffix(p, ".json")
		rt.jsonExt = true
	}
	parts := strings.Split(p, "/")
	controller := ""
	if len(parts) > 0 {
		controller = parts[0]
	}
	action := "index"
	rest := []string{}
	if len(parts) > 1 && parts[1] != "" {
		action = parts[1]
		rest = parts[2:]
	}
	for _, seg := range rest {
		if k, v, ok := strings.Cut(seg, ":"); ok && k != "" && !isUUID(seg) {
			rt.named[k] = v
			continue
		}
		rt.params = append(rt.params, seg)
	}
	rt.key = strings.ToLower(controller + "/" + action)
	if h, ok := routes[rt.key]; ok {
		rt.route = h.route
	} else {
		rt.route = "/" + controller + "/" + action
	}
	return rt
}

func decodeJSONBody(b []byte) (any, error) {
	dec := newJSONDecoder(b)
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}
