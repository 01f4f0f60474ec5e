package zmqpub

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// zmtpGreeting is a client's ZMTP 3.0 greeting for a mechanism.
func zmtpGreeting(mech string) []byte {
	g := make([]byte, greetingLen)
	g[0], g[9], g[10], g[11] = 0xff, 0x7f, 3, 0
	copy(g[12:32], mech)
	return g
}

func TestBrokenPeersAreDisconnectedAndCounted(t *testing.T) {
	tests := []struct {
		name    string
		send    []byte
		wantLog string
	}{
		{"not ZeroMQ at all", []byte("GET / HTTP/1.1\r\nHost: misp\r\n\r\n"), "greeting"},
		{"READY with truncated metadata (zmq4's decoder would panic)",
			append(zmtpGreeting("NULL"), append([]byte{flagCommand, 18, 5}, "READY\x0bSocket-Type"...)...), "malformed input"},
		{"a handshake frame announcing 1 TiB",
			append(zmtpGreeting("NULL"), flagCommand|flagLong, 0, 0, 1, 0, 0, 0, 0, 0), "frame too large"},
		{"a PUB instead of a SUB",
			append(zmtpGreeting("NULL"), append([]byte{flagCommand, 25, 5}, "READY\x0bSocket-Type\x00\x00\x00\x03PUB"...)...), "not compatible"},
		{"connects and says nothing", nil, "not completed within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := defaultLimits()
			lim.handshakeTimeout = 300 * time.Millisecond
			p, logs := newTestPublisher(t, Options{}, lim)
			raw, err := net.Dial("tcp", strings.TrimPrefix(p.Endpoint(), "tcp://"))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Write(tt.send); err != nil {
				t.Fatal(err)
			}

			// Meanwhile a well-behaved subscriber connects and is served:
			// handshakes do not wait for each other.
			good := mustDialSub(t, p.Endpoint(), nil, "misp_json")
			waitSubscribed(t, p, "misp_json", 1)
			if err := p.Publish("misp_json", []byte("{}")); err != nil {
				t.Fatal(err)
			}
			if got := string(good.next(t).Frames[0]); got != "misp_json {}" {
				t.Fatalf("good subscriber got %q", got)
			}

			// The broken peer is disconnected by the publisher.
			_ = raw.SetReadDeadline(time.Now().Add(eventually))
			_, err = io.Copy(io.Discard, raw)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the broken peer is still connected")
			}
			waitFor(t, "the refusal to be logged with "+tt.wantLog, func() bool { return strings.Contains(logs.String(), tt.wantLog) })
			if st := p.Stats(); st.HandshakeFailures != 1 || st.Subscribers != 1 {
				t.Fatalf("Stats = %+v, want one failed handshake and only the good subscriber", st)
			}
		})
	}
}

func TestWrongCredentialsGetLibzmqsRefusalBytes(t *testing.T) {
	// Reference: what a real libzmq 4.3.4 PUB with mispzmq.py's ZAP set-up
	// answered to this HELLO (pyzmq 24.0.1, raw socket capture).
	const want = "\x04\x09\x5eRROR\x03400"
	p, _ := newTestPublisher(t, Options{User: "misp", Password: "s3cret"}, defaultLimits())
	raw, err := net.Dial("tcp", strings.TrimPrefix(p.Endpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	body := "\x05HELLO\x04misp\x05wrong"
	hello := append([]byte{flagCommand, byte(len(body))}, body...)
	if _, err := raw.Write(append(zmtpGreeting("PLAIN"), hello...)); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(eventually))
	got, err := io.ReadAll(raw)
	if err != nil {
		t.Fatalf("read until the publisher closes: %v", err)
	}
	if len(got) < greetingLen || string(got[greetingLen:]) != want {
		t.Fatalf("after the greeting got % x, want % x", got[min(len(got), greetingLen):], want)
	}
	if mech := string(bytes.TrimRight(got[12:32], "\x00")); mech != "PLAIN" {
		t.Fatalf("greeting mechanism %q", mech)
	}
}
