package zmqpub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// ZMTP 3.x frame flags (RFC 23/ZMTP, "Framing").
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04

	greetingLen = 64 // ZMTP 3.x greeting: signature, version, mechanism, as-server, filler
)

// errFrameTooLarge is returned when a peer announces a frame larger than we accept.
var errFrameTooLarge = errors.New("frame too large")

// readFrame reads one ZMTP frame from r. It refuses frames larger than maxSize
// before allocating them, so a hostile or broken peer cannot make us allocate
// an arbitrary amount of memory.
func readFrame(r io.Reader, maxSize uint64) (flags byte, body []byte, err error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return 0, nil, err
	}
	flags = hdr[0]
	size := uint64(hdr[1])
	if flags&flagLong != 0 {
		if _, err := io.ReadFull(r, hdr[2:9]); err != nil {
			return 0, nil, fmt.Errorf("read long frame size: %w", noEOF(err))
		}
		size = binary.BigEndian.Uint64(hdr[1:9])
	}
	if size > maxSize {
		return 0, nil, fmt.Errorf("%w: %d bytes announced, limit %d", errFrameTooLarge, size, maxSize)
	}
	body = make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read %d-byte frame body: %w", size, noEOF(err))
	}
	return flags, body, nil
}

// noEOF turns an EOF in the middle of a frame into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseCommand splits a ZMTP command frame body into name and data
// (RFC 23: command-size name-size name data).
func parseCommand(body []byte) (name string, data []byte, err error) {
	if len(body) == 0 {
		return "", nil, errors.New("empty command frame")
	}
	n := int(body[0])
	if n == 0 || 1+n > len(body) {
		return "", nil, fmt.Errorf("command name length %d does not fit a %d-byte command", n, len(body))
	}
	return string(body[1 : 1+n]), body[1+n:], nil
}

// guardConn watches the bytes zmq4 reads during the handshake and fails the
// read as soon as a frame header announces more than limit bytes. zmq4's
// Conn.read allocates the announced size before reading it (conn.go,
// `body := make([]byte, size)`), so without this a peer could make the double
// allocate gigabytes, or panic on sizes above the allocator's limit.
type guardConn struct {
	net.Conn
	limit uint64

	greetLeft int    // greeting bytes still to skip
	hdr       []byte // partial frame header
	bodyLeft  uint64 // body bytes of the current frame still to skip
}

func newGuardConn(c net.Conn, limit uint64) *guardConn {
	return &guardConn{Conn: c, limit: limit, greetLeft: greetingLen}
}

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if ierr := g.inspect(p[:n]); ierr != nil {
		return 0, ierr
	}
	return n, err
}

// inspect advances the frame parser over b.
func (g *guardConn) inspect(b []byte) error {
	for len(b) > 0 {
		switch {
		case g.greetLeft > 0:
			k := min(g.greetLeft, len(b))
			g.greetLeft -= k
			b = b[k:]
		case g.bodyLeft > 0:
			k := min(g.bodyLeft, uint64(len(b)))
			g.bodyLeft -= k
			b = b[k:]
		default:
			g.hdr = append(g.hdr, b[0])
			b = b[1:]
			need := 2
			if g.hdr[0]&flagLong != 0 {
				need = 9
			}
			if len(g.hdr) < need {
				continue
			}
			size := uint64(g.hdr[1])
			if need == 9 {
				size = binary.BigEndian.Uint64(g.hdr[1:9])
			}
			g.hdr = g.hdr[:0]
			if size > g.limit {
				return fmt.Errorf("handshake %w: %d bytes announced, limit %d", errFrameTooLarge, size, g.limit)
			}
			g.bodyLeft = size
		}
	}
	return nil
}
