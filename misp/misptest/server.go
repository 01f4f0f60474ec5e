package misptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is a usable MISP 2.5.1 with synchronous publishing
// and no ZeroMQ.
type Options struct {
	// HostOrg is MISP.host_org_id's organisation. Default: ORGNAME
	// 997004a6-e769-4ab8-b467-a1ca84cf0666 (id "1"), as in the captures.
	HostOrg Org
	// AdminKey is the key of user 1, a site admin of the host org with every permission.
	// Default: a fixed 40-character key (DefaultAdminKey).
	AdminKey string
	// ZMQ starts a ZeroMQ PUB publisher (package zmqpub) next to the REST API.
	ZMQ bool
	// ZMQUser and ZMQPassword turn on PLAIN authentication on the publisher.
	ZMQUser, ZMQPassword string
	// HeartbeatEvery is the idle time after which misp_json_self is published; 0 → 10s like
	// mispzmq.py, < 0 → never.
	HeartbeatEvery time.Duration
	// BackgroundJobs makes /events/publish and /events/alert answer "Job queued" and apply the
	// publish JobDelay later, like MISP.background_jobs=true (the usual production setting).
	BackgroundJobs bool
	// JobDelay is how long a queued publish waits for its "worker"; default 300ms (the real
	// worker took ~330ms in sync/api/63).
	JobDelay time.Duration
	// Logf receives one line per notable event (unmodelled endpoints, skipped pulls). Never
	// given secrets.
	Logf func(format string, args ...any)

	// Addr is the REST listen address; default "127.0.0.1:0".
	Addr string
	// ZMQAddr is the ZeroMQ bind address (host:port); default "127.0.0.1:0".
	ZMQAddr string
	// Seed makes generated keys, UUIDs, attribute values and fault decisions deterministic;
	// 0 means 1.
	Seed uint64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultAdminKey is the admin key used when Options.AdminKey is empty.
const DefaultAdminKey = "MISPtestADMINkey000000000000000000000000"

// Message is one ZeroMQ message the double published (or would have published when
// Options.ZMQ is false): topic and JSON payload, sent as the single frame topic+" "+payload.
type Message struct {
	Topic   string
	Payload []byte
	Time    time.Time
}

// Frame is the exact bytes of the single ZeroMQ frame (mispzmq.py: topic + b" " + payload).
func (m Message) Frame() []byte {
	return append(append([]byte(m.Topic), ' '), m.Payload...)
}

// RequestRecord is one REST request seen by the double.
type RequestRecord struct {
	Time   time.Time
	Method string
	Route  string // "/events/index", "/tags/attachTagToObject", ...
	Path   string // the raw request path
	Status int    // 0 when the connection was dropped or reset
	Body   string // request body
	UserID string // "" when unauthenticated
	Bytes  int64  // response body bytes
}

// Server is a running MISP double.
type Server struct {
	opts    Options
	ln      net.Listener
	httpSrv *http.Server
	url     string
	logf    func(string, ...any)
	now     func() time.Time

	mu             sync.Mutex // guards the MISP state below
	rng            *rand.Rand
	instanceUUID   string
	hostOrgID      int
	orgs           map[int]*orgRec
	nextOrgID      int
	roles          []*roleRec
	users          map[int]*userRec
	nextUserID     int
	syncUsers      map[int]*userRec // per org: the user a partner pushes with
	tags           map[int]*tagRec
	tagOrder       []int
	nextTagID      int
	events         map[int]*eventRec
	eventsByUUID   map[string]*eventRec // lower-case uuid
	eventOrder     []int                // event ids, ascending
	nextEventID    int
	nextAttrID     int
	nextEventTagID int
	wls            map[int]*wlRec
	nextWLID       int
	nextWLEntryID  int
	nextWLTypeID   int
	wlCache        []cachedWL // what MISP's Redis warninglist cache holds (see warninglists.go)

	pubMu     sync.Mutex // orders ZeroMQ messages like the state changes that caused them
	pub       publisher
	published []Message

	statsMu  sync.Mutex
	calls    map[string]int
	writes   int
	bytes    int64
	requests []RequestRecord

	faultMu sync.Mutex
	faults  map[string]*faultState
	down    bool

	adminMu sync.RWMutex
	admin   http.Handler

	jobs    sync.WaitGroup
	closing chan struct{}
	closed  sync.Once
}

// NewServer starts a double like httptest.NewServer and panics if it cannot listen.
func NewServer(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic(fmt.Sprintf("misptest: %v", err))
	}
	return s
}

// Start starts a double and returns an error instead of panicking (for hack/mispsim).
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.ZMQAddr == "" {
		opts.ZMQAddr = "127.0.0.1:0"
	}
	if opts.AdminKey == "" {
		opts.AdminKey = DefaultAdminKey
	}
	if !validKey(opts.AdminKey) {
		return nil, errors.New("admin key must be 40 letters or digits (MISP rejects anything else)")
	}
	if opts.ZMQUser != "" && opts.ZMQPassword == "" {
		// mispzmq.py refuses a username without a password (misp-api.md §1.3).
		return nil, errors.New("ZeroMQ user given without a password")
	}
	if opts.JobDelay <= 0 {
		opts.JobDelay = 300 * time.Millisecond
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	s := &Server{
		opts:    opts,
		logf:    opts.Logf,
		now:     opts.Now,
		calls:   map[string]int{},
		faults:  map[string]*faultState{},
		closing: make(chan struct{}),
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.rng = rand.New(rand.NewPCG(opts.Seed, 0x6d697370))
	s.seedState()

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	if opts.ZMQ {
		p, err := newPublisher(opts, s.logf)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("start ZeroMQ publisher on %s: %w", opts.ZMQAddr, err)
		}
		s.pub = p
	}
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("misptest: HTTP server stopped: %v", err)
		}
	}()
	return s, nil
}

// URL is the base URL of the REST API, "http://127.0.0.1:NNNNN".
func (s *Server) URL() string { return s.url }

// AdminKey is the site admin's API key.
func (s *Server) AdminKey() string { return s.opts.AdminKey }

// InstanceUUID is MISP.uuid, shown by /servers/getVersion to users with perm_sync.
func (s *Server) InstanceUUID() string { return s.instanceUUID }

// ZMQEndpoint is "tcp://127.0.0.1:NNNNN", or "" when ZeroMQ is off.
func (s *Server) ZMQEndpoint() string {
	if s.pub == nil {
		return ""
	}
	return s.pub.Endpoint()
}

// Close stops the HTTP server, pending background jobs and the publisher.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.httpSrv.Close()
		}
		s.jobs.Wait()
		if s.pub != nil {
			if err := s.pub.Close(); err != nil {
				s.logf("misptest: close publisher: %v", err)
			}
		}
	})
}

// HandleAdmin serves h under /_sim/ on the REST listener, outside MISP's authentication,
// fault injection and statistics (hack/mispsim uses it for its admin API).
func (s *Server) HandleAdmin(h http.Handler) {
	s.adminMu.Lock()
	s.admin = h
	s.adminMu.Unlock()
}

// ---- request dispatch ----

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
	if s.applyFault(c, w, rt.route) {
		return
	}
	s.serveMISP(c, rt)
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

// ---- responses ----

// view writes a RestResponse::viewData answer.
func (c *call) view(status int, v any) {
	if c.compact {
		c.write(status, compactJSON(v))
	} else {
		c.write(status, prettyJSON(v))
	}
}

func (c *call) write(status int, body []byte) {
	c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	c.w.WriteHeader(status)
	c.status = status
	if c.r.Method != http.MethodHead {
		c.w.Write(body)
	}
}

// errorJSON writes a CakePHP exception body: {"name","message","url"}, values through h(),
// encoded with plain json_encode (escaped slashes), compact (misp-api.md §0; api/02, api/61).
func (c *call) errorJSON(status int, msg string) {
	body := obj{{"name", h(msg)}, {"message", h(msg)}, {"url", h(c.r.URL.EscapedPath())}}
	c.write(status, phpDefaultJSON(body))
}

// internalError is what MISP with debug=0 answers for any non-HTTP exception.
func (c *call) internalError() {
	c.errorJSON(http.StatusInternalServerError, "An Internal Error Has Occurred.")
}

// saveSuccess is RestResponse::saveSuccessResponse.
func (c *call) saveSuccess(controller, action, id, message string) {
	b := obj{{"saved", true}, {"success", true}, {"name", message}, {"message", message}, {"url", actionURL(controller, action, id)}}
	if id != "" {
		b = append(b, field{"id", id})
	}
	c.view(http.StatusOK, b)
}

// saveFail is RestResponse::saveFailResponse: HTTP 403, even for validation errors.
func (c *call) saveFail(controller, action, id, singular string, errs any) {
	name := "Could not " + action + " " + singular
	b := obj{{"saved", false}, {"name", name}, {"message", name}, {"url", actionURL(controller, action, id)}, {"errors", errs}}
	if id != "" {
		b = append(b, field{"id", id})
	}
	c.view(http.StatusForbidden, b)
}

func actionURL(controller, action, id string) string {
	u := "/" + controller + "/" + action
	if id != "" {
		u += "/" + id
	}
	return u
}

type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// ---- statistics ----

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
}
