package misp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// WarninglistEntry is one value of a warninglist, with its optional comment.
type WarninglistEntry struct{ Value, Comment string }

// Warninglist is a MISP warninglist (misp-api.md §2.6, §4.3).
type Warninglist struct {
	ID, Name    string
	Type        string // string | substring | hostname | cidr | regex
	Category    string // false_positive | known (custom lists only)
	Description string
	Version     int
	Enabled     bool
	Default     bool // shipped by misp-warninglists; false for custom lists
	// MatchingAttributes are the attribute types the list applies to; ["ALL"] means every
	// type. When writing, an empty slice is sent as ["ALL"] (MISP's own default since
	// 2.4.178), so that add and edit agree.
	MatchingAttributes []string
	Entries            []WarninglistEntry // filled by ViewWarninglist only
	EntryCount         int
	// Source, when set, gives the entries to write instead of Entries (add and edit).
	Source EntrySource
}

// WarninglistHit is one match reported by CheckValues.
type WarninglistHit struct {
	ID, Name string
	Matched  string // the list entry that matched (MISP ≥ 2.4.149)
}

// wlRow is a warninglist as index, view and edit answer it.
type wlRow struct {
	ID                 flexString   `json:"id"`
	Name               flexString   `json:"name"`
	Type               flexString   `json:"type"`
	Description        flexString   `json:"description"`
	Version            flexInt      `json:"version"`
	Enabled            flexBool     `json:"enabled"`
	Default            flexBool     `json:"default"`
	Category           flexString   `json:"category"`
	EntryCount         flexInt      `json:"warninglist_entry_count"`
	ValidAttributes    flexString   `json:"valid_attributes"`
	MatchingAttributes []flexString `json:"matching_attributes"`
	WarninglistEntry   []struct {
		Value   flexString `json:"value"`
		Comment flexString `json:"comment"`
	} `json:"WarninglistEntry"`
	WarninglistType []struct {
		Type flexString `json:"type"`
	} `json:"WarninglistType"`
}

func (r wlRow) warninglist(withEntries bool) Warninglist {
	wl := Warninglist{
		ID:          string(r.ID),
		Name:        string(r.Name),
		Type:        string(r.Type),
		Category:    string(r.Category),
		Description: string(r.Description),
		Version:     int(r.Version),
		Enabled:     bool(r.Enabled),
		Default:     bool(r.Default),
		EntryCount:  int(r.EntryCount),
	}
	switch {
	case len(r.WarninglistType) > 0:
		for _, t := range r.WarninglistType {
			wl.MatchingAttributes = append(wl.MatchingAttributes, string(t.Type))
		}
	case len(r.MatchingAttributes) > 0:
		for _, t := range r.MatchingAttributes {
			wl.MatchingAttributes = append(wl.MatchingAttributes, string(t))
		}
	case r.ValidAttributes != "":
		// The index joins the types with ", " (WarninglistsController::index).
		for _, t := range strings.Split(string(r.ValidAttributes), ",") {
			if t = strings.TrimSpace(t); t != "" {
				wl.MatchingAttributes = append(wl.MatchingAttributes, t)
			}
		}
	}
	if withEntries {
		wl.Entries = make([]WarninglistEntry, 0, len(r.WarninglistEntry))
		for _, e := range r.WarninglistEntry {
			wl.Entries = append(wl.Entries, WarninglistEntry{Value: string(e.Value), Comment: string(e.Comment)})
		}
		wl.EntryCount = len(wl.Entries)
	}
	return wl
}

// decodeWarninglistIndex decodes {"Warninglists": [{"Warninglist": {...}}, ...]}.
func decodeWarninglistIndex(body []byte) ([]Warninglist, error) {
	var b struct {
		Warninglists *[]struct {
			Warninglist *wlRow `json:"Warninglist"`
		} `json:"Warninglists"`
	}
	if err := decodeObject(body, &b); err != nil {
		return nil, err
	}
	if b.Warninglists == nil {
		return nil, errMissing("Warninglists")
	}
	out := make([]Warninglist, 0, len(*b.Warninglists))
	for i, w := range *b.Warninglists {
		if w.Warninglist == nil || w.Warninglist.ID == "" {
			return nil, fmt.Errorf("warninglist #%d has no id", i)
		}
		out = append(out, w.Warninglist.warninglist(false))
	}
	return out, nil
}

// decodeWarninglistView decodes {"Warninglist": {..., "WarninglistEntry": [...], "WarninglistType": [...]}}
// (testdata/real/api/26_warninglists_view_custom.json) with its entries.
func decodeWarninglistView(body []byte) (*Warninglist, error) {
	var entries []WarninglistEntry
	wl, err := decodeWarninglistStream(bytes.NewReader(body), func(e WarninglistEntry) { entries = append(entries, e) })
	if err != nil {
		return nil, err
	}
	wl.Entries = entries
	if wl.Entries == nil {
		wl.Entries = []WarninglistEntry{}
	}
	return wl, nil
}

// decodeCheckValue decodes the checkValue answer: an object keyed by the queried value, or
// [] when nothing matched (misp-api.md §2.6). PHP turns an array whose keys are exactly
// 0..n-1 into a JSON list, so a non-empty list is read as keys "0", "1", ….
func decodeCheckValue(body []byte) (map[string][]WarninglistHit, error) {
	type hit struct {
		ID      flexString `json:"id"`
		Name    flexString `json:"name"`
		Matched flexString `json:"matched"`
	}
	trimmed := bytes.TrimSpace(body)
	out := map[string][]WarninglistHit{}
	convert := func(key string, hits []hit) {
		for _, h := range hits {
			out[key] = append(out[key], WarninglistHit{ID: string(h.ID), Name: string(h.Name), Matched: string(h.Matched)})
		}
	}
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		var list [][]hit
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, err
		}
		for i, hits := range list {
			convert(strconv.Itoa(i), hits)
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		var m map[string][]hit
		if err := json.Unmarshal(trimmed, &m); err != nil {
			return nil, err
		}
		for k, hits := range m {
			convert(k, hits)
		}
	default:
		return nil, fmt.Errorf("expected a JSON object or [], got %s", jsonKind(trimmed))
	}
	return out, nil
}

func decodeObject(body []byte, out any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("expected a JSON object, got %s", jsonKind(trimmed))
	}
	return json.Unmarshal(trimmed, out)
}

// ListWarninglists returns every warninglist, default and custom, without entries
// (GET /warninglists/index; about 85 kB on a stock MISP 2.5.1).
func (c *Client) ListWarninglists(ctx context.Context) ([]Warninglist, error) {
	req := request{op: "list warninglists", method: http.MethodGet, route: "/warninglists/index", path: "/warninglists/index"}
	return c.listWarninglists(ctx, req)
}

func (c *Client) listWarninglists(ctx context.Context, req request) ([]Warninglist, error) {
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	lists, err := decodeWarninglistIndex(resp.body)
	if err != nil {
		return nil, c.decodeFailure(req, resp, err)
	}
	return lists, nil
}

// FindWarninglist returns the list whose name is exactly name (names are unique in MISP,
// across default and custom lists), without entries; ErrNotFound if there is none.
//
// It asks MISP to narrow the index with {"value": name}, a case-insensitive substring match
// on name or description (WarninglistsController::index, testdata/real/api/23_…), and
// compares names exactly itself. That LIKE match is unreliable for backslashes (LIKE's
// escape character) and non-ASCII letters (PHP strtolower vs SQL LOWER), so such names are
// looked up in the full index instead.
func (c *Client) FindWarninglist(ctx context.Context, name string) (*Warninglist, error) {
	req := request{op: fmt.Sprintf("find warninglist %q", name), method: http.MethodPost,
		route: "/warninglists/index", path: "/warninglists/index", idempotent: true}
	if name == "" {
		return nil, c.invalid(req, "empty warninglist name")
	}
	if isPlainASCII(name) {
		req.body = map[string]any{"value": name}
	} else {
		req.method = http.MethodGet
	}
	lists, err := c.listWarninglists(ctx, req)
	if err != nil {
		return nil, err
	}
	for i := range lists {
		if lists[i].Name == name {
			return &lists[i], nil
		}
	}
	return nil, &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Status: http.StatusOK,
		Kind: ErrNotFound, Message: "no warninglist has this name"}
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// ViewWarninglist returns one list with its entries (GET /warninglists/view/{id}). A
// list of any size is decoded as it arrives, but its entries are all returned: use
// ScanWarninglist to look at them one at a time instead.
func (c *Client) ViewWarninglist(ctx context.Context, id string) (*Warninglist, error) {
	var entries []WarninglistEntry
	wl, err := c.ScanWarninglist(ctx, id, func() func(WarninglistEntry) {
		entries = []WarninglistEntry{}
		return func(e WarninglistEntry) { entries = append(entries, e) }
	})
	if err != nil {
		return nil, err
	}
	wl.Entries = entries
	return wl, nil
}

// EntrySource produces the entries of a list to write, one at a time, when they are not
// given as a slice (Warninglist.Source): a list of 500,000 organisations is then written
// without 500,000 entries being built first.
type EntrySource interface {
	Len() int
	// Entry returns entry i: its value is prefix+value (a prefix shared by many entries
	// is not copied into each) and its comment.
	Entry(i int) (prefix, value, comment string)
}

type entrySlice []WarninglistEntry

func (s entrySlice) Len() int                             { return len(s) }
func (s entrySlice) Entry(i int) (string, string, string) { return "", s[i].Value, s[i].Comment }

// warninglistBody is the body of add and edit (misp-api.md §2.6; MISP's own test wraps it
// in {"Warninglist": …}, which every version accepts), encoded in one buffer: the entries
// of a large list are written into it directly.
func warninglistBody(wl Warninglist) rawBody {
	attrs := wl.MatchingAttributes
	if len(attrs) == 0 {
		attrs = []string{"ALL"}
	}
	var src EntrySource = entrySlice(wl.Entries)
	if wl.Source != nil {
		src = wl.Source
	}
	size := 256 + len(wl.Name) + len(wl.Description)
	for i := 0; i < src.Len(); i++ {
		p, v, c := src.Entry(i)
		size += len(p) + len(v) + len(c) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, `{"Warninglist":{"name":`...)
	b = appendJSONString(b, wl.Name)
	b = append(b, `,"description":`...)
	b = appendJSONString(b, wl.Description) // always sent: the column has no default
	if wl.Type != "" {
		b = append(b, `,"type":`...)
		b = appendJSONString(b, wl.Type)
	}
	if wl.Category != "" {
		b = append(b, `,"category":`...)
		b = appendJSONString(b, wl.Category)
	}
	b = append(b, `,"matching_attributes":[`...)
	for i, a := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, a)
	}
	b = append(b, `],"entries":`...)
	b = appendEntries(b, src)
	return append(b, "}}"...)
}

// stringFormOK reports whether an entry survives the string form: a non-empty value
// prefix+value without '#', line breaks or surrounding spaces, and a comment without line
// breaks or surrounding spaces (MISP trims both).
func stringFormOK(prefix, value, comment string) bool {
	first, last := prefix, value
	if first == "" {
		first = value
	}
	if last == "" {
		last = prefix
	}
	return first != "" && !strings.ContainsAny(prefix, "#\r\n") && !strings.ContainsAny(value, "#\r\n") &&
		strings.TrimLeftFunc(first, unicode.IsSpace) == first && strings.TrimRightFunc(last, unicode.IsSpace) == last &&
		strings.TrimSpace(comment) == comment && !strings.ContainsAny(comment, "\r\n")
}

// appendEntries chooses the entries form. The newline-separated string ("value # comment"
// per line) works on every MISP since 2.4.145 and is what the captures use: MISP splits
// each line at its FIRST '#' (Warninglist::parseFreetext, explode("#", $entry, 2)), so a
// comment may contain '#' (an organisation "CERT #1"). It cannot carry a value with "#",
// a line break or surrounding spaces, so such lists are sent in the array form
// [{"value","comment"}] that MISP ≥ 2.4.198 accepts (misp-api.md §2.6).
func appendEntries(b []byte, src EntrySource) []byte {
	n := src.Len()
	if n == 0 {
		return append(b, `""`...) // MISP answers 403 {"entries": ["Entries cannot be empty."]}
	}
	stringForm := true
	for i := 0; i < n && stringForm; i++ {
		stringForm = stringFormOK(src.Entry(i))
	}
	if stringForm {
		b = append(b, '"')
		for i := 0; i < n; i++ {
			p, v, c := src.Entry(i)
			if i > 0 {
				b = append(b, `\n`...)
			}
			b = appendJSONStringBody(b, p)
			b = appendJSONStringBody(b, v)
			if c != "" {
				b = append(b, " # "...)
				b = appendJSONStringBody(b, c)
			}
		}
		return append(b, '"')
	}
	b = append(b, '[')
	for i := 0; i < n; i++ {
		p, v, c := src.Entry(i)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"value":"`...)
		b = appendJSONStringBody(b, p)
		b = appendJSONStringBody(b, v)
		b = append(b, `","comment":`...)
		b = appendJSONString(b, c)
		b = append(b, '}')
	}
	return append(b, ']')
}

// AddWarninglist creates a custom warninglist and returns its id (POST /warninglists/add).
// MISP creates it disabled whatever wl.Enabled says: call SetWarninglistEnabled next.
// Version, Default and EntryCount are ignored. Validation failures (duplicate name, bad
// category or type, no entries) are ErrValidation with MISP's field errors in Errors.
//
// add is not idempotent: when an attempt failed in transit (network error, 5xx) and the
// retry is refused with "Warninglist with same name already exists.", the list made by the
// first attempt is looked up by name and its id returned.
func (c *Client) AddWarninglist(ctx context.Context, wl Warninglist) (string, error) {
	// Repeatable: a repeat of an add that went through is refused as a duplicate name and
	// resolved by the lookup below.
	req := request{op: fmt.Sprintf("add warninglist %q", wl.Name), method: http.MethodPost,
		route: "/warninglists/add", path: "/warninglists/add", idempotent: true}
	if wl.Name == "" {
		return "", c.invalid(req, "empty warninglist name")
	}
	req.body = warninglistBody(wl)
	var b struct {
		Warninglist *struct {
			ID flexString `json:"id"`
		} `json:"Warninglist"`
	}
	resp, err := c.call(ctx, req, &b)
	if err != nil {
		if resp != nil && resp.attempts > 1 && errors.Is(err, ErrValidation) && strings.Contains(fmt.Sprint(err), "already exists") {
			if found, ferr := c.FindWarninglist(ctx, wl.Name); ferr == nil && !found.Default {
				return found.ID, nil
			}
		}
		return "", err
	}
	if b.Warninglist == nil || !isID(string(b.Warninglist.ID)) {
		return "", c.decodeFailure(req, resp, errMissing("Warninglist.id"))
	}
	return string(b.Warninglist.ID), nil
}

// EditWarninglist replaces name, description, type, category, matching attributes and
// entries of a custom list (POST /warninglists/edit/{id}); MISP increments its version.
// Default lists and unknown ids give ErrNotFound. Enabled is not changed by an edit.
func (c *Client) EditWarninglist(ctx context.Context, id string, wl Warninglist) error {
	_, err := c.UpdateWarninglist(ctx, id, wl)
	return err
}

// UpdateWarninglist is EditWarninglist returning the version MISP gave the list (0 when
// its answer does not say). MISP's answer echoes every entry (testdata/real/api/28_…):
// it is read as it arrives and only its head is kept.
func (c *Client) UpdateWarninglist(ctx context.Context, id string, wl Warninglist) (int, error) {
	// Repeatable: it sets the whole list.
	req := request{op: fmt.Sprintf("edit warninglist %s (%q)", id, wl.Name), method: http.MethodPost,
		route: "/warninglists/edit/{id}", idempotent: true}
	if err := c.checkID(req, "warninglist id", id); err != nil {
		return 0, err
	}
	if wl.Name == "" {
		return 0, c.invalid(req, "empty warninglist name")
	}
	req.path = "/warninglists/edit/" + id
	req.body = warninglistBody(wl)
	var ans editAnswer
	req.stream = func(r io.Reader) error {
		var err error
		ans, err = decodeEditStream(r)
		return err
	}
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return 0, err
	}
	if ans.save.failed() {
		e := c.apiError(req, resp)
		e.Kind = ErrValidation
		e.Message = redact(ans.save.message(), c.key)
		return 0, e
	}
	return ans.version, nil
}

// SetWarninglistEnabled enables or disables a list (POST /warninglists/toggleEnable
// {"id", "enabled": 1|0}). MISP answers HTTP 200 even when it fails, so "saved" is
// checked: {"saved": false, "errors": "Warninglist(s) not found."} is ErrNotFound, other
// failures ErrValidation.
func (c *Client) SetWarninglistEnabled(ctx context.Context, id string, enabled bool) error {
	verb := "disable"
	flag := 0
	if enabled {
		verb, flag = "enable", 1
	}
	// Repeatable: "enabled" names the state wanted (not a toggle despite the endpoint's name).
	req := request{op: verb + " warninglist " + id, method: http.MethodPost,
		route: "/warninglists/toggleEnable", path: "/warninglists/toggleEnable", idempotent: true}
	if err := c.checkID(req, "warninglist id", id); err != nil {
		return err
	}
	req.body = map[string]any{"id": id, "enabled": flag}
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return err
	}
	b, err := decodeSave(resp.body)
	if err != nil {
		return c.decodeFailure(req, resp, err)
	}
	if b.Saved == nil || !bool(*b.Saved) {
		e := c.apiError(req, resp)
		e.Kind = ErrValidation
		if b.Saved == nil {
			e.Kind = ErrUnexpectedResponse
		} else if strings.Contains(strings.ToLower(e.Message), "not found") {
			e.Kind = ErrNotFound
		}
		return e
	}
	return nil
}

// DeleteWarninglist deletes a list. POST /warninglists/delete/{id} is a UI endpoint that
// answers 302 whether or not it deleted anything (misp-api.md §2.6,
// testdata/real/api/68_warninglists_delete_custom.json), so the client does not follow
// the redirect and confirms with GET /warninglists/view/{id} answering 404. Deleting a list
// that does not exist succeeds. MISP's checkValue cache may keep matching a deleted list
// until the caches are rebuilt (any toggleEnable does it).
func (c *Client) DeleteWarninglist(ctx context.Context, id string) error {
	// Repeatable: deleting a deleted list answers the same 302, confirmed below.
	req := request{op: "delete warninglist " + id, method: http.MethodPost, route: "/warninglists/delete/{id}", idempotent: true}
	if err := c.checkID(req, "warninglist id", id); err != nil {
		return err
	}
	req.path = "/warninglists/delete/" + id
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusFound, http.StatusSeeOther, http.StatusOK, http.StatusNoContent:
	default:
		return c.apiError(req, resp)
	}
	_, err = c.ViewWarninglist(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("misp: %s: confirm the delete: %w", c.opName(req), err)
	}
	return &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Status: resp.status,
		Kind: ErrUnexpectedResponse, Message: "the warninglist still exists after the delete"}
}

// CheckValues asks which enabled warninglists match each value (POST
// /warninglists/checkValue with a JSON array). Values without a hit are absent from the
// map; keys are the values as MISP echoes them (trimmed). No values: no call.
func (c *Client) CheckValues(ctx context.Context, values []string) (map[string][]WarninglistHit, error) {
	req := request{op: fmt.Sprintf("check %d value(s) against warninglists", len(values)), method: http.MethodPost,
		route: "/warninglists/checkValue", path: "/warninglists/checkValue", idempotent: true}
	if len(values) == 0 {
		return map[string][]WarninglistHit{}, nil
	}
	req.body = values
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	hits, err := decodeCheckValue(resp.body)
	if err != nil {
		return nil, c.decodeFailure(req, resp, err)
	}
	return hits, nil
}
