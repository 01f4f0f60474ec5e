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
// On a mismatch we answer like libzmq's plain_server does after a ZAP
// "400" reply: an ERROR command whose reason is the status code "400". A
// libzmq client reports that as EVENT_HANDSHAKE_FAILED_AUTH and retries after
// its reconnect interval; a zmq4 client's Dial fails with "expected a WELCOME
// command".
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
		sendError(conn, "400")
		return fmt.Errorf("expected PLAIN HELLO, got %q command", cmd.Name)
	}
	user, pass, err := parseHello(cmd.Body)
	if err != nil {
		sendError(conn, "400")
		return fmt.Errorf("malformed PLAIN HELLO: %w", err)
	}
	// Compare both in constant time; never put either value in an error.
	userOK := subtle.ConstantTimeCompare(user, s.user) == 1
	passOK := subtle.ConstantTimeCompare(pass, s.pass) == 1
	if !userOK || !passOK {
		sendError(conn, "400")
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
		sendError(conn, "400")
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

// sendError sends a ZMTP ERROR command with a short reason (RFC 23:
// error-reason = OCTET 0*255VCHAR). Best effort: the connection is dropped next.
func sendError(conn *zmq4.Conn, reason string) {
	body := append([]byte{byte(len(reason))}, reason...)
	_ = conn.SendCmd(zmq4.CmdError, body)
}

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
