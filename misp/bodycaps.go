package misp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// bodyCaps bounds how much of an answer the client reads, per endpoint (route template):
// an answer over its cap is refused (ErrUnexpectedResponse, not retried) instead of being
// read into memory, so a broken or hostile MISP costs at most the cap. The figures are
// generous multiples of what a real MISP 2.5.1 answers (testdata/real).
//
// The two answers that grow with a warninglist are streamed (bodycaps.go streamAnswer):
// the view, whose entries are handed to the caller one at a time, and the edit, which
// echoes every entry back and of which only the head is read. Their caps bound the time
// spent reading, not memory.
var bodyCaps = map[string]int64{
	"/servers/getVersion":           64 << 10,  // 1 kB (api/01)
	"/servers/getSetting/{setting}": 64 << 10,  // one setting
	"/users/view/me":                1 << 20,   // user, role and organisation (api/05: 3 kB)
	"/events/index":                 32 << 20,  // a catch-up page (500 events, minimal fields and tags)
	"/tags/attachTagToObject":       256 << 10, // a save answer
	"/tags/removeTagFromObject":     256 << 10,
	"/events/publish/{id}":          256 << 10,
	"/warninglists/index":           16 << 20, // every list without entries: 85 kB on a stock 2.5.1 (api/20)
	"/warninglists/checkValue":      4 << 20,
	"/warninglists/add":             1 << 20,  // the new row, without entries (api/24)
	"/warninglists/toggleEnable":    64 << 10, // {"saved", "success"} (api/27)
	"/warninglists/delete/{id}":     64 << 10, // a 302
	"/warninglists/view/{id}":       512 << 20,
	"/warninglists/edit/{id}":       512 << 20,
}

// defaultBodyCap applies to endpoints missing from bodyCaps.
const defaultBodyCap = 1 << 20

// maxStreamedValue bounds what a streamed answer may send between two values the stream
// function accepts (an entry, a field of the list): one JSON string of hundreds of
// megabytes would otherwise be buffered whole by the decoder.
const maxStreamedValue = 4 << 20

var (
	errAnswerTooLarge = errors.New("answer over the size limit")
	errValueTooLarge  = fmt.Errorf("one value of the answer is over %d bytes", maxStreamedValue)
)

func (c *Client) bodyCap(route string) int64 {
	limit, ok := bodyCaps[route]
	if !ok {
		limit = defaultBodyCap
	}
	if c.maxBody > 0 && c.maxBody < limit {
		limit = c.maxBody
	}
	return limit
}

// streamReader reads a streamed answer under its cap and remembers why it stopped: the
// cap, a value over maxStreamedValue, or a broken connection (retryable).
type streamReader struct {
	r           io.Reader
	read, limit int64
	sinceMark   int64
	over        error // errAnswerTooLarge or errValueTooLarge
	readErr     error // a transport error (not EOF)
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.over != nil {
		return 0, s.over
	}
	if s.read >= s.limit {
		// One byte more tells a body of exactly the cap from a larger one.
		var b [1]byte
		if n, _ := s.r.Read(b[:]); n > 0 {
			s.over = errAnswerTooLarge
			return 0, s.over
		}
		return 0, io.EOF
	}
	if rest := s.limit - s.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	s.sinceMark += int64(n)
	if s.sinceMark > maxStreamedValue {
		s.over = errValueTooLarge
		return n, s.over
	}
	if err != nil && err != io.EOF {
		s.readErr = err
	}
	return n, err
}

// markProgress tells the reader that the stream function accepted a value: what follows
// is a new value, with a budget of its own.
func markProgress(r io.Reader) {
	if s, ok := r.(*streamReader); ok {
		s.sinceMark = 0
	}
}

// streamAnswer hands a 2xx answer to req.stream as it arrives. A broken connection is a
// transport error (retried like any other); an answer over the cap is refused like a
// read one; a body the stream function cannot decode is reported by call.
func (c *Client) streamAnswer(req request, hresp *http.Response, limit int64) attemptResult {
	sr := &streamReader{r: hresp.Body, limit: limit}
	err := req.stream(sr)
	resp := &response{status: hresp.StatusCode, header: hresp.Header, limit: limit}
	switch {
	case sr.over == errAnswerTooLarge:
		resp.status = -hresp.StatusCode
		return attemptResult{resp: resp}
	case sr.over != nil:
		resp.streamErr = sr.over
		return attemptResult{resp: resp}
	case sr.readErr != nil:
		return attemptResult{err: fmt.Errorf("read answer (HTTP %d): %w", hresp.StatusCode, sr.readErr)}
	case err != nil:
		resp.streamErr = err
		return attemptResult{resp: resp}
	}
	// What the stream function did not need is read and dropped (bounded by the cap), so
	// the connection can serve the next request.
	_, _ = io.Copy(io.Discard, io.LimitReader(hresp.Body, limit-sr.read))
	return attemptResult{resp: resp}
}

// rawBody is a request body already encoded as JSON (a large warninglist is written into
// one buffer instead of being marshalled from a map of strings).
type rawBody []byte

// marshalBody encodes a request body.
func marshalBody(body any) ([]byte, error) {
	if r, ok := body.(rawBody); ok {
		return r, nil
	}
	return json.Marshal(body)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// appendJSONStringBody appends s escaped for the inside of a JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by U+FFFD (as
// encoding/json does).
func appendJSONStringBody(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
