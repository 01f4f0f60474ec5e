package misp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MISP serialises database values through PDO with ATTR_STRINGIFY_FETCHES, so ids and integers
// arrive as JSON strings ("id": "12"), tinyint(1) columns as JSON booleans, and a few answers
// use real numbers instead ("id": 17 from /warninglists/import, "version": 2 in the
// /warninglists/edit answer captured in testdata/real/api/28_warninglists_edit_custom.json).
// misp-api.md §0 asks every decoder to accept both forms; these three types do exactly that.

// flexString decodes a JSON string, a JSON number (kept as its literal text) or null ("").
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return fmt.Errorf("misp: empty JSON value")
	}
	switch b[0] {
	case 'n':
		if string(b) == "null" {
			*s = ""
			return nil
		}
	case '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*s = flexString(n.String())
		return nil
	}
	return fmt.Errorf("misp: expected a JSON string or number, got %s", jsonKind(b))
}

// flexInt decodes a JSON number or a numeric JSON string ("5", "" and null give 0).
type flexInt int64

func (i *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	v := strings.TrimSpace(string(s))
	if v == "" {
		*i = 0
		return nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		*i = flexInt(n)
		return nil
	}
	// "2.0" or 2e3: accept integral floats only.
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64/2 {
		// The value is not quoted: answers are not trusted to be free of secrets.
		return fmt.Errorf("misp: expected an integer, got a non-integer string")
	}
	*i = flexInt(int64(f))
	return nil
}

// flexBool decodes true/false, 0/1, "0"/"1", "true"/"false", "" and null (false).
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "true":
		*v = true
		return nil
	case "false", "null":
		*v = false
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("misp: expected a boolean, got %s", jsonKind(b))
	}
	switch strings.ToLower(strings.TrimSpace(string(s))) {
	case "", "0", "false":
		*v = false
		return nil
	case "1", "true":
		*v = true
		return nil
	}
	if f, err := strconv.ParseFloat(string(s), 64); err == nil {
		*v = f != 0
		return nil
	}
	return fmt.Errorf("misp: expected a boolean, got a string that is not one")
}

// jsonKind names the kind of a raw JSON value for error messages without echoing it.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
