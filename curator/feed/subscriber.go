package feed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-zeromq/zmq4"
)

// Defaults for zero Options fields.
const (
	DefaultMaxMessageSize   = 64 << 20
	DefaultQueueSize        = 4096
	DefaultSilenceTimeout   = 60 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultBackoffInitial   = 500 * time.Millisecond
	DefaultBackoffMax       = 30 * time.Second
)

// Options configure a Subscriber. Zero values take the defaults above.
type Options struct {
	// Instance names the MISPInstance ("namespace/name"): metrics label, log key.
	Instance string
	// Endpoint of MISP's ZeroMQ publisher, "tcp://host:port" (misp-api.md §1.2:
	// Plugin.ZeroMQ_host/_port, default port 50000).
	Endpoint string
	// User and Password select ZMTP-PLAIN (Plugin.ZeroMQ_username/_password);
	// empty User means the NULL mechanism. They are never logged or put in errors.
	User, Password string
	// Topics are subscription prefixes; default {"misp_json"}, which matches every
	// topic (misp-api.md §1.4): any message then proves the publisher alive.
	Topics []string
	// MaxMessageSize drops larger messages, all frames together (counted;
	// catch-up covers the event). zmq4 has no such limit and allocates whatever a
	// frame header announces, so the Subscriber's transport skips oversized frames
	// on the wire before zmq4 sees them, and ends the connection when the frames
	// of one message add up past the limit (transport.go); messages under the
	// limit are still allocated by zmq4, twice under PLAIN (its Decrypt copies
	// the body). Default 64 MiB.
	MaxMessageSize int
	// QueueSize bounds the queue between the socket and the consumer; when it
	// is full, new messages are dropped and counted.
	QueueSize int
	// SilenceTimeout: with nothing at all received for this long, the connection
	// is closed and redialled. MISP sends misp_json_self only after 10 s idle
	// (misp-api.md §1.6), so keep it well above 10 s.
	SilenceTimeout time.Duration
	// HandshakeTimeout bounds the ZMTP greeting and security handshake.
	HandshakeTimeout time.Duration
	// DialTimeout bounds the TCP connect.
	DialTimeout time.Duration
	// Backoff between connection attempts.
	Backoff Backoff
	Logger  logr.Logger
	Metrics *Metrics
	// OnConnect is called after every successful connection (the first and each
	// reconnection), once the subscription is sent: messages published while
	// disconnected are lost (PUB/SUB), so the engine runs a REST catch-up. It is
	// called on the Subscriber's own goroutine and must not block.
	OnConnect func(State)
	// OnStateChange, if set, is called (on the Subscriber's goroutines, must not
	// block) whenever Phase or LastError changes; not for every message.
	OnStateChange func(State)
}

// Backoff is a capped exponential backoff with jitter: attempt n waits a random
// time in [d/2, d), d = min(Initial·2^(n-1), Max).
type Backoff struct {
	Initial, Max time.Duration
}

func (b Backoff) delay(attempt int, rnd func() float64) time.Duration {
	d := b.Max
	if attempt < 1 {
		attempt = 1
	}
	if shift := attempt - 1; shift < 32 {
		if x := b.Initial << shift; x > 0 && x < b.Max {
			d = x
		}
	}
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// Phase is the connection state.
type Phase string

const (
	PhaseStarting   Phase = "starting"   // Run not called yet
	PhaseConnecting Phase = "connecting" // TCP connect and ZMTP handshake in progress
	PhaseConnected  Phase = "connected"  // handshake done, subscription sent
	PhaseRetrying   Phase = "retrying"   // the last attempt failed or the connection was lost; waiting to redial
	PhaseStopped    Phase = "stopped"    // Run returned
)

// Failure classifies State.LastError.
type Failure string

const (
	FailureNone      Failure = ""
	FailureConnect   Failure = "connect"   // the TCP connect failed (refused, timeout, DNS)
	FailureHandshake Failure = "handshake" // the ZMTP greeting or PLAIN handshake failed
	FailureSilence   Failure = "silence"   // the silence watchdog closed the connection
	FailureLost      Failure = "lost"      // an established connection failed (Recv error)
)

// State is a snapshot of a Subscriber, for the MISPInstance status.
type State struct {
	Phase     Phase
	Endpoint  string
	Mechanism string // "NULL" or "PLAIN"

	ConnectedSince time.Time // start of the current connection (zero when not connected)
	LastMessage    time.Time // last frame of any topic, well-formed or not
	LastHeartbeat  time.Time // last misp_json_self

	Connects            int // successful handshakes
	Reconnects          int // established connections lost and redialled
	ConsecutiveFailures int // failed attempts since the last successful handshake

	Messages    uint64 // frames received
	Delivered   uint64 // messages put on the queue
	ParseErrors uint64
	Dropped     uint64 // queue full or too large

	LastError   string  // last connection problem, for people; never credentials; "" once connected
	Failure     Failure // what LastError is about
	LastErrorAt time.Time
}

// Summary is one sentence for a status condition. It holds no time that moves
// by itself, so a condition built from it changes only when the state does.
func (st State) Summary() string {
	switch st.Phase {
	case PhaseConnected:
		s := fmt.Sprintf("connected to %s (%s handshake ok)", st.Endpoint, st.Mechanism)
		if st.LastMessage.IsZero() || st.LastMessage.Before(st.ConnectedSince) {
			return s + ", no message received yet"
		}
		return s + ", receiving"
	case PhaseConnecting, PhaseRetrying:
		if st.LastError == "" {
			return fmt.Sprintf("connecting to %s (%s)", st.Endpoint, st.Mechanism)
		}
		return fmt.Sprintf("not connected to %s (%s): %s (%d failed attempts in a row)",
			st.Endpoint, st.Mechanism, st.LastError, st.ConsecutiveFailures)
	}
	return fmt.Sprintf("%s (%s)", st.Phase, st.Endpoint)
}

// Subscriber holds a ZeroMQ SUB connection to one MISP publisher and delivers
// parsed messages of kinds KindEvent, KindPublish and KindEventTag on a bounded
// channel. Heartbeats, other tag messages and ignored topics only update State
// and metrics.
//
// It owns its redial loop rather than using zmq4's: zmq4 v0.17.0's automatic
// reconnect stops after 10 tries 250 ms apart (~2.5 s), and its PLAIN client
// clears the credentials after the first handshake, so a reconnect under PLAIN
// fails silently forever (design.md "Failure model"; measured with libzmq in
// interop_test.go). Every connection therefore gets a fresh zmq4 socket and a
// fresh security object.
type Subscriber struct {
	opts   Options
	addr   string // host:port
	mech   string // "NULL" or "PLAIN"
	parser Parser
	out    chan Message
	log    logr.Logger
	rnd    func() float64

	running      atomic.Bool
	lastActivity atomic.Int64 // unix nanos: last byte or frame from the publisher

	mu          sync.Mutex
	st          State
	loggedKinds map[ErrorKind]bool // parse error kinds already logged once
	lastLogged  string             // last connection error logged at Info
}

// New validates opts and returns a Subscriber. Nothing happens until Run.
func New(opts Options) (*Subscriber, error) {
	addr, err := parseEndpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	if opts.User == "" && opts.Password != "" {
		return nil, errors.New("feed: a ZeroMQ password without a username")
	}
	if opts.User != "" && opts.Password == "" {
		// mispzmq.py refuses a username without a password (misp-api.md §1.3).
		return nil, errors.New("feed: a ZeroMQ username without a password")
	}
	if len(opts.User) > 255 || len(opts.Password) > 255 {
		return nil, errors.New("feed: ZeroMQ PLAIN username and password are limited to 255 bytes")
	}
	if len(opts.Topics) == 0 {
		opts.Topics = []string{string(TopicPublish)}
	}
	setDefault(&opts.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&opts.QueueSize, DefaultQueueSize)
	setDefault(&opts.SilenceTimeout, DefaultSilenceTimeout)
	setDefault(&opts.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&opts.DialTimeout, DefaultDialTimeout)
	setDefault(&opts.Backoff.Initial, DefaultBackoffInitial)
	setDefault(&opts.Backoff.Max, DefaultBackoffMax)
	if opts.Backoff.Max < opts.Backoff.Initial {
		opts.Backoff.Max = opts.Backoff.Initial
	}
	mech := "NULL"
	if opts.User != "" {
		mech = "PLAIN"
	}
	s := &Subscriber{
		opts:        opts,
		addr:        addr,
		mech:        mech,
		parser:      Parser{MaxSize: opts.MaxMessageSize},
		out:         make(chan Message, opts.QueueSize),
		log:         opts.Logger.WithValues("instance", opts.Instance, "endpoint", opts.Endpoint),
		rnd:         rand.Float64,
		loggedKinds: make(map[ErrorKind]bool),
		st:          State{Phase: PhaseStarting, Endpoint: opts.Endpoint, Mechanism: mech},
	}
	opts.Metrics.initInstance(opts.Instance)
	return s, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// parseEndpoint accepts "tcp://host:port", as MISP only binds TCP.
func parseEndpoint(ep string) (string, error) {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return "", fmt.Errorf("feed: ZeroMQ endpoint %q: want tcp://host:port", ep)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil || host == "" || port == "" || strings.ContainsAny(rest, "/@?#") {
		return "", fmt.Errorf("feed: ZeroMQ endpoint %q: want tcp://host:port", ep)
	}
	return net.JoinHostPort(host, port), nil
}

// Messages is the bounded queue of parsed messages. It is closed when Run returns.
func (s *Subscriber) Messages() <-chan Message { return s.out }

// Options returns the effective options (defaults applied) without credentials.
func (s *Subscriber) Options() Options {
	o := s.opts
	if o.Password != "" {
		o.Password = "<redacted>"
	}
	return o
}

// State returns a snapshot of the connection state.
func (s *Subscriber) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Run connects and keeps the subscription alive until ctx ends, then closes the
// Messages channel and returns ctx's error. It may be called once.
func (s *Subscriber) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("feed: Subscriber.Run called twice")
	}
	defer close(s.out)
	defer s.update(func(st *State) { st.Phase = PhaseStopped; st.ConnectedSince = time.Time{} })

	failures := 0
	for ctx.Err() == nil {
		s.update(func(st *State) {
			if st.Phase == PhaseStarting {
				st.Phase = PhaseConnecting // later attempts stay "retrying": no flapping
			}
		})
		c, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			s.connectFailed(err, failures)
		} else {
			healthy, reason, lost := s.serve(ctx, c)
			if ctx.Err() != nil {
				break
			}
			s.connectionLost(reason, lost)
			if healthy {
				failures = 0
			}
			failures++
		}
		if !sleep(ctx, s.opts.Backoff.delay(failures, s.rnd)) {
			break
		}
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Subscriber) connectFailed(err error, failures int) {
	var de *dialError
	if !errors.As(err, &de) {
		de = &dialError{stage: StageConnect, msg: err.Error(), err: err}
	}
	s.opts.Metrics.dialFailure(s.opts.Instance, de.stage)
	s.update(func(st *State) {
		st.Phase = PhaseRetrying
		st.ConsecutiveFailures = failures
		st.LastError = de.msg
		st.Failure = FailureConnect
		if de.stage == StageHandshake {
			st.Failure = FailureHandshake
		}
		st.LastErrorAt = time.Now()
	})
	s.logConnError(de.msg, "stage", de.stage, "failures", failures, "zmq4Error", de.err.Error())
}

// logConnError logs a connection problem at Info when it differs from the last
// one logged, else at V(1): a publisher down for hours is one line, not one per
// attempt.
func (s *Subscriber) logConnError(msg string, kv ...any) {
	s.mu.Lock()
	repeat := msg == s.lastLogged
	s.lastLogged = msg
	s.mu.Unlock()
	l := s.log
	if repeat {
		l = l.V(1)
	}
	l.Info("ZeroMQ subscription down: "+msg, kv...)
}

func (s *Subscriber) connectionLost(reason string, err error) {
	s.opts.Metrics.reconnect(s.opts.Instance, reason)
	s.opts.Metrics.setConnected(s.opts.Instance, false)
	var msg string
	switch {
	case reason == ReconnectSilence:
		msg = fmt.Sprintf("nothing received for %s (MISP sends a heartbeat after 10 s idle): redialling",
			s.opts.SilenceTimeout)
	case err != nil:
		msg = "connection lost: " + zmq4Reason(err)
	default:
		msg = "connection lost"
	}
	s.update(func(st *State) {
		st.Phase = PhaseRetrying
		st.ConnectedSince = time.Time{}
		st.Reconnects++
		st.LastError = msg
		st.Failure = FailureLost
		if reason == ReconnectSilence {
			st.Failure = FailureSilence
		}
		st.LastErrorAt = time.Now()
	})
	s.logConnError(msg, "reason", reason)
}

// serve reads one connection until it fails, falls silent or ctx ends. healthy
// reports that it was worth resetting the backoff (something was received or it
// lasted a while); reason is ReconnectRecvError or ReconnectSilence.
func (s *Subscriber) serve(ctx context.Context, c *conn) (healthy bool, reason string, err error) {
	start := time.Now()
	s.lastActivity.Store(start.UnixNano())
	var received atomic.Bool
	s.opts.Metrics.setConnected(s.opts.Instance, true)
	st := s.update(func(st *State) {
		st.Phase = PhaseConnected
		st.ConnectedSince = start
		st.Connects++
		st.ConsecutiveFailures = 0
		st.LastError = ""
		st.Failure = FailureNone
	})
	s.log.Info("ZeroMQ subscription connected", "mechanism", st.Mechanism, "topics", s.opts.Topics)

	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := c.sock.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			received.Store(true)
			s.handle(msg)
		}
	}()
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(st)
	}

	tick := time.NewTicker(min(s.opts.SilenceTimeout/4, time.Second))
	defer tick.Stop()
	defer c.close()
	for {
		select {
		case <-ctx.Done():
			c.close()
			<-recvErr
			return false, "", ctx.Err()
		case err := <-recvErr:
			healthy = received.Load() || time.Since(start) >= s.opts.Backoff.Max
			return healthy, ReconnectRecvError, err
		case <-tick.C:
			s.opts.Metrics.setQueueDepth(s.opts.Instance, len(s.out))
			if time.Since(time.Unix(0, s.lastActivity.Load())) >= s.opts.SilenceTimeout {
				c.close()
				<-recvErr // the reader ends once the socket is closed
				return true, ReconnectSilence, nil
			}
		}
	}
}

// handle runs on the reader goroutine for every ZeroMQ message.
func (s *Subscriber) handle(msg zmq4.Msg) {
	now := time.Now()
	s.lastActivity.Store(now.UnixNano())
	if msg.Type == zmq4.CmdMsg {
		return // a ZMTP command (e.g. PING) surfaced by zmq4's reader, not a message
	}
	var m Message
	var err error
	if len(msg.Frames) != 1 {
		err = &ParseError{Kind: KindMultipart, Offset: -1,
			Detail: fmt.Sprintf("%d frames, MISP sends one", len(msg.Frames))}
	} else {
		// Parser.MaxSize repeats the size check after Recv: the transport has
		// already skipped oversized frames, this catches anything that bypassed it.
		m, err = s.parser.Parse(msg.Frames[0])
	}
	heartbeat := err == nil && m.Kind == KindHeartbeat
	s.opts.Metrics.seen(s.opts.Instance, now, heartbeat)
	if err != nil {
		s.rejected(err, now)
		return
	}
	s.opts.Metrics.message(s.opts.Instance, m.Topic)
	deliver := m.Kind == KindEvent || m.Kind == KindPublish || m.Kind == KindEventTag
	s.mu.Lock()
	// State is updated before the message becomes visible to the consumer; the
	// send never blocks, so holding the lock for it is cheap.
	s.st.Messages++
	s.st.LastMessage = now
	if heartbeat {
		s.st.LastHeartbeat = now
	}
	dropped, firstDrop := false, false
	if deliver {
		select {
		case s.out <- m:
			s.st.Delivered++
		default:
			dropped = true
			s.st.Dropped++
			firstDrop = !s.loggedKinds["queue_full"]
			s.loggedKinds["queue_full"] = true
		}
	}
	if deliver {
		s.opts.Metrics.setQueueDepth(s.opts.Instance, len(s.out))
	}
	if dropped {
		s.opts.Metrics.drop(s.opts.Instance, DropQueueFull)
	}
	s.mu.Unlock()
	if firstDrop {
		s.log.Info("queue full: dropping messages until the engine catches up (logged once, counted in "+
			"misptrust_feed_dropped_total{reason=\"queue_full\"}; catch-up recovers the events)",
			"queueSize", s.opts.QueueSize)
	}
}

// rejected counts a frame the parser refused and logs its kind the first time.
func (s *Subscriber) rejected(err error, now time.Time) {
	var pe *ParseError
	errors.As(err, &pe)
	if pe.Kind == KindTooLarge {
		s.opts.Metrics.drop(s.opts.Instance, DropTooLarge)
	} else {
		s.opts.Metrics.parseError(s.opts.Instance, pe.Kind)
	}
	s.opts.Metrics.message(s.opts.Instance, pe.Topic)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Messages++
	s.st.LastMessage = now
	if pe.Kind == KindTooLarge {
		s.st.Dropped++
	} else {
		s.st.ParseErrors++
	}
	if !s.loggedKinds[pe.Kind] {
		s.loggedKinds[pe.Kind] = true
		s.log.Info("skipping malformed ZeroMQ message (each kind is logged once, all are counted in "+
			"misptrust_feed_parse_errors_total / misptrust_feed_dropped_total)", "kind", pe.Kind, "error", err.Error())
	}
}

// oversize counts a frame skipped on the wire by guardConn (never allocated).
func (s *Subscriber) oversize(size uint64) {
	s.opts.Metrics.drop(s.opts.Instance, DropTooLarge)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Messages++
	s.st.Dropped++
	s.st.LastMessage = time.Now()
	if !s.loggedKinds[KindTooLarge] {
		s.loggedKinds[KindTooLarge] = true
		s.log.Info("skipping ZeroMQ message over the size limit (logged once, counted in "+
			"misptrust_feed_dropped_total{reason=\"too_large\"})", "size", size, "limit", s.opts.MaxMessageSize)
	}
}

// update changes the state under the lock and reports phase/error changes.
func (s *Subscriber) update(f func(*State)) State {
	s.mu.Lock()
	before := s.st
	f(&s.st)
	after := s.st
	s.mu.Unlock()
	if s.opts.OnStateChange != nil && (before.Phase != after.Phase || before.LastError != after.LastError) {
		s.opts.OnStateChange(after)
	}
	return after
}
