package feed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// transportName is the zmq4 transport the Subscriber dials instead of "tcp": plain
// TCP whose net.Conn is wrapped by guardConn. zmq4 keeps transports in a
// process-wide registry (zmq4.RegisterTransport), so it is registered once, here;
// it holds no state: each connection's settings travel in the dial context
// (dialHooks), which zmq4 hands to Transport.Dial unchanged.
const transportName = "misptrust-feed-tcp"

func init() {
	if err := zmq4.RegisterTransport(transportName, guardedTCP{}); err != nil {
		// Only a second registration of this package-private name can fail.
		panic(fmt.Sprintf("feed: register zmq4 transport: %v", err))
	}
}

// ZMTP 3 framing (rfc.zeromq.org/spec:23): a 64-byte greeting, then frames of
// flags(1) + size(1, or 8 when flagLong) + body.
const (
	greetingLen = 64
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
	// Frames longer than this are not even skipped: the connection is dropped.
	// No publisher sends 64 GiB; a header saying so is garbage.
	maxSkippableFrame = 1 << 36
	// Bytes kept from each handshake command body for diagnostics.
	commandCapture = 64
)

// errFrameTooLarge ends a connection whose oversized frame cannot be skipped
// alone (a command, or the middle of a multi-frame message).
var errFrameTooLarge = errors.New("ZMTP frame over the size limit")

type dialHooksKey struct{}

// dialHooks carries one connection attempt's settings into guardedTCP.Dial and
// the wrapped connection back to the Subscriber.
type dialHooks struct {
	handshakeTimeout time.Duration
	maxFrame         uint64            // limit of a whole message, all frames together; 0: no limit
	onOversize       func(size uint64) // a message over maxFrame was skipped (or its connection dropped)
	activity         *atomic.Int64     // unix nanos of the last byte read
	mu               sync.Mutex
	conn             *guardConn
	aborted          bool
}

func (h *dialHooks) setConn(c *guardConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aborted {
		return false
	}
	h.conn = c
	return true
}

func (h *dialHooks) getConn() *guardConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conn
}

// abort closes the connection of a dial in progress (zmq4's handshake has no
// cancellation of its own).
func (h *dialHooks) abort() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.aborted = true
	if h.conn != nil {
		_ = h.conn.Close()
	}
}

type guardedTCP struct{}

var _ transport.Transport = guardedTCP{}

func (guardedTCP) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	h, _ := ctx.Value(dialHooksKey{}).(*dialHooks)
	if h == nil {
		return c, nil
	}
	g := &guardConn{Conn: c, maxFrame: h.maxFrame, onOversize: h.onOversize,
		activity: h.activity, greetLeft: greetingLen}
	if h.handshakeTimeout > 0 {
		// zmq4's handshake reads with no timeout: a peer that accepts TCP and
		// says nothing would hang Dial forever. Cleared once Dial returns.
		_ = c.SetDeadline(time.Now().Add(h.handshakeTimeout))
	}
	if !h.setConn(g) {
		_ = c.Close()
		return nil, context.Canceled
	}
	return g, nil
}

func (guardedTCP) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("feed: the guarded transport only dials")
}

func (guardedTCP) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

// guardConn watches the inbound ZMTP byte stream as zmq4 reads it:
//
//   - frames over maxFrame are skipped on the wire (read and discarded in small
//     chunks) before zmq4 sees their header, so zmq4 never allocates them: its
//     reader does make([]byte, size) for whatever size a header announces; a
//     multi-frame message whose frames together pass maxFrame ends the
//     connection at the frame that crosses it (zmq4 already holds the earlier
//     ones), so no message costs more than maxFrame;
//   - the greeting and handshake commands are recorded, so that a failed
//     handshake can be explained (mechanism mismatch, the ERROR a PLAIN
//     publisher sends for wrong credentials);
//   - the time of the last byte is recorded, so that a large message still
//     arriving is not mistaken for silence.
//
// zmq4 reads a connection from one goroutine at a time (the handshake in Dial,
// then its queue reader), so the parsing state needs no lock; the diagnostics
// read by the Subscriber are guarded by mu.
type guardConn struct {
	net.Conn
	maxFrame   uint64
	onOversize func(uint64)
	activity   *atomic.Int64

	greetLeft int
	hdr       [9]byte
	hdrPos    int // next header byte to hand out
	hdrLen    int // header bytes waiting in hdr
	bodyLeft  uint64
	inCommand bool
	inMessage bool   // the last frame passed had MORE set
	msgBytes  uint64 // bytes of the message passed so far (its frames together)
	dropping  bool   // skipping the rest of an oversized multi-frame message

	mu       sync.Mutex
	greeting [greetingLen]byte
	greetGot int
	cmd      []byte // captured start of the current command body
	lastCmd  []byte // the last complete command body (capped)
}

func (g *guardConn) touch() {
	if g.activity != nil {
		g.activity.Store(time.Now().UnixNano())
	}
}

func (g *guardConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if g.greetLeft > 0 {
		n, err := g.Conn.Read(p[:min(len(p), g.greetLeft)])
		if n > 0 {
			g.mu.Lock()
			copy(g.greeting[g.greetGot:], p[:n])
			g.greetGot += n
			g.mu.Unlock()
			g.greetLeft -= n
			g.touch()
		}
		return n, err
	}
	for g.hdrPos == g.hdrLen && g.bodyLeft == 0 { // at a frame boundary
		if err := g.nextFrame(); err != nil { // skipped frames leave hdrLen 0
			return 0, err
		}
	}
	if g.hdrPos < g.hdrLen {
		n := copy(p, g.hdr[g.hdrPos:g.hdrLen])
		g.hdrPos += n
		return n, nil
	}
	n, err := g.Conn.Read(p[:min(uint64(len(p)), g.bodyLeft)])
	if n > 0 {
		g.bodyLeft -= uint64(n)
		g.touch()
		if g.inCommand {
			g.captureCommand(p[:n])
		}
	}
	return n, err
}

// nextFrame reads the next frame header from the network. A frame to pass to
// zmq4 leaves its header in hdr; an oversized one is skipped here.
func (g *guardConn) nextFrame() error {
	g.hdrPos, g.hdrLen = 0, 0
	if _, err := io.ReadFull(g.Conn, g.hdr[:2]); err != nil {
		return err
	}
	flags := g.hdr[0]
	size, hl := uint64(g.hdr[1]), 2
	if flags&flagLong != 0 {
		if _, err := io.ReadFull(g.Conn, g.hdr[2:9]); err != nil {
			return err
		}
		size, hl = binary.BigEndian.Uint64(g.hdr[1:9]), 9
	}
	g.touch()
	more, command := flags&flagMore != 0, flags&flagCommand != 0

	if !command && !g.inMessage {
		g.msgBytes = 0 // the first frame of a message
	}
	// The limit is the whole message's: zmq4 keeps appending frames while MORE is
	// set, so 200 frames just under a per-frame limit would be 200 allocations.
	if !g.dropping && !command && g.inMessage && g.maxFrame > 0 && g.msgBytes+size > g.maxFrame {
		// zmq4 holds the earlier frames: the message cannot be skipped alone.
		if g.onOversize != nil {
			g.onOversize(g.msgBytes + size)
		}
		return fmt.Errorf("%w: a multi-frame message reaches %d bytes (limit %d for the whole message)",
			errFrameTooLarge, g.msgBytes+size, g.maxFrame)
	}
	if g.dropping || (g.maxFrame > 0 && size > g.maxFrame) {
		if !g.dropping && (command || g.inMessage) {
			return fmt.Errorf("%w: %d bytes (limit %d) in a command or multi-frame message",
				errFrameTooLarge, size, g.maxFrame)
		}
		if size > maxSkippableFrame {
			return fmt.Errorf("%w: header announces %d bytes", errFrameTooLarge, size)
		}
		if _, err := io.CopyN(io.Discard, activityReader{g}, int64(size)); err != nil {
			return err
		}
		if !g.dropping && g.onOversize != nil {
			g.onOversize(size)
		}
		g.dropping = more
		return nil
	}

	g.inCommand = command
	if !command {
		g.inMessage = more
		g.msgBytes += size
	} else {
		g.mu.Lock()
		g.cmd = g.cmd[:0]
		g.mu.Unlock()
	}
	g.hdrLen = hl
	g.bodyLeft = size
	if command && size == 0 {
		g.captureCommand(nil)
	}
	return nil
}

func (g *guardConn) captureCommand(b []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if room := commandCapture - len(g.cmd); room > 0 {
		g.cmd = append(g.cmd, b[:min(len(b), room)]...)
	}
	if g.bodyLeft == 0 {
		g.lastCmd = append(g.lastCmd[:0], g.cmd...)
	}
}

// activityReader feeds skipped bytes through touch, so that a large frame being
// skipped still counts as life.
type activityReader struct{ g *guardConn }

func (r activityReader) Read(p []byte) (int, error) {
	n, err := r.g.Conn.Read(p)
	if n > 0 {
		r.g.touch()
	}
	return n, err
}

// handshakeDiag is what the wire said during a failed handshake.
type handshakeDiag struct {
	greetingBytes int    // bytes of the peer's 64-byte greeting received
	peerMechanism string // from the greeting, "" when not received
	errorReason   string // reason of a ZMTP ERROR command, "" when none
	gotError      bool
}

func (g *guardConn) diag() handshakeDiag {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := handshakeDiag{greetingBytes: g.greetGot}
	if g.greetGot >= 32 {
		d.peerMechanism = string(bytes.TrimRight(g.greeting[12:32], "\x00"))
	}
	d.gotError, d.errorReason = parseErrorCommand(g.lastCmd)
	return d
}

// parseErrorCommand recognises a ZMTP ERROR command body: name-size(1) "ERROR"
// reason-size(1) reason. libzmq 4.3.4 (what MISP's pyzmq publisher runs) sends
// it malformed when ZAP refuses PLAIN credentials: the frame
// 5e 52 52 4f 52 03 34 30 30, i.e. "^RROR" + 3 "400" — the name-size byte
// clobbers the 'E' (observed on the wire in this package's interop test, and
// why zmq4 reports "invalid command name"). Both forms are accepted.
func parseErrorCommand(body []byte) (ok bool, reason string) {
	var rest []byte
	switch {
	case len(body) >= 6 && body[0] == 5 && string(body[1:6]) == "ERROR":
		rest = body[6:]
	case len(body) >= 5 && string(body[1:5]) == "RROR":
		rest = body[5:]
	default:
		return false, ""
	}
	if len(rest) == 0 {
		return true, ""
	}
	n := min(int(rest[0]), len(rest)-1)
	return true, string(rest[1 : 1+n])
}
