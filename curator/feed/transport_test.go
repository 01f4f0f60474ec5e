package feed

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawPublisher speaks ZMTP 3.0 with the NULL mechanism by hand, so that tests
// can put exactly the bytes they want on the wire (oversized or lying frame
// headers, multi-frame messages, commands) — things no PUB library sends.
type rawPublisher struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
}

func newRawPublisher(t *testing.T) *rawPublisher {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawPublisher{t: t, ln: ln, conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(r.conns)
				return
			}
			r.conns <- c
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return r
}

func (r *rawPublisher) endpoint() string { return "tcp://" + r.ln.Addr().String() }

// accept takes the next connection, does the NULL handshake as a PUB and reads
// the SUB's subscription.
func (r *rawPublisher) accept() net.Conn {
	r.t.Helper()
	var c net.Conn
	select {
	case c = <-r.conns:
	case <-time.After(eventually):
		r.t.Fatal("no connection to the raw publisher")
	}
	r.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(eventually))
	var greeting [64]byte
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	r.write(c, greeting[:])
	if _, err := io.ReadFull(c, make([]byte, 64)); err != nil {
		r.t.Fatalf("read greeting: %v", err)
	}
	ready := append([]byte("\x05READY\x0bSocket-Type"), 0, 0, 0, 3)
	r.writeFrame(c, flagCommand, append(ready, "PUB"...))
	if flags, body := r.readFrame(c); flags&flagCommand == 0 || !bytes.HasPrefix(body, []byte("\x05READY")) {
		r.t.Fatalf("want the SUB's READY, got flags %x %q", flags, body)
	}
	if _, body := r.readFrame(c); len(body) == 0 || body[0] != 1 {
		r.t.Fatalf("want a subscription, got %q", body)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

func (r *rawPublisher) write(c net.Conn, b []byte) {
	r.t.Helper()
	if _, err := c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// writeHeader writes a frame header announcing size bytes.
func (r *rawPublisher) writeHeader(c net.Conn, flags byte, size uint64) {
	r.t.Helper()
	if size > 255 {
		var h [9]byte
		h[0] = flags | flagLong
		binary.BigEndian.PutUint64(h[1:], size)
		r.write(c, h[:])
		return
	}
	r.write(c, []byte{flags, byte(size)})
}

func (r *rawPublisher) writeFrame(c net.Conn, flags byte, body []byte) {
	r.t.Helper()
	r.writeHeader(c, flags, uint64(len(body)))
	r.write(c, body)
}

func (r *rawPublisher) readFrame(c net.Conn) (byte, []byte) {
	r.t.Helper()
	var h [9]byte
	if _, err := io.ReadFull(c, h[:2]); err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	size := uint64(h[1])
	if h[0]&flagLong != 0 {
		if _, err := io.ReadFull(c, h[2:9]); err != nil {
			r.t.Fatal(err)
		}
		size = binary.BigEndian.Uint64(h[1:9])
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		r.t.Fatal(err)
	}
	return h[0], body
}

func TestGuardSkipsOversizeFramesOnTheWire(t *testing.T) {
	r := newRawPublisher(t)
	h := startSubscriber(t, Options{Endpoint: r.endpoint(), MaxMessageSize: 1024})
	c := r.accept()
	h.waitConnects(1)

	big := append([]byte("misp_json_event "), bytes.Repeat([]byte("x"), 1<<20)...)
	r.writeFrame(c, 0, big) // one oversized single-frame message
	// An oversized first frame with MORE: the whole message is skipped.
	r.writeFrame(c, flagMore, big)
	r.writeFrame(c, 0, []byte("continuation"))
	// An oversized frame of exactly limit+1 bytes.
	r.writeFrame(c, 0, bytes.Repeat([]byte("y"), 1025))
	// A zero-length frame (no space: a parse error), then a good message.
	r.writeFrame(c, 0, nil)
	r.writeFrame(c, 0, readFrame(t, "event_add_from_server_uuid"))

	if m := h.next(); m.Action != ActionAddFromConnectedServer {
		t.Fatalf("got %+v", m)
	}
	if got := h.metric("dropped", DropTooLarge); got != 3 {
		t.Errorf("dropped_total{reason=too_large} = %v, want 3", got)
	}
	if got := h.metric("parse_errors", string(KindNoSpace)); got != 1 {
		t.Errorf("parse_errors{kind=no_space} = %v, want 1 (the empty frame)", got)
	}
	if st := h.sub.State(); st.Connects != 1 || st.Reconnects != 0 || st.Messages != 5 {
		t.Errorf("state %+v: want one connection and 5 messages", st)
	}
}

func TestGuardDropsTheConnectionOnAnAbsurdFrameHeader(t *testing.T) {
	// Without the guard zmq4 would make([]byte, 1<<40) for this header and the
	// process would die of "out of memory" — this test would not finish.
	r := newRawPublisher(t)
	h := startSubscriber(t, Options{Endpoint: r.endpoint(), MaxMessageSize: 1024})
	c := r.accept()
	h.waitConnects(1)
	r.writeHeader(c, 0, 1<<40)
	c2 := r.accept() // the subscriber redials
	h.waitConnects(2)
	if got := h.metric("reconnects", ReconnectRecvError); got != 1 {
		t.Errorf("reconnects_total{reason=recv_error} = %v, want 1", got)
	}
	if st := h.sub.State(); st.Reconnects != 1 {
		t.Errorf("state %+v", st)
	}
	if !strings.Contains(h.logs.String(), "ZMTP frame over the size limit: header announces 1099511627776 bytes") {
		t.Errorf("the reason is not logged:\n%s", h.logs)
	}
	// An oversized command cannot be skipped alone either.
	r.writeHeader(c2, flagCommand, 4096)
	r.write(c2, make([]byte, 4096))
	r.accept()
	h.waitConnects(3)
}

func TestSubscriberRejectsMultiFrameMessagesAndIgnoresCommands(t *testing.T) {
	r := newRawPublisher(t)
	h := startSubscriber(t, Options{Endpoint: r.endpoint()})
	c := r.accept()
	h.waitConnects(1)
	r.writeFrame(c, flagMore, readFrame(t, "event_add_from_server_uuid"))
	r.writeFrame(c, 0, []byte("second part"))
	r.writeFrame(c, flagCommand, []byte("\x04PING\x00\x0a")) // a ZMTP PING: not a message
	r.writeFrame(c, 0, readFrame(t, "event_edit_from_server_uuid"))
	if m := h.next(); m.Action != ActionEditFromConnectedServer {
		t.Fatalf("got %+v: the multi-frame message must not be delivered", m)
	}
	if got := h.metric("parse_errors", string(KindMultipart)); got != 1 {
		t.Errorf("parse_errors{kind=multipart} = %v, want 1", got)
	}
	if st := h.sub.State(); st.Messages != 2 || st.Connects != 1 {
		t.Errorf("state %+v: want 2 messages (the command is not one) on one connection", st)
	}
}

func TestParseErrorCommand(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		ok     bool
		reason string
	}{
		{"libzmq 4.3.4 ZAP refusal, as captured", []byte{0x5e, 'R', 'R', 'O', 'R', 3, '4', '0', '0'}, true, "400"},
		{"well-formed ERROR", []byte("\x05ERROR\x0dbad handshake"), true, "bad handshake"},
		{"ERROR with a lying reason size", []byte("\x05ERROR\xff400"), true, "400"},
		{"ERROR without reason", []byte("\x05ERROR"), true, ""},
		{"READY", []byte("\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB"), false, ""},
		{"WELCOME", []byte("\x07WELCOME"), false, ""},
		{"empty", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := parseErrorCommand(tt.body)
			if ok != tt.ok || reason != tt.reason {
				t.Fatalf("got (%v, %q), want (%v, %q)", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

// TestGuardConnPassesFramesThrough feeds a byte stream through guardConn in
// reads of every size and checks that what comes out is the stream minus the
// oversized frames.
func TestGuardConnPassesFramesThrough(t *testing.T) {
	var in, want bytes.Buffer
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "PLAIN")
	in.Write(greeting)
	want.Write(greeting)
	frame := func(flags byte, body []byte, keep bool) {
		var h []byte
		if len(body) > 255 {
			h = make([]byte, 9)
			h[0] = flags | flagLong
			binary.BigEndian.PutUint64(h[1:], uint64(len(body)))
		} else {
			h = []byte{flags, byte(len(body))}
		}
		in.Write(h)
		in.Write(body)
		if keep {
			want.Write(h)
			want.Write(body)
		}
	}
	frame(flagCommand, []byte("\x05READY"), true)
	frame(0, []byte("small"), true)
	frame(0, nil, true)
	frame(0, bytes.Repeat([]byte("a"), 300), true) // long header, under the limit
	frame(0, bytes.Repeat([]byte("b"), 301), false)
	frame(flagMore, bytes.Repeat([]byte("c"), 400), false)
	frame(flagMore, []byte("rest of the skipped message"), false)
	frame(0, []byte("its last frame"), false)
	frame(flagMore, []byte("part 1"), true)
	frame(0, []byte("part 2"), true)
	frame(0, []byte("end"), true)

	for _, chunk := range []int{1, 2, 3, 7, 64, 4096} {
		t.Run(fmt.Sprint("reads of ", chunk), func(t *testing.T) {
			var skipped []uint64
			g := &guardConn{Conn: &streamConn{Reader: bytes.NewReader(in.Bytes())}, maxFrame: 300,
				onOversize: func(n uint64) { skipped = append(skipped, n) }, greetLeft: greetingLen}
			var out bytes.Buffer
			buf := make([]byte, chunk)
			for {
				n, err := g.Read(buf)
				out.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(out.Bytes(), want.Bytes()) {
				t.Fatalf("stream differs: got %d bytes, want %d", out.Len(), want.Len())
			}
			if fmt.Sprint(skipped) != "[301 400]" {
				t.Errorf("skipped %v, want [301 400]", skipped)
			}
			if d := g.diag(); d.peerMechanism != "PLAIN" || d.greetingBytes != 64 || d.gotError {
				t.Errorf("diag %+v", d)
			}
		})
	}
}

// streamConn is a net.Conn reading from a fixed stream.
type streamConn struct {
	io.Reader
	net.Conn // nil: only Read is used
}

func (s *streamConn) Read(p []byte) (int, error) { return s.Reader.Read(p) }

func TestGuardCapsTheWholeMessageNotEachFrame(t *testing.T) {
	// 200 frames of 1 KiB with MORE set, each under the 64 KiB limit: zmq4 would
	// append them all (211 MB allocated before the parser rejected 200 frames of
	// 1 MiB in the review). The frame that takes the message past the limit ends
	// the connection, counted as a message too large; the redialled connection
	// delivers again.
	const limit = 64 << 10
	r := newRawPublisher(t)
	h := startSubscriber(t, Options{Endpoint: r.endpoint(), MaxMessageSize: limit})
	c := r.accept()
	h.waitConnects(1)
	frame := bytes.Repeat([]byte("z"), 1024)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := c.Write(frameBytes(flagMore, frame)); err != nil {
				return // the subscriber hung up: expected after the limit
			}
		}
	}()
	c2 := r.accept()
	h.waitConnects(2)
	if got := h.metric("dropped", DropTooLarge); got != 1 {
		t.Errorf("dropped_total{reason=too_large} = %v, want 1", got)
	}
	if !strings.Contains(h.logs.String(), "a multi-frame message reaches 66560 bytes (limit 65536 for the whole message)") {
		t.Errorf("the reason is not logged:\n%s", h.logs)
	}
	r.writeFrame(c2, 0, readFrame(t, "event_add_from_server_uuid"))
	if m := h.next(); m.Action != ActionAddFromConnectedServer {
		t.Fatalf("got %+v", m)
	}
}

// frameBytes is one ZMTP frame on the wire (for writers that must not call t.Fatal).
func frameBytes(flags byte, body []byte) []byte {
	var h [9]byte
	if len(body) > 255 {
		h[0] = flags | flagLong
		binary.BigEndian.PutUint64(h[1:], uint64(len(body)))
		return append(h[:], body...)
	}
	return append([]byte{flags, byte(len(body))}, body...)
}
