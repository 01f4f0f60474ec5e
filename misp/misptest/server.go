package misptest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
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
	// Jobs can fail, vanish or wait for stopped workers: see jobs.go.
	BackgroundJobs bool
	// JobDelay is how long a queued publish waits for its "worker"; default 300ms (the real
	// worker took ~330ms in sync/api/63).
	JobDelay time.Duration
	// Capacity serves requests with a finite worker pool, service times and a background
	// job queue (capacity.go); nil: every call is answered at once (unit tests).
	Capacity *Capacity
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
	servers        []*serverRec     // connected servers (server links), by ascending id
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

	faultMu   sync.Mutex
	faults    map[string]*faultState
	rowFaults map[string]RowFault // by event uuid (faults.go)
	down      bool

	adminMu sync.RWMutex
	admin   http.Handler

	jobq     jobQueue  // background jobs (jobs.go)
	capacity *capacity // nil: unlimited

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
	if opts.Capacity != nil {
		s.capacity = newCapacity(*opts.Capacity, opts.Seed, s.closing, &s.jobs)
	}
	s.seedState()
	s.jobq.init(opts.Seed)

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
	s.jobs.Add(1)
	go s.runJobs()
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
