package zmqpub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
)

// ErrClosed is returned by calls on a closed Publisher.
var ErrClosed = errors.New("zmqpub: publisher closed")

// Options configure a Publisher.
type Options struct {
	Addr           string        // "127.0.0.1:0" default; bind address
	User, Password string        // optional PLAIN credentials (both or none)
	HeartbeatEvery time.Duration // misp_json_self after this much idle time; 0 → 10s like MISP; <0 → never
	Seed           int64         // for deterministic drops
	Logf           func(string, ...any)
}

// Stats are the publisher's counters since New.
type Stats struct {
	// Published counts Publish calls whose frame was handed to the
	// subscribers connected at that moment (possibly none, as with MISP).
	Published uint64
	// Dropped counts Publish calls and heartbeats lost to SetDropRate.
	Dropped uint64
	// Heartbeats counts misp_json_self frames sent.
	Heartbeats uint64
	// Restarts counts Restart calls that closed the socket.
	Restarts int

	// Silenced counts Publish calls swallowed while SetSilent(true).
	Silenced uint64
	// QueueDrops counts frames lost for one subscriber because its send
	// queue (1000 frames, libzmq's default SNDHWM) was full.
	QueueDrops uint64
	// AuthFailures counts PLAIN handshakes refused for wrong credentials.
	AuthFailures uint64
	// HandshakeFailures counts other failed handshakes: wrong mechanism
	// (NULL client on a PLAIN publisher or the reverse), wrong socket type,
	// malformed or oversized handshake frames, handshake timeout.
	HandshakeFailures uint64
	// Subscribers is the number of connected peers that completed the handshake.
	Subscribers int
}

// limits are internal knobs; tests shorten them.
type limits struct {
	handshakeTimeout  time.Duration // whole handshake, greeting included
	sendHWM           int           // frames queued per subscriber
	maxHandshakeFrame uint64        // largest frame accepted during the handshake
	rebindFor         time.Duration // how long Restart retries to bind the port
}

func defaultLimits() limits {
	return limits{
		handshakeTimeout:  10 * time.Second,
		sendHWM:           1000, // libzmq ZMQ_SNDHWM default; mispzmq.py does not change it (§1.1)
		maxHandshakeFrame: 64 << 10,
		rebindFor:         5 * time.Second,
	}
}

// Publisher is a MISP-like ZeroMQ PUB endpoint. All methods are safe for
// concurrent use.
type Publisher struct {
	opts     Options
	lim      limits
	logf     func(string, ...any)
	every    time.Duration // heartbeat idle period; <0 never
	bindAddr string        // host:port, the port fixed after the first bind
	endpoint string

	lifecycle sync.Mutex // serialises Restart and Close

	mu         sync.Mutex
	gen        *generation // nil while the socket is down (inside Restart) or closed
	closed     bool
	silent     bool
	dropRate   float64
	started    time.Time // uptime origin, reset by Restart like mispzmq's settings reload
	lastSend   time.Time // last Publish or heartbeat: the idleness origin
	nPublish   uint64    // index of the next Publish in the drop stream
	nHeartbeat uint64    // index of the next heartbeat in its drop stream
	stats      Stats
	changed    chan struct{} // closed and replaced whenever subscribers change

	stop   chan struct{}
	hbDone chan struct{}
}

// generation is one bound socket: the listener and the peers it accepted.
// Restart closes a generation and opens the next one on the same port.
type generation struct {
	ln      net.Listener
	subs    map[*subscriber]struct{} // guarded by Publisher.mu
	pending map[net.Conn]struct{}    // in handshake; guarded by Publisher.mu
	closed  bool                     // guarded by Publisher.mu
	wg      sync.WaitGroup
}

// New binds the publisher and starts serving subscribers.
func New(opts Options) (*Publisher, error) {
	return newWithLimits(opts, defaultLimits())
}

func newWithLimits(opts Options, lim limits) (*Publisher, error) {
	if (opts.User == "") != (opts.Password == "") {
		// mispzmq.py raises "When username is set, password cannot be empty."
		return nil, errors.New("zmqpub: PLAIN needs both a username and a password, or neither")
	}
	if len(opts.User) > 255 || len(opts.Password) > 255 {
		return nil, errors.New("zmqpub: PLAIN username and password are limited to 255 bytes (RFC 24)")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("zmqpub: bind address %q: %w", opts.Addr, err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("zmqpub: bind %s: %w", opts.Addr, err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		_ = ln.Close()
		return nil, fmt.Errorf("zmqpub: bind %s: unexpected address type %T", opts.Addr, ln.Addr())
	}
	port := strconv.Itoa(tcp.Port)
	dialHost := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		dialHost = "127.0.0.1"
	}

	every := opts.HeartbeatEvery
	if every == 0 {
		every = 10 * time.Second // mispzmq.py: BLPOP timeout=10
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	now := time.Now()
	p := &Publisher{
		opts:     opts,
		lim:      lim,
		logf:     logf,
		every:    every,
		bindAddr: net.JoinHostPort(host, port),
		endpoint: "tcp://" + net.JoinHostPort(dialHost, port),
		started:  now,
		lastSend: now,
		changed:  make(chan struct{}),
		stop:     make(chan struct{}),
		hbDone:   make(chan struct{}),
	}
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	if every > 0 {
		go p.heartbeatLoop()
	} else {
		close(p.hbDone)
	}
	logf("zmqpub: listening on %s (mechanism %s)", p.endpoint, p.mechanism())
	return p, nil
}

func (p *Publisher) mechanism() zmq4.SecurityType {
	if p.opts.User != "" {
		return zmq4.PlainSecurity
	}
	return zmq4.NullSecurity
}

func (p *Publisher) security() zmq4.Security {
	if p.opts.User != "" {
		return plainServer{user: []byte(p.opts.User), pass: []byte(p.opts.Password)}
	}
	return null.Security()
}

// Endpoint returns the address subscribers connect to, "tcp://host:port".
// It stays the same across Restart.
func (p *Publisher) Endpoint() string { return p.endpoint }

// Publish sends ONE single-part frame, topic + " " + payload, to every
// subscriber whose subscription is a prefix of it, exactly like mispzmq.py
// (misp-api.md §1.4). It never blocks on the network: a subscriber whose
// queue is full loses the frame (Stats.QueueDrops). With no subscriber the
// frame is lost, as on a real PUB socket. The payload is copied.
//
// Neither topic nor payload is checked, as mispzmq.py checks nothing either:
// tests may send odd frames on purpose (an empty topic, a topic with a
// space, a payload that is not JSON). The only error is ErrClosed.
func (p *Publisher) Publish(topic string, payload []byte) error {
	frame := make([]byte, 0, len(topic)+1+len(payload))
	frame = append(frame, topic...)
	frame = append(frame, ' ')
	frame = append(frame, payload...)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("zmqpub: publish %q: %w", topic, ErrClosed)
	}
	n := p.nPublish
	p.nPublish++
	p.lastSend = time.Now() // MISP only heartbeats when its Redis queue is idle
	switch {
	case p.silent:
		p.stats.Silenced++
	case dropped(p.opts.Seed, streamPublish, n, p.dropRate):
		p.stats.Dropped++
	default:
		p.fanoutLocked(frame)
		p.stats.Published++
	}
	return nil
}

// fanoutLocked queues frame for every matching subscriber. p.mu is held.
func (p *Publisher) fanoutLocked(frame []byte) {
	if p.gen == nil {
		return // socket down (Restart in progress): nobody can receive it
	}
	for s := range p.gen.subs {
		if !s.matches(frame) {
			continue
		}
		if ok, first := s.enqueue(frame); !ok {
			p.stats.QueueDrops++
			if first {
				p.logf("zmqpub: subscriber %s is not reading; dropping its messages (queue of %d full)", s.remote, p.lim.sendHWM)
			}
		}
	}
}

// SetSilent makes the publisher swallow everything, heartbeats included,
// while connections stay up and keep answering ZMTP PINGs: a hung
// mispzmq.py whose libzmq I/O thread still runs.
func (p *Publisher) SetSilent(silent bool) {
	p.mu.Lock()
	p.silent = silent
	p.mu.Unlock()
}

// SetDropRate makes the publisher lose this fraction (0..1) of outgoing
// messages, Publish and heartbeats alike, counted in Stats.Dropped. Which
// messages are lost is a pure function of Options.Seed, the rate and the
// message's position (its Publish call number; heartbeats have their own
// numbering), so two publishers with the same seed lose the same messages.
// Values outside 0..1 are clamped; NaN means 0.
func (p *Publisher) SetDropRate(rate float64) {
	switch {
	case !(rate > 0):
		rate = 0
	case rate > 1:
		rate = 1
	}
	p.mu.Lock()
	p.dropRate = rate
	p.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	if p.gen != nil {
		s.Subscribers = len(p.gen.subs)
	}
	return s
}

// WaitSubscribed blocks until at least n connected subscribers would receive
// a message on topic (one of their subscriptions is a prefix of topic + " "),
// or ctx ends. PUB/SUB drops what is published before a subscription reaches
// the publisher ("slow joiner"); tests call this before publishing.
func (p *Publisher) WaitSubscribed(ctx context.Context, topic string, n int) error {
	probe := []byte(topic + " ")
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return fmt.Errorf("zmqpub: wait for subscribers of %q: %w", topic, ErrClosed)
		}
		count := 0
		if p.gen != nil {
			for s := range p.gen.subs {
				if s.matches(probe) {
					count++
				}
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zmqpub: wait for %d subscriber(s) of %q (have %d): %w", n, topic, count, ctx.Err())
		case <-changed:
		}
	}
}

// notifyLocked wakes WaitSubscribed callers. p.mu is held.
func (p *Publisher) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Publisher) notify() {
	p.mu.Lock()
	p.notifyLocked()
	p.mu.Unlock()
}

// Restart closes the socket, dropping every connection, and binds the same
// port again, like a mispzmq.py reload or restart (misp-api.md §1.6): the
// subscribers must reconnect, and what is published before they have
// resubscribed is lost. The heartbeat uptime starts again from 0, as
// mispzmq.py's does when it reloads its settings.
//
// If the port cannot be bound again within a few seconds (someone else took
// it), Restart returns an error and the publisher stays down; Publish keeps
// succeeding with nobody to receive, and a later Restart tries again.
func (p *Publisher) Restart() error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("zmqpub: restart: %w", ErrClosed)
	}
	old := p.gen
	p.gen = nil
	p.stats.Restarts++
	p.notifyLocked()
	p.mu.Unlock()
	if old != nil {
		p.shutdown(old)
	}

	ln, err := p.rebind()
	if err != nil {
		return fmt.Errorf("zmqpub: restart: bind %s again: %w", p.bindAddr, err)
	}
	p.mu.Lock()
	p.started = time.Now()
	p.serveLocked(ln)
	p.mu.Unlock()
	p.logf("zmqpub: restarted on %s", p.endpoint)
	return nil
}

// rebind binds p.bindAddr, retrying for a while: the port was ours a moment
// ago, but another process may have grabbed it in between.
func (p *Publisher) rebind() (net.Listener, error) {
	deadline := time.Now().Add(p.lim.rebindFor)
	wait := 10 * time.Millisecond
	for {
		ln, err := net.Listen("tcp", p.bindAddr)
		if err == nil {
			return ln, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// Close stops the publisher and drops every connection. Further calls
// return nil.
func (p *Publisher) Close() error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	old := p.gen
	p.gen = nil
	p.notifyLocked()
	p.mu.Unlock()

	close(p.stop)
	<-p.hbDone
	if old != nil {
		p.shutdown(old)
	}
	return nil
}

// serveLocked starts accepting on ln as a new generation. p.mu is held.
func (p *Publisher) serveLocked(ln net.Listener) {
	g := &generation{
		ln:      ln,
		subs:    make(map[*subscriber]struct{}),
		pending: make(map[net.Conn]struct{}),
	}
	p.gen = g
	g.wg.Add(1)
	go p.acceptLoop(g)
}

// shutdown closes a generation's listener and connections and waits for its
// goroutines.
func (p *Publisher) shutdown(g *generation) {
	p.mu.Lock()
	g.closed = true
	subs := make([]*subscriber, 0, len(g.subs))
	for s := range g.subs {
		subs = append(subs, s)
	}
	clear(g.subs)
	pending := make([]net.Conn, 0, len(g.pending))
	for c := range g.pending {
		pending = append(pending, c)
	}
	p.mu.Unlock()

	_ = g.ln.Close()
	for _, c := range pending {
		_ = c.Close()
	}
	for _, s := range subs {
		s.close()
	}
	g.wg.Wait()
}

func (p *Publisher) acceptLoop(g *generation) {
	defer g.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := g.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. EMFILE: back off instead of spinning.
			p.logf("zmqpub: accept on %s: %v (retrying in %v)", p.endpoint, err, backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		p.mu.Lock()
		if g.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		g.pending[c] = struct{}{}
		g.wg.Add(1)
		p.mu.Unlock()
		// One goroutine per handshake: unlike zmq4's PUB socket, whose accept
		// loop runs each handshake inline without a deadline, a peer that
		// connects and says nothing does not keep others out.
		go p.serveConn(g, c)
	}
}

// serveConn runs the handshake of one accepted connection and then serves it.
func (p *Publisher) serveConn(g *generation, c net.Conn) {
	defer g.wg.Done()
	remote := c.RemoteAddr().String()
	zc, err := p.handshake(c)

	p.mu.Lock()
	delete(g.pending, c)
	if g.closed {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	if err != nil {
		if errors.Is(err, errAuthFailed) {
			p.stats.AuthFailures++
		} else {
			p.stats.HandshakeFailures++
		}
		p.mu.Unlock()
		_ = c.Close()
		// err never holds credentials: plainServer does not put them in errors.
		p.logf("zmqpub: refused connection from %s: %v", remote, err)
		return
	}
	s := newSubscriber(c, zc, p.lim.sendHWM, p.notify)
	g.subs[s] = struct{}{}
	g.wg.Add(2)
	p.notifyLocked()
	p.mu.Unlock()
	p.logf("zmqpub: subscriber %s connected", remote)

	go func() {
		defer g.wg.Done()
		p.endSubscriber(g, s, s.readLoop())
	}()
	go func() {
		defer g.wg.Done()
		p.endSubscriber(g, s, s.writeLoop())
	}()
}

// handshake performs the ZMTP handshake on c with zmq4, under a deadline and
// a frame size limit, and turns a zmq4 panic on malformed input into an error.
func (p *Publisher) handshake(c net.Conn) (zc *zmq4.Conn, err error) {
	defer func() {
		if r := recover(); r != nil {
			// zmq4's metadata decoder indexes past short input (protocol.go,
			// Property.Write); a broken peer must not crash the test binary.
			zc, err = nil, fmt.Errorf("ZMTP handshake: malformed input: %v", r)
		}
	}()
	if err := c.SetDeadline(time.Now().Add(p.lim.handshakeTimeout)); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	zc, err = zmq4.Open(newGuardConn(c, p.lim.maxHandshakeFrame), p.security(), zmq4.Pub, nil, true, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("ZMTP %s handshake not completed within %v: %w", p.mechanism(), p.lim.handshakeTimeout, err)
		}
		return nil, fmt.Errorf("ZMTP %s handshake: %w", p.mechanism(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return zc, nil
}

// endSubscriber removes s after one of its loops ended with err.
func (p *Publisher) endSubscriber(g *generation, s *subscriber, err error) {
	p.mu.Lock()
	_, present := g.subs[s]
	if present {
		delete(g.subs, s)
		p.notifyLocked()
	}
	p.mu.Unlock()
	s.close()
	if present && err != nil {
		p.logf("zmqpub: subscriber %s disconnected: %v", s.remote, err)
	}
}
