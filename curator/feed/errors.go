package feed

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorKind classifies why a frame was rejected, so callers can count and log
// rejections by kind (the Subscriber logs each kind once, not each frame).
type ErrorKind string

const (
	// KindNoSpace: the frame has no space between topic and payload (misp-api.md §1.4).
	KindNoSpace ErrorKind = "no_space"
	// KindUnknownTopic: the topic is not one mispzmq.py forwards (§1.5).
	KindUnknownTopic ErrorKind = "unknown_topic"
	// KindInvalidJSON: the payload is not valid JSON (same rules as encoding/json).
	// It wins over every other kind: a payload is fully checked before a field
	// error is reported.
	KindInvalidJSON ErrorKind = "invalid_json"
	// KindUnexpectedJSON: valid JSON, but not an object at the root.
	KindUnexpectedJSON ErrorKind = "unexpected_json"
	// KindMissingEvent: "Event" absent or null where the topic requires it.
	KindMissingEvent ErrorKind = "missing_event"
	// KindMissingField: another required field is absent or null ("action", "Tag",
	// a tag's "name", the event_id of an event-tag message).
	KindMissingField ErrorKind = "missing_field"
	// KindBadUUID: an event or organisation UUID is missing or not a UUID.
	KindBadUUID ErrorKind = "bad_uuid"
	// KindBadID: an id is not a non-negative decimal integer (string or number).
	KindBadID ErrorKind = "bad_id"
	// KindBadField: a field the curator reads has the wrong JSON type or value.
	KindBadField ErrorKind = "bad_field"
	// KindTooLarge: the frame is over the size limit (Parser.MaxSize).
	KindTooLarge ErrorKind = "too_large"
	// KindMultipart: a ZeroMQ message with more than one frame; MISP always sends
	// exactly one (misp-api.md §1.4). Reported by the Subscriber, not by Parse.
	KindMultipart ErrorKind = "multipart"
)

// ErrorKinds lists every kind, for pre-initialising metrics.
func ErrorKinds() []ErrorKind {
	return []ErrorKind{KindNoSpace, KindUnknownTopic, KindInvalidJSON, KindUnexpectedJSON,
		KindMissingEvent, KindMissingField, KindBadUUID, KindBadID, KindBadField,
		KindTooLarge, KindMultipart}
}

// ParseError is returned by Parse. It never contains payload content: only the
// topic (when it is a known one, or a short quoted prefix of an unknown one), the
// path of the offending field and a byte offset into the payload.
type ParseError struct {
	Kind   ErrorKind
	Topic  Topic
	Field  string // JSON path, e.g. "Event.uuid"; empty when not about one field
	Offset int    // byte offset in the payload (after "<topic> "), -1 when unknown
	Detail string // short reason, e.g. "want a string, got a number"
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("parse ZeroMQ frame")
	if e.Topic != "" {
		fmt.Fprintf(&b, " (topic %s)", e.Topic)
	}
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " (payload offset %d)", e.Offset)
	}
	return b.String()
}

// ErrorKindOf returns the kind of a *ParseError anywhere in err's chain, or "".
func ErrorKindOf(err error) ErrorKind {
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return ""
}
