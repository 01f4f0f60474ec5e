package misptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// obj is a JSON object that keeps its key order, like a PHP array. MISP's answers are built from
// PHP arrays, so the key order of the real captures is reproduced field by field.
type obj []field

type field struct {
	K string
	V any
}

// MarshalJSON writes the fields in order. Values are encoded without HTML escaping, like PHP's
// json_encode (which never escapes <, > or &).
func (o obj) MarshalJSON() ([]byte, error) {
	return appendJSON(nil, o)
}

// appendJSON encodes v onto b. The types the double builds (obj, []any, strings, numbers,
// bools, nil) are written directly, so nested objects are not re-compacted level by level
// as encoding/json does for Marshalers; anything else goes through encoding/json.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case obj:
		b = append(b, '{')
		for i, f := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.K)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, f.V); err != nil {
				return nil, fmt.Errorf("encode field %q: %w", f.K, err)
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	}
	enc, err := encodeJSON(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// appendJSONString writes s as a JSON string without HTML escaping (encoding/json rules
// otherwise: control characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
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
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = fmt.Appendf(b, `\u%04x`, c)
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
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = fmt.Appendf(b, `\u%04x`, r)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// encodeJSON is json.Marshal without HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// compactJSON is PHP JsonTool::encode / json_encode with JSON_UNESCAPED_SLASHES |
// JSON_UNESCAPED_UNICODE: what MISP pushes to Redis for ZeroMQ and what restSearch writes.
func compactJSON(v any) []byte {
	b, err := appendJSON(nil, v)
	if err != nil {
		// Only programming errors (unsupported types) get here; the double builds every value.
		panic(fmt.Sprintf("misptest: encode JSON: %v", err))
	}
	return b
}

// prettyJSON is json_encode with JSON_PRETTY_PRINT (4 spaces, "key": value), used by MISP's
// RestResponse for clients whose User-Agent does not start with "PyMISP" or "MISP"
// (misp-api.md §0; the captures' Content-Length matches this encoding byte for byte).
func prettyJSON(v any) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, compactJSON(v), "", "    "); err != nil {
		panic(fmt.Sprintf("misptest: indent JSON: %v", err))
	}
	return out.Bytes()
}

// phpDefaultJSON is plain json_encode($x): slashes escaped as \/ and non-ASCII as \uXXXX.
// CakePHP's exception renderer uses it for error bodies, so an error for /events/view/1 reads
// "url":"\/events\/view\/1" on the wire (captures api/02, api/61: Content-Length matches).
func phpDefaultJSON(v any) []byte {
	b := compactJSON(v)
	var out bytes.Buffer
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == '/':
			out.WriteString(`\/`)
		case r >= 0x80 && r < 0x10000:
			fmt.Fprintf(&out, `\u%04x`, r)
		case r >= 0x10000:
			r1, r2 := utf16Surrogates(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			out.Write(b[:size])
		}
		b = b[size:]
	}
	return out.Bytes()
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// h is CakePHP's h(): htmlspecialchars with ENT_QUOTES. Error names and messages are passed
// through it, so a quote in a tag name reaches the client as &quot; (misp-api.md §0).
func h(s string) string {
	return strings.NewReplacer(
		"&", "&amp;",
		`"`, "&quot;",
		"'", "&#039;",
		"<", "&lt;",
		">", "&gt;",
	).Replace(s)
}

// phpEmpty reports whether PHP's empty() is true for a decoded JSON value: null, false, 0,
// 0.0, "", "0", [] and {} are empty. MISP tests request fields with empty(), so "local": "0" is
// a global tag while "local": "false" (a non-empty string) is a LOCAL one.
func phpEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case json.Number:
		f, err := x.Float64()
		return err == nil && f == 0
	case string:
		return x == "" || x == "0"
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// phpString converts a scalar JSON value the way PHP would when it is used as a string.
func phpString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "1"
		}
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// isNumeric is PHP's is_numeric for the strings MISP receives as ids.
func isNumeric(v any) bool {
	switch x := v.(type) {
	case float64, json.Number:
		return true
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return false
		}
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
	return false
}

// canonicalIntKey reports whether a PHP array key given as string becomes an integer key
// ("12" does, "012", "1.0" and "-0" do not).
func canonicalIntKey(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	if s == "0" {
		return true
	}
	t := strings.TrimPrefix(s, "-")
	if t == "" || t[0] == '0' {
		return false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
