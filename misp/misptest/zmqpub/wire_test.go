package zmqpub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestReadFrame(t *testing.T) {
	long := make([]byte, 9)
	long[0] = flagLong
	binary.BigEndian.PutUint64(long[1:], 300)
	huge := make([]byte, 9)
	huge[0] = flagLong
	binary.BigEndian.PutUint64(huge[1:], 1<<62)

	tests := []struct {
		name      string
		in        []byte
		wantFlags byte
		wantBody  []byte
		wantErr   error
	}{
		{"a subscription message", []byte{0, 3, 1, 'a', 'b'}, 0, []byte{1, 'a', 'b'}, nil},
		{"a command", append([]byte{flagCommand, 5, 4}, "PING"...), flagCommand, append([]byte{4}, "PING"...), nil},
		{"a long frame", append(long, bytes.Repeat([]byte("x"), 300)...), flagLong, bytes.Repeat([]byte("x"), 300), nil},
		{"a frame over the limit is refused before allocation", huge, 0, nil, errFrameTooLarge},
		{"a clean end between frames", nil, 0, nil, io.EOF},
		{"a truncated body", []byte{0, 5, 'a'}, 0, nil, io.ErrUnexpectedEOF},
		{"a truncated long size", []byte{flagLong, 0, 0}, 0, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, body, err := readFrame(bytes.NewReader(tt.in), 1<<20)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || flags != tt.wantFlags || !bytes.Equal(body, tt.wantBody) {
				t.Fatalf("got %#x %q %v, want %#x %q", flags, body, err, tt.wantFlags, tt.wantBody)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in       []byte
		name     string
		data     string
		wantFail bool
	}{
		{append([]byte{4}, "PINGxyz"...), "PING", "xyz", false},
		{append([]byte{9}, "SUBSCRIBEmisp_json"...), "SUBSCRIBE", "misp_json", false},
		{nil, "", "", true},
		{[]byte{0}, "", "", true},
		{[]byte{9, 'P'}, "", "", true},
	}
	for _, tt := range tests {
		name, data, err := parseCommand(tt.in)
		if (err != nil) != tt.wantFail || name != tt.name || string(data) != tt.data {
			t.Errorf("parseCommand(%q) = %q %q %v", tt.in, name, data, err)
		}
	}
}

func TestGuardConnRefusesOversizedHandshakeFrames(t *testing.T) {
	greeting := make([]byte, greetingLen)
	long := make([]byte, 9)
	long[0] = flagLong | flagCommand
	binary.BigEndian.PutUint64(long[1:], 1<<40)
	tests := []struct {
		name    string
		chunks  [][]byte // as the reads return them
		wantErr bool
	}{
		{"a small READY passes", [][]byte{greeting, {flagCommand, 6}, []byte("\x05READY")}, false},
		{"split headers are followed", [][]byte{greeting[:10], greeting[10:], {flagCommand}, {3}, []byte("abc"), {0, 1}, []byte("z")}, false},
		{"a long size over the limit fails at its header", [][]byte{greeting, long}, true},
		{"a long size split across reads fails too", [][]byte{greeting, long[:4], long[4:]}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuardConn(nil, 1024)
			var err error
			for _, c := range tt.chunks {
				if err = g.inspect(c); err != nil {
					break
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errFrameTooLarge) {
				t.Fatalf("err = %v, want errFrameTooLarge", err)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 3, 1, 'a', 'b'})
	f.Add([]byte{flagLong, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{flagCommand, 5, 4, 'P', 'I', 'N', 'G'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			flags, body, err := readFrame(r, 4096)
			if err != nil {
				return
			}
			if len(body) > 4096 {
				t.Fatalf("accepted a %d-byte frame over the limit", len(body))
			}
			if flags&flagCommand != 0 {
				_, _, _ = parseCommand(body)
			}
		}
	})
}

// FuzzHandshake feeds arbitrary client bytes to the publisher's handshake:
// it must end with an error or a connection, never a panic or a hang.
func FuzzHandshake(f *testing.F) {
	greeting := func(mech string) []byte {
		g := make([]byte, greetingLen)
		g[0], g[9], g[10], g[11] = 0xff, 0x7f, 3, 0
		copy(g[12:32], mech)
		return g
	}
	ready := append([]byte{flagCommand, 25, 5}, "READY\x0bSocket-Type\x00\x00\x00\x03SUB"...)
	f.Add(false, append(greeting("NULL"), ready...))
	f.Add(false, append(greeting("NULL"), flagCommand, 20, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S'))
	f.Add(true, append(greeting("PLAIN"), flagCommand, 9, 5, 'H', 'E', 'L', 'L', 'O', 1, 'u', 1))
	f.Add(true, append(greeting("PLAIN"), append([]byte{flagCommand, 14, 5}, "HELLO\x04misp\x04misp"...)...))
	f.Add(false, append(greeting("NULL"), flagCommand|flagLong, 0xff, 0xff, 0, 0, 0, 0, 0, 0))
	f.Add(false, []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, withPLAIN bool, in []byte) {
		p := &Publisher{lim: defaultLimits()}
		if withPLAIN {
			p.opts.User, p.opts.Password = "misp", "misp"
		}
		p.lim.handshakeTimeout = time.Second
		server, client := net.Pipe()
		defer client.Close()
		go func() { _, _ = io.Copy(io.Discard, client) }() // the server writes its greeting first
		go func() {
			_, _ = client.Write(in)
			_ = client.Close()
		}()
		zc, err := p.handshake(server)
		if err == nil && zc == nil {
			t.Fatal("no error and no connection")
		}
		_ = server.Close()
	})
}
