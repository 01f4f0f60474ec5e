package misp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"
)

// Error kinds. Every error returned by a Client method that comes from a MISP answer is an
// *APIError whose Kind is one of these; check them with errors.Is.
var (
	// ErrNotFound: HTTP 404 (unknown or invisible event, warninglist, tag not attached…), or an
	// empty answer where one object was expected (EventMeta on [], FindWarninglist).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the API key was refused (HTTP 403 "Authentication failed…", expired or
	// IP-restricted key, HTTP 401 from a proxy). misp-api.md §2.0.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: any other HTTP 403, e.g. the role lacks a permission ("You do not have
	// permission to use this functionality.") or a global tag on another org's event.
	ErrForbidden = errors.New("forbidden")
	// ErrNotAllowed: HTTP 405. MISP also answers 405 when a non-admin publishes an event
	// created by another org ("You do not have the permission to do that.",
	// testdata/real/sync/api/76_A_pub_publish_e2.json).
	ErrNotAllowed = errors.New("not allowed")
	// ErrValidation: MISP refused to save: HTTP 403 with "saved": false and "errors"
	// (misp-api.md §0 "Save style responses"), HTTP 400/422, or HTTP 200 with "saved": false
	// (toggleEnable always answers 200).
	ErrValidation = errors.New("validation failed")
	// ErrServer: HTTP 5xx after the retries were spent.
	ErrServer = errors.New("server error")
	// ErrRateLimited: HTTP 429 after the retries were spent, or with a Retry-After longer than
	// RetryMaxDelay (APIError.RetryAfter then says how long MISP asked us to wait).
	ErrRateLimited = errors.New("rate limited")
	// ErrUnexpectedResponse: an answer the client cannot use (a redirect, HTML instead of
	// JSON, a JSON shape that does not decode, a body larger than the size cap).
	ErrUnexpectedResponse = errors.New("unexpected response")
	// ErrInvalidArgument: the call was refused before anything was sent (e.g. an event uuid
	// that is not a UUID, which MISP would turn into a 500).
	ErrInvalidArgument = errors.New("invalid argument")
)

// APIError is an unsuccessful MISP answer. It never contains the API key: MISP's messages
// are scrubbed of it before they are stored here.
type APIError struct {
	Op       string // what the client was doing, with the event uuid or warninglist id
	Method   string // HTTP method
	Endpoint string // route template, e.g. "/events/publish/{id}" (also the metrics label)
	Status   int    // HTTP status of the last attempt (200 for save-fail answers of toggleEnable)
	Message  string // MISP's message, HTML-unescaped ("&quot;" → `"`)
	Errors   any    // MISP's "errors" member, decoded JSON (string or field → messages), unescaped
	Kind     error  // one of the Err* sentinels above
	// RetryAfter is MISP's (or a proxy's) Retry-After on 429/503, when there was one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("misp: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Endpoint != "" {
		if e.Method != "" {
			b.WriteString(e.Method)
			b.WriteByte(' ')
		}
		b.WriteString(e.Endpoint)
		b.WriteString(": ")
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.Status)
	}
	kind := "error"
	if e.Kind != nil {
		kind = e.Kind.Error()
	}
	fmt.Fprintf(&b, "(%s)", kind)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if s := errorsString(e.Errors); s != "" && s != e.Message {
		b.WriteString(" (errors: ")
		b.WriteString(s)
		b.WriteByte(')')
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrNotFound) and friends work.
func (e *APIError) Unwrap() error { return e.Kind }

func errorsString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return truncate(v, 512)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return truncate(string(b), 512)
	}
}

// errorBody is CakePHP's error shape {"name","message","url"} and MISP's save-fail shape
// {"saved":false,"name","message","url","errors"} (misp-api.md §0).
type errorBody struct {
	Saved   *flexBool       `json:"saved"`
	Success json.RawMessage `json:"success"`
	Name    flexString      `json:"name"`
	Message flexString      `json:"message"`
	Errors  json.RawMessage `json:"errors"`
}

// parsedError is what decodeError extracts from an error answer.
type parsedError struct {
	Message    string
	Errors     any
	SavedFalse bool
	IsJSON     bool
}

// decodeError reads MISP's error body. Bodies that are not JSON (an nginx 502 page, a
// login form) give the HTTP status text as the message.
func decodeError(status int, body []byte) parsedError {
	var p parsedError
	var eb errorBody
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &eb) == nil {
		p.IsJSON = true
		msg := string(eb.Message)
		if msg == "" {
			msg = string(eb.Name)
		}
		p.Message = html.UnescapeString(msg)
		p.SavedFalse = eb.Saved != nil && !bool(*eb.Saved)
		if len(eb.Errors) > 0 {
			var v any
			if json.Unmarshal(eb.Errors, &v) == nil {
				p.Errors = unescapeAll(v)
			}
		}
	}
	if p.Message == "" {
		// toggleEnable reports failures as {"saved": false, "errors": "<text>"} only.
		if s, ok := p.Errors.(string); ok && s != "" {
			p.Message = s
		} else {
			p.Message = http.StatusText(status)
		}
	}
	return p
}

// unescapeAll HTML-unescapes every string inside a decoded JSON value (MISP runs h() over
// error strings: `"` arrives as &quot; and `'` as &#039;).
func unescapeAll(v any) any {
	switch v := v.(type) {
	case string:
		return html.UnescapeString(v)
	case []any:
		for i := range v {
			v[i] = unescapeAll(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[html.UnescapeString(k)] = unescapeAll(x)
		}
		return out
	}
	return v
}

// redactAll replaces secret inside every string of a decoded JSON value.
func redactAll(v any, secret string) any {
	switch v := v.(type) {
	case string:
		return redact(v, secret)
	case []any:
		for i := range v {
			v[i] = redactAll(v[i], secret)
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[redact(k, secret)] = redactAll(x, secret)
		}
		return out
	}
	return v
}

const redacted = "[REDACTED]"

func redact(s, secret string) string {
	if secret == "" || !strings.Contains(s, secret) {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}

// classify maps an HTTP status and MISP's message to an error kind (misp-api.md §0, §2.0).
func classify(status int, p parsedError) error {
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusForbidden:
		if isAuthFailure(p.Message) {
			return ErrUnauthorized
		}
		if p.SavedFalse {
			return ErrValidation
		}
		return ErrForbidden
	case status == http.StatusMethodNotAllowed:
		return ErrNotAllowed
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ErrValidation
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500:
		return ErrServer
	case status >= 200 && status < 300 && p.SavedFalse:
		return ErrValidation
	}
	return ErrUnexpectedResponse
}

// isAuthFailure recognises the 403 messages of MISP's API-key login
// (AppController.php:L253-268, L618-656 in misp-api.md §2.0).
func isAuthFailure(msg string) bool {
	return strings.HasPrefix(msg, "Authentication failed") ||
		strings.HasPrefix(msg, "Auth key is expired") ||
		strings.HasPrefix(msg, "It is not possible to use this Auth key")
}
