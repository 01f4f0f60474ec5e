package misp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Decoders for MISP answers, kept as pure functions of the body so that they can be fuzzed
// (fuzz_test.go) and tested against the captured answers in testdata/real.

func errMissing(what string) error { return fmt.Errorf("answer has no %s", what) }

// saveBody is MISP's save-style answer (misp-api.md §0): {"saved", "success", "name",
// "message", "url", "id"[, "errors"]}. toggleEnable answers {"saved", "success"|"errors"}.
type saveBody struct {
	Saved   *flexBool       `json:"saved"`
	Success json.RawMessage `json:"success"`
	Name    flexString      `json:"name"`
	Message flexString      `json:"message"`
	ID      flexString      `json:"id"`
	Errors  json.RawMessage `json:"errors"`
}

// decodeSave decodes a save-style answer; the body must be a JSON object.
func decodeSave(body []byte) (saveBody, error) {
	var b saveBody
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return b, fmt.Errorf("expected a JSON object, got %s", jsonKind(trimmed))
	}
	if err := json.Unmarshal(trimmed, &b); err != nil {
		return b, err
	}
	return b, nil
}

// message is the human text of a save answer.
func (b saveBody) message() string {
	if b.Message != "" {
		return string(b.Message)
	}
	if b.Name != "" {
		return string(b.Name)
	}
	var s string
	if json.Unmarshal(b.Success, &s) == nil {
		return s
	}
	return ""
}

// failed reports an explicit "saved": false or "success": false.
func (b saveBody) failed() bool {
	if b.Saved != nil && !bool(*b.Saved) {
		return true
	}
	return string(bytes.TrimSpace(b.Success)) == "false"
}

// isUUID accepts the canonical 8-4-4-4-12 hex form, any case.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
				return false
			}
		}
	}
	return true
}

// isID accepts MISP's numeric local ids.
func isID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// opName is the request's operation for errors and logs, without the API key should a
// caller have passed it where an id goes.
func (c *Client) opName(req request) string { return redact(req.op, c.key) }

// invalid is the error for a call refused before anything was sent.
func (c *Client) invalid(req request, msg string) *APIError {
	return &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Kind: ErrInvalidArgument, Message: msg}
}

// checkUUID refuses a malformed uuid: MISP would answer 500 (InvalidArgumentException,
// misp-api.md §2.4) and the client would retry it for nothing.
func (c *Client) checkUUID(req request, what, s string) error {
	if isUUID(s) {
		return nil
	}
	return c.invalid(req, fmt.Sprintf("%s %q is not a UUID", what, truncate(redact(s, c.key), 64)))
}

func (c *Client) checkID(req request, what, s string) error {
	if isID(s) {
		return nil
	}
	return c.invalid(req, fmt.Sprintf("%s %q is not a numeric MISP id", what, truncate(redact(s, c.key), 64)))
}

func asAPIError(err error, target **APIError) bool {
	return err != nil && errors.As(err, target)
}
