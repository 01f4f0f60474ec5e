package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/plain"
)

// One connection attempt of the Subscriber (Run redials through connect) and
// the sentence a person reads when it fails.

// conn is one live connection.
type conn struct {
	sock   zmq4.Socket
	cancel context.CancelFunc
	once   sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		_ = c.sock.Close()
		c.cancel()
	})
}

// dialError is a failed connection attempt.
type dialError struct {
	stage string // StageConnect or StageHandshake
	msg   string // for people: what went wrong; never credentials
	err   error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.err }

// connect dials with a fresh socket and security object (see Subscriber).
func (s *Subscriber) connect(ctx context.Context) (*conn, error) {
	hooks := &dialHooks{
		handshakeTimeout: s.opts.HandshakeTimeout,
		maxFrame:         uint64(s.opts.MaxMessageSize),
		onOversize:       s.oversize,
		activity:         &s.lastActivity,
	}
	sctx, cancel := context.WithCancel(context.WithValue(ctx, dialHooksKey{}, hooks))
	opts := []zmq4.Option{
		zmq4.WithAutomaticReconnect(false), // we redial ourselves
		zmq4.WithDialerMaxRetries(0),       // one TCP attempt per call; backoff is ours
		zmq4.WithDialerTimeout(s.opts.DialTimeout),
		zmq4.WithTimeout(s.opts.HandshakeTimeout), // bounds sending the subscriptions
		zmq4.WithLogger(log.New(io.Discard, "", 0)),
	}
	if s.opts.User != "" {
		// plain.Security forgets the credentials after one handshake: a new one
		// for every connection.
		opts = append(opts, zmq4.WithSecurity(plain.Security(s.opts.User, s.opts.Password)))
	}
	sock := zmq4.NewSub(sctx, opts...)
	for _, t := range s.opts.Topics {
		if err := sock.SetOption(zmq4.OptionSubscribe, t); err != nil {
			_ = sock.Close()
			cancel()
			return nil, &dialError{stage: StageConnect, msg: fmt.Sprintf("subscribe %q: %v", t, err), err: err}
		}
	}
	stop := context.AfterFunc(ctx, hooks.abort)
	err := sock.Dial(transportName + "://" + s.addr)
	stop()
	if err != nil {
		_ = sock.Close()
		cancel()
		return nil, s.explainDialError(err, hooks)
	}
	if g := hooks.getConn(); g != nil {
		_ = g.SetDeadline(time.Time{}) // the handshake deadline must not hit the live connection
	}
	return &conn{sock: sock, cancel: cancel}, nil
}

// explainDialError turns zmq4's error into a sentence a person can act on, with
// what the wire showed (zmq4 alone says "invalid command name" for a refused
// password: see parseErrorCommand).
func (s *Subscriber) explainDialError(err error, hooks *dialHooks) *dialError {
	g := hooks.getConn()
	if g == nil {
		return &dialError{stage: StageConnect, msg: tcpReason(err), err: err}
	}
	d := g.diag()
	mech := s.mech
	var msg string
	var ne net.Error
	switch {
	case d.gotError && mech == "PLAIN":
		msg = fmt.Sprintf("handshake failed: the publisher refused the PLAIN credentials "+
			"(ZMTP ERROR %q): check the ZeroMQ username and password", d.errorReason)
	case d.gotError:
		msg = fmt.Sprintf("handshake failed: the publisher sent ZMTP ERROR %q", d.errorReason)
	case d.peerMechanism != "" && d.peerMechanism != mech:
		msg = fmt.Sprintf("handshake failed: the publisher uses the %s mechanism, this subscription %s "+
			"(set or remove the ZeroMQ credentials)", d.peerMechanism, mech)
	case errors.As(err, &ne) && ne.Timeout():
		msg = fmt.Sprintf("handshake failed: no ZMTP handshake within %s (is this a ZeroMQ publisher?)",
			s.opts.HandshakeTimeout)
	case d.greetingBytes < greetingLen:
		msg = fmt.Sprintf("handshake failed: the publisher closed the connection during the ZMTP greeting "+
			"(after %d of 64 bytes): security mechanism mismatch? this subscription uses %s", d.greetingBytes, mech)
	default:
		msg = "handshake failed: " + zmq4Reason(err)
	}
	return &dialError{stage: StageHandshake, msg: msg, err: err}
}

// tcpReason says why the TCP connect failed ("TCP connect: connection refused").
func tcpReason(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "resolve " + dnsErr.Name + ": " + dnsErr.Err
	}
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		return "TCP connect: " + sysErr.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return "TCP connect: " + oe.Err.Error()
	}
	return "TCP connect: " + zmq4Reason(err)
}

// zmq4Reason drops zmq4's repeated "zmq4: could not …: " prefixes.
func zmq4Reason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "zmq4: "); i >= 0 && i+6 < len(msg) {
		return msg[i+6:]
	}
	return msg
}
