package misptest

import (
	"strconv"
	"strings"
	"time"
)

// Org is a MISP organisation. ID is the double's local numeric id as a string.
type Org struct {
	ID, UUID, Name string
	Local          bool
}

// Role is the subset of MISP role permissions the double enforces. A site admin passes every
// ACL check, as in MISP (ACLComponent).
type Role struct {
	SiteAdmin, Publish, Tagger, TagEditor, Warninglist bool
}

// EventTag is a tag attached to an event; Local tags never leave this instance.
type EventTag struct {
	Name  string
	Local bool
}

// Event is the state of one event. On input (AddEvent, SimulatePull, SimulatePush) zero values
// get defaults: ID and UUID are allocated, Timestamp is now, Date is the timestamp's day.
type Event struct {
	ID, UUID, Info string
	// Orgc is the creator organisation; it is created on the double when its UUID is unknown.
	Orgc Org
	// Org is the owner organisation. Defaults: the host org for AddEvent and pulls (MISP sets
	// the owner to the server link's org), the creator org for pushes (the pushing sync user's
	// org, sync README "push-new").
	Org       Org
	Published bool
	Locked    bool
	Timestamp time.Time
	// PublishTimestamp is when this instance last published the event (zero: never).
	PublishTimestamp time.Time
	// Date is the event date "YYYY-MM-DD".
	Date string
	// Distribution is MISP's distribution level "0".."4"; "" means "3" (all communities), the
	// usual value of synchronised events.
	Distribution string
	// Attributes is the number of attributes to generate (on input) or present (on output):
	// views and misp_json messages carry them, so response sizes are real.
	Attributes int
	// SoftDeletedAttributes and EditedAttributes are input only, for synchronised edits: how
	// many of the event's existing attributes the partner soft-deleted (the last ones) or
	// changed (the first ones) in this version. They come as misp_json_attribute "soft-delete"
	// and "edit" before the "add" of new attributes (sync/zmq/105, 108, 116).
	SoftDeletedAttributes, EditedAttributes int
	Tags                                    []EventTag
}

// WL is a warninglist as stored by the double.
type WL struct {
	ID, Name, Type, Description, Category string
	Version                               int
	Enabled, Default                      bool
	Entries                               []WLEntry
	// MatchingAttributes are the attribute types the list applies to ("ALL" for all).
	MatchingAttributes []string
}

// WLEntry is one warninglist entry; an empty Comment is stored as null.
type WLEntry struct {
	Value, Comment string
}

// ---- internal records ----

type orgRec struct {
	id          int
	uuid, name  string
	local       bool
	createdBy   int
	dateCreated string
}

func (o *orgRec) public() Org {
	return Org{ID: strconv.Itoa(o.id), UUID: o.uuid, Name: o.name, Local: o.local}
}

type roleRec struct {
	id   int
	name string
	Role
	sync bool // perm_sync (sync users)
}

type userRec struct {
	id      int
	email   string
	orgID   int
	role    *roleRec
	key     string
	created int64
}

type tagRec struct {
	id             int
	name, colour   string
	exportable     bool
	numericalValue string // "" → null
	localOnly      bool
	hideTag        bool
}

type eventTagRec struct {
	id    int
	tagID int
	local bool
	// relNull: relationship_type is NULL instead of "" — the case for tags a synchronised EDIT
	// attaches (sync/zmq/100: the workflow tag re-attached by the pull of sync/zmq/83).
	relNull bool
}

func (et *eventTagRec) relationshipType() any {
	if et.relNull {
		return nil
	}
	return ""
}

type attributeRec struct {
	id                   int
	uuid                 string
	typ, category, value string
	comment              string
	toIDS                bool
	timestamp            int64
	deleted              bool
	tags                 []*eventTagRec // AttributeTag rows
}

type eventRec struct {
	id                int
	uuid              string
	info, date        string
	threatLevel       string
	analysis          string
	distribution      string
	orgID, orgcID     int
	userID            int
	creatorEmail      string
	published, locked bool
	timestamp         int64
	publishTimestamp  int64
	remoteTimestamp   int64    // the partner's timestamp of the last synchronised version
	remoteTags        []string // the partner's global tags (pulls bring removed ones back)
	remotePublished   bool
	attrs             []*attributeRec
	tags              []*eventTagRec
}

func (e *eventRec) attributeCount() int {
	n := 0
	for _, a := range e.attrs {
		if !a.deleted {
			n++
		}
	}
	return n
}

func (e *eventRec) hasTag(tagID int) *eventTagRec {
	for _, t := range e.tags {
		if t.tagID == tagID {
			return t
		}
	}
	return nil
}

type wlRec struct {
	id                     int
	name, typ, description string
	category               string
	version                int
	enabled, isDefault     bool
	entries                []wlEntryRec
	types                  []wlTypeRec
}

type wlEntryRec struct {
	id      int
	value   string
	comment *string
}

type wlTypeRec struct {
	id  int
	typ string
}

func (w *wlRec) public() WL {
	out := WL{
		ID: strconv.Itoa(w.id), Name: w.name, Type: w.typ, Description: w.description,
		Category: w.category, Version: w.version, Enabled: w.enabled, Default: w.isDefault,
	}
	for _, e := range w.entries {
		c := ""
		if e.comment != nil {
			c = *e.comment
		}
		out.Entries = append(out.Entries, WLEntry{Value: e.value, Comment: c})
	}
	for _, t := range w.types {
		out.MatchingAttributes = append(out.MatchingAttributes, t.typ)
	}
	return out
}

func (w *wlRec) typeNames() []string {
	out := make([]string, 0, len(w.types))
	for _, t := range w.types {
		out = append(out, t.typ)
	}
	return out
}

// ---- lookups (callers hold s.mu) ----

func (s *Server) orgByUUID(uuid string) *orgRec {
	for _, o := range s.orgs {
		if strings.EqualFold(o.uuid, uuid) {
			return o
		}
	}
	return nil
}

func (s *Server) tagByName(name string) *tagRec {
	// Tag.name LIKE <name>: case-insensitive under MySQL's collation, % and _ are wildcards
	// (TagsController::attachTagToObject, misp-api.md §2.4).
	for _, id := range s.tagOrder {
		if likeMatch(s.tags[id].name, name) {
			return s.tags[id]
		}
	}
	return nil
}

func (s *Server) tagByExactName(name string) *tagRec {
	for _, id := range s.tagOrder {
		if s.tags[id].name == name {
			return s.tags[id]
		}
	}
	return nil
}

// eventByRef resolves a numeric id or a UUID (events accept both, misp-api.md §2.2).
func (s *Server) eventByRef(ref string) *eventRec {
	if isUUID(ref) {
		return s.eventByUUID(ref)
	}
	if id, err := strconv.Atoi(ref); err == nil {
		return s.events[id]
	}
	return nil
}

func (s *Server) eventByUUID(uuid string) *eventRec {
	return s.eventsByUUID[strings.ToLower(uuid)]
}

func (s *Server) attributeByUUID(uuid string) (*eventRec, *attributeRec) {
	for _, e := range s.events {
		for _, a := range e.attrs {
			if strings.EqualFold(a.uuid, uuid) {
				return e, a
			}
		}
	}
	return nil, nil
}

// likeMatch implements SQL LIKE with MySQL's case-insensitive collation.
func likeMatch(s, pattern string) bool {
	s, pattern = strings.ToLower(s), strings.ToLower(strings.TrimSpace(pattern))
	if !strings.ContainsAny(pattern, "%_") {
		return s == pattern
	}
	return likeRec([]rune(s), []rune(pattern))
}

func likeRec(s, p []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '%':
			for len(p) > 0 && p[0] == '%' {
				p = p[1:]
			}
			if len(p) == 0 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if likeRec(s[i:], p) {
					return true
				}
			}
			return false
		case '_':
			if len(s) == 0 {
				return false
			}
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
		}
		s, p = s[1:], p[1:]
	}
	return len(s) == 0
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func itoa(i int) string     { return strconv.Itoa(i) }
func i64toa(i int64) string { return strconv.FormatInt(i, 10) }
func atoiOr(s string, d int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		return n
	}
	return d
}
