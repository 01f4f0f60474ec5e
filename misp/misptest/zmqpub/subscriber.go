package zmqpub

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/go-zeromq/zmq4"
)

// subscriber is one connected SUB peer, after its handshake.
//
// Each subscriber has its own bounded send queue and writer goroutine, like a
// libzmq PUB pipe: a subscriber that stops reading only loses its own
// messages once its queue is full (counted in Stats.QueueDrops); it never
// holds up the others nor the caller of Publish. zmq4's own PUB socket writes
// to all peers from one goroutine without deadlines, so a single stalled peer
// stops delivery to everyone (measured: 59 of 2000 messages reached a healthy
// peer in 5 s) while its send queue grows without bound.
type subscriber struct {
	remote string
	raw    net.Conn   // the TCP connection; we read subscriptions from it directly
	zc     *zmq4.Conn // zmq4's ZMTP connection over raw; used for writing frames

	changed func() // called after the subscriptions changed

	queue chan []byte // frames to send; capacity = send HWM
	pongs chan []byte // PONG contexts to send, from the reader

	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	topics   map[string]struct{} // subscribed prefixes (a set, as on a libzmq PUB)
	dropping bool                // queue currently full; logged once per episode
}

func newSubscriber(raw net.Conn, zc *zmq4.Conn, hwm int, changed func()) *subscriber {
	return &subscriber{
		remote:  raw.RemoteAddr().String(),
		raw:     raw,
		zc:      zc,
		changed: changed,
		queue:   make(chan []byte, hwm),
		pongs:   make(chan []byte, 4),
		done:    make(chan struct{}),
		topics:  make(map[string]struct{}),
	}
}

// matches reports whether frame starts with one of the subscribed prefixes.
// ZeroMQ filters on the raw bytes of the (first) frame, so with MISP's
// "<topic> <json>" frames a subscription to "misp_json" matches every topic
// and "misp_json_object" also matches "misp_json_object_reference"
// (misp-api.md §1.4).
func (s *subscriber) matches(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.topics {
		if bytes.HasPrefix(frame, []byte(k)) {
			return true
		}
	}
	return false
}

// setSubscribed adds or removes a prefix; it reports whether anything changed.
func (s *subscriber) setSubscribed(prefix []byte, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.topics[string(prefix)]
	if on {
		s.topics[string(prefix)] = struct{}{}
	} else {
		delete(s.topics, string(prefix))
	}
	return had != on
}

// enqueue hands a frame to the writer without blocking. It returns false,
// and the frame is lost for this subscriber only, when the queue is full.
// The second result is true when this drop starts a new episode (for logging).
func (s *subscriber) enqueue(frame []byte) (ok, firstDrop bool) {
	select {
	case s.queue <- frame:
		s.mu.Lock()
		s.dropping = false
		s.mu.Unlock()
		return true, false
	default:
		s.mu.Lock()
		first := !s.dropping
		s.dropping = true
		s.mu.Unlock()
		return false, first
	}
}

func (s *subscriber) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.raw.Close()
	})
}

// Largest frame we accept from a subscriber. SUB sockets only send
// subscriptions and ZMTP commands, a few bytes to a few hundred.
const maxSubscriberFrame = 64 << 10

// readLoop processes what the subscriber sends after the handshake:
// subscriptions and ZMTP commands. It reads the raw connection itself rather
// than zmq4's Conn.RecvMsg, because RecvMsg answers PING by writing a PONG
// from the reading goroutine, which could interleave with a frame being
// written by writeLoop.
func (s *subscriber) readLoop() error {
	more := false // the previous frame had the MORE flag: we are inside a multipart message
	for {
		flags, body, err := readFrame(s.raw, maxSubscriberFrame)
		if err != nil {
			return fmt.Errorf("read from subscriber: %w", err)
		}
		if flags&flagCommand != 0 {
			if err := s.handleCommand(body); err != nil {
				return err
			}
			continue
		}
		first := !more
		more = flags&flagMore != 0
		if !first || more || len(body) == 0 {
			continue // only single-frame messages can be subscriptions
		}
		// ZMTP 3.0 subscriptions are messages: 0x01 prefix subscribes, 0x00
		// unsubscribes. libzmq 4.3 speaks this form to us because zmq4 greets
		// with version 3.0. Anything else a SUB sends is ignored, as libzmq does.
		switch body[0] {
		case 1:
			s.onSubscription(body[1:], true)
		case 0:
			s.onSubscription(body[1:], false)
		}
	}
}

// onSubscription records a (un)subscription and tells the publisher, whose
// WaitSubscribed waits for such changes.
func (s *subscriber) onSubscription(prefix []byte, on bool) {
	if s.setSubscribed(prefix, on) && s.changed != nil {
		s.changed()
	}
}

func (s *subscriber) handleCommand(body []byte) error {
	name, data, err := parseCommand(body)
	if err != nil {
		return fmt.Errorf("malformed command from subscriber: %w", err)
	}
	switch name {
	case zmq4.CmdPing:
		// ZMTP 3.1 heartbeat (libzmq ZMQ_HEARTBEAT_IVL): PING = TTL(2) context;
		// answer PONG with the same context so the peer keeps the connection.
		var pctx []byte
		if len(data) > 2 {
			pctx = append([]byte(nil), data[2:]...)
		}
		select {
		case s.pongs <- pctx:
		default: // a PONG is already pending; one answer is enough
		}
	case zmq4.CmdSubscribe: // ZMTP 3.1 command form
		s.onSubscription(data, true)
	case zmq4.CmdCancel:
		s.onSubscription(data, false)
	case zmq4.CmdError:
		return errors.New("subscriber sent ERROR")
	}
	return nil
}

// writeLoop sends queued frames and PONGs until the subscriber is closed or a
// write fails.
func (s *subscriber) writeLoop() error {
	for {
		select {
		case <-s.done:
			return nil
		case f := <-s.queue:
			if err := s.zc.SendMsg(zmq4.NewMsg(f)); err != nil {
				return fmt.Errorf("send %d-byte frame: %w", len(f), err)
			}
		case c := <-s.pongs:
			if err := s.zc.SendCmd(zmq4.CmdPong, c); err != nil {
				return fmt.Errorf("send PONG: %w", err)
			}
		}
	}
}
