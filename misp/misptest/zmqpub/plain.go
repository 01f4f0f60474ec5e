package zmqpub

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/go-zeromq/zmq4"
)

// errAuthFailed marks a PLAIN handshake refused because of the credentials.
var errAuthFailed = errors.New("PLAIN credentials rejected")

// plainServer is the server side of ZMTP-PLAIN (RFC 24) that checks the
// credentials of the client's HELLO.
//
// Why not zmq4's security/plain: its server side accepts any username and
// password (validateHello is a no-op, misp-api.md §1.3). MISP's mispzmq.py
// validates them through ZAP (pyzmq ThreadAuthenticator with
// configure_plain(domain="*", passwords={user: pass})), so a subscriber with a
// wrong password must get nothing from the double either.
//
// On a mismatch we answer with exactly the bytes a libzmq PLAIN server sends
// when its ZAP handler refuses (see zapRefusal); on a malformed or unexpected
// command we just close, as libzmq does.
type plainServer struct {
	user, pass []byte
}

func (plainServer) Type() zmq4.SecurityType { return zmq4.PlainSecurity }

func (s plainServer) Handshake(conn *zmq4.Conn, server bool) error {
	if !server {
		return errors.New("zmqpub: PLAIN client side is not implemented (the double only publishes)")
	}
	cmd, err := conn.RecvCmd()
	if err != nil {
		return fmt.Errorf("receive PLAIN HELLO: %w", err)
	}
	if cmd.Name != zmq4.CmdHello {
		return fmt.Errorf("expected PLAIN HELLO, got %q command", cmd.Name)
	}
	user, pass, err := parseHello(cmd.Body)
	if err != nil {
		return fmt.Errorf("malformed PLAIN HELLO: %w", err)
	}
	// Compare both in constant time; never put either value in an error.
	userOK := subtle.ConstantTimeCompare(user, s.user) == 1
	passOK := subtle.ConstantTimeCompare(pass, s.pass) == 1
	if !userOK || !passOK {
		// Best effort: the connection is closed next whatever happens.
		_, _ = conn.Write([]byte(zapRefusal))
		return errAuthFailed
	}
	if err := conn.SendCmd(zmq4.CmdWelcome, nil); err != nil {
		return fmt.Errorf("send PLAIN WELCOME: %w", err)
	}
	cmd, err = conn.RecvCmd()
	if err != nil {
		return fmt.Errorf("receive PLAIN INITIATE: %w", err)
	}
	if cmd.Name != zmq4.CmdInitiate {
		return fmt.Errorf("expected PLAIN INITIATE, got %q command", cmd.Name)
	}
	if err := conn.Peer.Meta.UnmarshalZMTP(cmd.Body); err != nil {
		return fmt.Errorf("decode PLAIN INITIATE metadata: %w", err)
	}
	raw, err := conn.Meta.MarshalZMTP()
	if err != nil {
		return fmt.Errorf("encode READY metadata: %w", err)
	}
	if err := conn.SendCmd(zmq4.CmdReady, raw); err != nil {
		return fmt.Errorf("send PLAIN READY: %w", err)
	}
	return nil
}

// PLAIN sends frames in clear text: nothing to encrypt.
func (plainServer) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (plainServer) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

// zapRefusal is the whole ERROR command frame a libzmq PLAIN server sends
// when ZAP refuses the credentials (status "400"), byte for byte as a libzmq
// 4.3.4 PUB set up like mispzmq.py (pyzmq ThreadAuthenticator) sends it:
//
//	04 09 5e 52 52 4f 52 03 34 30 30    flags=command, size=9, "^RROR", 3, "400"
//
// RFC 23 says "\x05ERROR"; libzmq's src/plain_common.hpp declares
// error_prefix[] = "\x05ERROR", which C reads as the single hex escape \x05E
// (0x5E, '^') followed by "RROR". libzmq clients compare against the same
// literal, so they only take this form as an authentication failure
// (EVENT_HANDSHAKE_FAILED_AUTH, and they do not retry); a correct ERROR reads
// to them as an unexpected command. zmq4 clients cannot parse it as a command
// at all (ErrBadCmd): the same failure they get from a real MISP.
const zapRefusal = "\x04\x09^RROR\x03400"

// parseHello decodes a PLAIN HELLO body: username-size username
// password-size password, nothing after (RFC 24).
func parseHello(body []byte) (user, pass []byte, err error) {
	if len(body) < 1 {
		return nil, nil, errors.New("missing username length")
	}
	un := int(body[0])
	body = body[1:]
	if un > len(body) {
		return nil, nil, fmt.Errorf("username length %d exceeds the %d bytes left", un, len(body))
	}
	user, body = body[:un], body[un:]
	if len(body) < 1 {
		return nil, nil, errors.New("missing password length")
	}
	pn := int(body[0])
	body = body[1:]
	if pn != len(body) {
		return nil, nil, fmt.Errorf("password length %d does not match the %d bytes left", pn, len(body))
	}
	return user, body, nil
}
