package feed

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit, so that both agree on what is valid.
const maxDepth = 10000

// scanner is a minimal, validating JSON reader over one payload. It exists because
// the curator needs a handful of fields from messages that can be megabytes
// (misp_json carries every attribute, and its "Tag" list comes after them): it
// reads the few values it is asked for and skips everything else in one pass,
// without building values for the skipped parts. It was measured against
// encoding/json, jsontext (JSON v2) and fastjson doing the same job; none came
// within 2× on time and memory for every frame (doc.go, BenchmarkParseCandidates).
//
// Validity rules are those of encoding/json (RFC 8259 grammar, no UTF-8 check,
// nesting ≤ 10000); the fuzz test checks the two agree.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

func (s *scanner) syntaxError(detail string) *ParseError {
	return &ParseError{Kind: KindInvalidJSON, Offset: s.pos, Detail: detail}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// start skips white space and returns the offset of the next value (for errors).
func (s *scanner) start() int {
	s.peek()
	return s.pos
}

// end checks that only white space follows the top-level value.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos != len(s.data) {
		return s.syntaxError("data after the top-level value")
	}
	return nil
}

// enter opens an object or array whose first byte is at s.pos.
func (s *scanner) enter() error {
	s.pos++
	s.depth++
	if s.depth > maxDepth {
		return s.syntaxError("nesting too deep")
	}
	return nil
}

// nextKey moves to the next member of the object being read and returns its key
// (raw bytes, unescaped only if it contains an escape). ok is false once the
// closing brace is consumed. first must be true for the first call per object.
func (s *scanner) nextKey(first bool) (key []byte, ok bool, err error) {
	c := s.peek()
	if c == '}' {
		s.pos++
		s.depth--
		return nil, false, nil
	}
	if !first {
		if c != ',' {
			return nil, false, s.syntaxError("want ',' or '}' in object")
		}
		s.pos++
		c = s.peek()
	}
	if c != '"' {
		return nil, false, s.syntaxError("want a string key in object")
	}
	raw, esc, err := s.rawString()
	if err != nil {
		return nil, false, err
	}
	if esc {
		raw = appendUnquoted(nil, raw)
	}
	if s.peek() != ':' {
		return nil, false, s.syntaxError("want ':' after object key")
	}
	s.pos++
	return raw, true, nil
}

// nextElem moves to the next element of the array being read; ok is false once
// the closing bracket is consumed.
func (s *scanner) nextElem(first bool) (ok bool, err error) {
	c := s.peek()
	if c == ']' && first {
		s.pos++
		s.depth--
		return false, nil
	}
	if !first {
		switch c {
		case ']':
			s.pos++
			s.depth--
			return false, nil
		case ',':
			s.pos++
		default:
			return false, s.syntaxError("want ',' or ']' in array")
		}
	}
	return true, nil
}

// rawString reads a string starting at the opening quote at s.pos and returns its
// raw content (between the quotes) and whether it contains escapes.
func (s *scanner) rawString() (raw []byte, esc bool, err error) {
	d := s.data
	start := s.pos + 1
	for i := start; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				s.pos = i
				return nil, false, s.syntaxError("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || hex4(d[i+2:i+6]) < 0 {
					s.pos = i
					return nil, false, s.syntaxError("bad \\u escape in string")
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.syntaxError("bad escape in string")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.syntaxError("control character in string")
		default:
			i++
		}
	}
	s.pos = len(d)
	return nil, false, s.syntaxError("unterminated string")
}

// number reads a number at s.pos and returns its literal text.
func (s *scanner) number() ([]byte, error) {
	d := s.data
	start, i := s.pos, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		s.pos = i
		return nil, s.syntaxError("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			s.pos = i
			return nil, s.syntaxError("bad number fraction")
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			s.pos = i
			return nil, s.syntaxError("bad number exponent")
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.pos = i
	return d[start:i], nil
}

// literal reads true, false or null.
func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.syntaxError("bad literal")
	}
	s.pos += len(word)
	return nil
}

// skip validates and skips one value of any type.
func (s *scanner) skip() error {
	switch c := s.peek(); {
	case c == '{':
		if err := s.enter(); err != nil {
			return err
		}
		for first := true; ; first = false {
			_, ok, err := s.nextKey(first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		if err := s.enter(); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := s.nextElem(first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(); err != nil {
				return err
			}
		}
	case c == '"':
		_, _, err := s.rawString()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		_, err := s.number()
		return err
	case c == 0:
		return s.syntaxError("unexpected end of payload")
	}
	return s.syntaxError("unexpected character")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// decodeString turns raw string content (already validated by rawString) into a
// Go string exactly as encoding/json does: escapes resolved, unpaired surrogates
// and invalid UTF-8 replaced by U+FFFD.
func decodeString(raw []byte, esc bool) string {
	if !esc && utf8.Valid(raw) {
		return string(raw)
	}
	return string(appendUnquoted(make([]byte, 0, len(raw)+8), raw))
}

func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == '\\' {
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2 = hex4(raw[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						i += 6
						r = dec
					} else {
						r = unicode.ReplacementChar
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, unicode.ReplacementChar)
		} else {
			dst = append(dst, raw[i:i+size]...)
		}
		i += size
	}
	return dst
}
