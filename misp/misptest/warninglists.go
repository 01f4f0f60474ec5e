package misptest

import (
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// cachedWL is one enabled list as MISP's Redis cache holds it (misp:warninglist_cache plus
// misp:warninglist_entries_cache:<id>). checkValue and the warnings of event views read the
// cache, not the database; the cache is rebuilt by add, edit and toggleEnable but NOT by
// delete, so a deleted list keeps matching until the next rebuild (README: api/24 of
// warninglists_extra).
type cachedWL struct {
	id             int
	name, typ, cat string
	types          []string
	entries        []wlEntryRec
}

func (s *Server) regenWarninglistCacheLocked() {
	ids := make([]int, 0, len(s.wls))
	for id, w := range s.wls {
		if w.enabled {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	s.wlCache = s.wlCache[:0]
	for _, id := range ids {
		w := s.wls[id]
		s.wlCache = append(s.wlCache, cachedWL{
			id: w.id, name: w.name, typ: w.typ, cat: w.category,
			types: w.typeNames(), entries: append([]wlEntryRec(nil), w.entries...),
		})
	}
}

// match is Warninglist::checkValue for one list and one value; it returns the list entry
// that matched (the CIDR with its mask, the hostname suffix, the regex, ...).
func (c *cachedWL) match(value string) (string, bool) {
	switch c.typ {
	case "cidr":
		addr, err := netip.ParseAddr(value)
		if err != nil {
			return "", false
		}
		for _, e := range c.entries {
			p, ok := cidrEntry(e.value)
			if ok && p.Contains(addr.Unmap()) {
				return p.String(), true
			}
		}
	case "string":
		for _, e := range c.entries {
			if e.value == value {
				return value, true
			}
		}
	case "substring":
		for _, e := range c.entries {
			if strings.Contains(value, e.value) {
				return e.value, true
			}
		}
	case "hostname":
		// __evalHostname: the host is the first path segment, or the third after "//"; the
		// value is NOT lower-cased, the list is; suffixes are tried from the TLD up.
		parts := strings.Split(value, "/")
		host := parts[0]
		if strings.Contains(value, "//") {
			if len(parts) < 3 {
				return "", false
			}
			host = parts[2]
		}
		host = strings.TrimRight(host, ".")
		list := map[string]bool{}
		for _, e := range c.entries {
			list[strings.ToLower(strings.Trim(e.value, "."))] = true
		}
		labels := strings.Split(host, ".")
		rebuilt := ""
		for i := len(labels) - 1; i >= 0; i-- {
			if rebuilt == "" {
				rebuilt = labels[i]
			} else {
				rebuilt = labels[i] + "." + rebuilt
			}
			if list[rebuilt] {
				return rebuilt, true
			}
		}
	case "regex":
		for _, e := range c.entries {
			if re, err := pcre(e.value); err == nil && re.MatchString(value) {
				return e.value, true
			}
		}
	}
	return "", false
}

// cidrEntry parses a cidr list entry; a bare address becomes /32 or /128 (CidrTool).
func cidrEntry(v string) (netip.Prefix, bool) {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// pcre converts a PHP preg pattern "/.../flags" to a Go regexp. Patterns using PCRE-only
// features (look-around, backreferences) do not compile: the double reports them as invalid
// where MISP would accept them.
func pcre(p string) (*regexp.Regexp, error) {
	if len(p) < 2 {
		return nil, errInvalidRegex
	}
	open := p[0]
	if open == '\\' || open == ' ' || (open >= 'a' && open <= 'z') || (open >= 'A' && open <= 'Z') || (open >= '0' && open <= '9') {
		return nil, errInvalidRegex
	}
	closing := open
	switch open {
	case '(':
		closing = ')'
	case '[':
		closing = ']'
	case '{':
		closing = '}'
	case '<':
		closing = '>'
	}
	end := strings.LastIndexByte(p, closing)
	if end <= 0 {
		return nil, errInvalidRegex
	}
	body, flags := p[1:end], p[end+1:]
	goFlags := ""
	for _, f := range flags {
		switch f {
		case 'i', 'm', 's', 'U':
			goFlags += string(f)
		case 'u', 'D', 'x':
			// u (UTF-8) is Go's default; D and x have no effect on the patterns MISP users write.
		default:
			return nil, errInvalidRegex
		}
	}
	if goFlags != "" {
		body = "(?" + goFlags + ")" + body
	}
	return regexp.Compile(body)
}

type regexError string

func (e regexError) Error() string { return string(e) }

const errInvalidRegex = regexError("invalid PCRE pattern")

// attributeWarningsLocked is Warninglist::attachWarninglistToAttributes for one attribute:
// only to_ids attributes, only lists whose types include the attribute type or ALL; composite
// values (a|b) are checked part by part.
func (s *Server) attributeWarningsLocked(a *attributeRec) []any {
	if !a.toIDS {
		return nil
	}
	values := []string{a.value}
	if a.typ == "malware-sample" || strings.Contains(a.typ, "|") {
		values = strings.SplitN(a.value, "|", 2)
	}
	var out []any
	for i := range s.wlCache {
		c := &s.wlCache[i]
		if !contains(c.types, "ALL") && !contains(c.types, a.typ) {
			continue
		}
		for _, v := range values {
			m, ok := c.match(v)
			if !ok {
				continue
			}
			w := obj{{"value", v}, {"match", m}, {"warninglist_id", itoa(c.id)}, {"warninglist_name", c.name}, {"warninglist_category", c.cat}}
			for _, e := range c.entries {
				if e.value == m && e.comment != nil && *e.comment != "" {
					w = append(w, field{"comment", *e.comment})
					break
				}
			}
			out = append(out, w)
			break
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// parseEntries turns the "entries" input into rows: a newline-separated string is split on the
// first "#" into value and comment (parseFreetext); an array takes values or {value, comment}
// objects as they are (parseArray, MISP ≥ 2.4.198).
func parseEntries(v any) []wlEntryRec {
	var out []wlEntryRec
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			switch ev := e.(type) {
			case map[string]any:
				rec := wlEntryRec{value: phpString(ev["value"])}
				if c, ok := ev["comment"]; ok && c != nil {
					cs := phpString(c)
					rec.comment = &cs
				}
				out = append(out, rec)
			default:
				out = append(out, wlEntryRec{value: phpString(ev)})
			}
		}
	case nil:
	default:
		text := strings.TrimSpace(phpString(x))
		if text == "" {
			return nil
		}
		for _, line := range strings.Split(text, "\n") {
			value, comment, hasComment := strings.Cut(line, "#")
			rec := wlEntryRec{value: strings.TrimSpace(value)}
			if hasComment {
				c := strings.TrimSpace(comment)
				rec.comment = &c
			}
			out = append(out, rec)
		}
	}
	return out
}

var (
	wlTypes      = []string{"cidr", "hostname", "string", "substring", "regex"}
	wlCategories = []string{"false_positive", "known"}
)

// blank is CakePHP's message for a failed rule that has no message of its own (the captured
// answer for an invalid category, warninglists_extra/api/01).
const blank = "This field cannot be left blank"

// validateWarninglist applies Warninglist::beforeValidate and $validate to the fields present
// in in; selfID is excluded from the name uniqueness check. The result keeps MISP's field order.
func (s *Server) validateWarninglist(in map[string]any, typ string, entries []wlEntryRec, entriesGiven bool, selfID int) obj {
	var errs obj
	if entriesGiven {
		var bad []any
		for _, e := range entries {
			switch typ {
			case "cidr":
				if _, ok := cidrEntry(e.value); !ok {
					bad = append(bad, "`"+e.value+"` is not valid CIDR")
				}
			case "regex":
				if _, err := pcre(e.value); err != nil {
					bad = append(bad, "`"+e.value+"` is not valid regular expression")
				}
			}
		}
		if len(bad) > 0 {
			// beforeValidate returns false: no other rule runs.
			return obj{{"entries", bad}}
		}
	}
	if v, ok := in["name"]; ok {
		name := phpString(v)
		if strings.TrimSpace(name) == "" {
			errs = append(errs, field{"name", []any{blank}})
		} else {
			for id, w := range s.wls {
				if id != selfID && strings.EqualFold(w.name, name) {
					errs = append(errs, field{"name", []any{"Warninglist with same name already exists."}})
					break
				}
			}
		}
	}
	if v, ok := in["description"]; ok && strings.TrimSpace(phpString(v)) == "" {
		errs = append(errs, field{"description", []any{blank}})
	}
	if v, ok := in["version"]; ok && !isNumeric(v) {
		errs = append(errs, field{"version", []any{blank}})
	}
	if v, ok := in["type"]; ok && !contains(wlTypes, phpString(v)) {
		errs = append(errs, field{"type", []any{blank}})
	}
	if v, ok := in["category"]; ok && !contains(wlCategories, phpString(v)) {
		errs = append(errs, field{"category", []any{blank}})
	}
	if entriesGiven && len(entries) == 0 {
		errs = append(errs, field{"entries", []any{"Entries cannot be empty."}})
	}
	return errs
}

func (s *Server) newWLEntriesLocked(entries []wlEntryRec) []wlEntryRec {
	out := make([]wlEntryRec, len(entries))
	for i, e := range entries {
		e.id = s.nextWLEntryID
		s.nextWLEntryID++
		out[i] = e
	}
	return out
}

func (s *Server) newWLTypesLocked(types []string) []wlTypeRec {
	out := make([]wlTypeRec, len(types))
	for i, t := range types {
		out[i] = wlTypeRec{id: s.nextWLTypeID, typ: t}
		s.nextWLTypeID++
	}
	return out
}

// matchingAttributes reads matching_attributes; ok is false when it is not an array.
func matchingAttributes(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		out = append(out, phpString(x))
	}
	return out, true
}

// ---- direct access for tests ----

// Warninglist returns the list with this id.
func (s *Server) Warninglist(id string) (WL, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wls[atoiOr(id, -1)]
	if w == nil {
		return WL{}, false
	}
	return w.public(), true
}

// WarninglistByName returns the list with this exact name.
func (s *Server) WarninglistByName(name string) (WL, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.wls {
		if w.name == name {
			return w.public(), true
		}
	}
	return WL{}, false
}

// Warninglists returns every list, by id.
func (s *Server) Warninglists() []WL {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.wls))
	for id := range s.wls {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]WL, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.wls[id].public())
	}
	return out
}

// EditWarninglistUI changes a list as a person in MISP's web UI would (drift for a
// controller to repair): the change is saved through the model, so the version goes up by one
// unless mutate sets it, the cache is rebuilt and misp_json_warninglist "edit" is published.
// ID and Default cannot be changed.
func (s *Server) EditWarninglistUI(id string, mutate func(*WL)) {
	s.mu.Lock()
	w := s.wls[atoiOr(id, -1)]
	if w == nil {
		s.mu.Unlock()
		return
	}
	before := w.public()
	after := w.public()
	mutate(&after)
	w.name, w.typ, w.description, w.category = after.Name, after.Type, after.Description, after.Category
	w.enabled = after.Enabled
	contentChanged := before.Name != after.Name || before.Type != after.Type || before.Description != after.Description ||
		before.Category != after.Category || !sameEntries(before.Entries, after.Entries) ||
		strings.Join(before.MatchingAttributes, ",") != strings.Join(after.MatchingAttributes, ",")
	if !sameEntries(before.Entries, after.Entries) {
		var entries []wlEntryRec
		for _, e := range after.Entries {
			rec := wlEntryRec{value: e.Value}
			if e.Comment != "" {
				c := e.Comment
				rec.comment = &c
			}
			entries = append(entries, rec)
		}
		w.entries = s.newWLEntriesLocked(entries)
	}
	if strings.Join(before.MatchingAttributes, ",") != strings.Join(after.MatchingAttributes, ",") {
		w.types = s.newWLTypesLocked(after.MatchingAttributes)
	}
	switch {
	case after.Version != before.Version:
		w.version = after.Version
	case contentChanged:
		w.version++
	}
	s.regenWarninglistCacheLocked()
	s.unlockAndPublish([]Message{s.msgWarninglist(w, "edit")})
}

func sameEntries(a, b []WLEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DeleteWarninglistUI deletes a list as the UI's delete button does (Warninglist::quickDelete):
// no ZeroMQ message and no cache rebuild, so checkValue keeps matching it for a while.
func (s *Server) DeleteWarninglistUI(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.wls, atoiOr(id, -1))
}

// AddWarninglist stores a list directly (no ZeroMQ message) and returns it with its id; a
// zero Version becomes 1, empty MatchingAttributes become ["ALL"], Type defaults to "string"
// and Category to "false_positive".
func (s *Server) AddWarninglist(w WL) WL {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := &wlRec{id: s.nextWLID, name: w.Name, typ: w.Type, description: w.Description, category: w.Category,
		version: w.Version, enabled: w.Enabled, isDefault: w.Default}
	if id := atoiOr(w.ID, 0); id > 0 && s.wls[id] == nil {
		rec.id = id
	}
	if rec.id >= s.nextWLID {
		s.nextWLID = rec.id + 1
	}
	if rec.typ == "" {
		rec.typ = "string"
	}
	if rec.category == "" {
		rec.category = "false_positive"
	}
	if rec.version == 0 {
		rec.version = 1
	}
	var entries []wlEntryRec
	for _, e := range w.Entries {
		r := wlEntryRec{value: e.Value}
		if e.Comment != "" {
			c := e.Comment
			r.comment = &c
		}
		entries = append(entries, r)
	}
	rec.entries = s.newWLEntriesLocked(entries)
	types := w.MatchingAttributes
	if len(types) == 0 {
		types = []string{"ALL"}
	}
	rec.types = s.newWLTypesLocked(types)
	s.wls[rec.id] = rec
	s.regenWarninglistCacheLocked()
	return rec.public()
}

func wlIDString(v any) (int, bool) {
	s := strings.TrimSpace(phpString(v))
	n, err := strconv.Atoi(s)
	return n, err == nil
}
