package misptest

import (
	"net/http"
	"sort"
	"strings"
)

// GET|POST /warninglists/index (api/20, 22, 23): filters value (name or description
// substring, or type) and enabled, from named parameters or the JSON body; id descending.
func (s *Server) handleWarninglistsIndex(c *call) {
	f := map[string]any{}
	for k, v := range c.named {
		f[k] = v
	}
	if m, ok := c.data.(map[string]any); ok {
		for k, v := range m {
			f[k] = v
		}
	}
	s.mu.Lock()
	ids := make([]int, 0, len(s.wls))
	for id := range s.wls {
		ids = append(ids, id)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ids)))
	list := []any{}
	for _, id := range ids {
		w := s.wls[id]
		if v, ok := f["value"]; ok && !phpEmpty(v) {
			val := phpString(v)
			pat := "%" + val + "%"
			if !likeMatch(w.name, pat) && !likeMatch(w.description, pat) && !strings.EqualFold(w.typ, val) {
				continue
			}
		}
		if v, ok := f["enabled"]; ok {
			// 'Warninglist.enabled' => value: MySQL compares the tinyint with the value cast to
			// a number, so "true" selects the disabled lists.
			want := atoiOr(phpString(v), 0) != 0
			if b, isBool := v.(bool); isBool {
				want = b
			}
			if w.enabled != want {
				continue
			}
		}
		row := warninglistRow(w)
		row = append(row, field{"warninglist_entry_count", itoa(len(w.entries))},
			field{"valid_attributes", strings.Join(w.typeNames(), ", ")})
		list = append(list, obj{{"Warninglist", row}})
	}
	s.mu.Unlock()
	c.view(http.StatusOK, obj{{"Warninglists", list}})
}

// GET /warninglists/view/{id} (api/26, warninglists_extra/api/25).
func (s *Server) handleWarninglistsView(c *call) {
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	if !isNumeric(ref) {
		c.errorJSON(http.StatusNotFound, "Invalid ID.")
		return
	}
	s.mu.Lock()
	w := s.wls[atoiOr(ref, -1)]
	if w == nil {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Warninglist not found.")
		return
	}
	row := append(warninglistRow(w), field{"WarninglistEntry", wlEntryRows(w)}, field{"WarninglistType", wlTypeRows(w)})
	s.mu.Unlock()
	c.view(http.StatusOK, obj{{"Warninglist", row}})
}

func wlEntryRows(w *wlRec) []any {
	out := []any{}
	for _, e := range w.entries {
		var comment any
		if e.comment != nil {
			comment = *e.comment
		}
		out = append(out, obj{{"id", itoa(e.id)}, {"value", e.value}, {"warninglist_id", itoa(w.id)}, {"comment", comment}})
	}
	return out
}

func wlTypeRows(w *wlRec) []any {
	out := []any{}
	for _, t := range w.types {
		out = append(out, obj{{"id", itoa(t.id)}, {"type", t.typ}, {"warninglist_id", itoa(w.id)}})
	}
	return out
}

// warninglistInput unwraps {"Warninglist": {...}} (optional since 2.4.198).
func (c *call) warninglistInput() map[string]any {
	m, _ := c.data.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	if inner, ok := m["Warninglist"].(map[string]any); ok {
		return inner
	}
	return m
}

// POST /warninglists/add (api/24, 25; warninglists_extra/api/01–10). Validation failures are
// HTTP 403 save-fail bodies; a missing name or description fails in the database (500).
func (s *Server) handleWarninglistsAdd(c *call) {
	if c.r.Method != http.MethodPost {
		// MISP renders the HTML add form here.
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	in := c.warninglistInput()
	typ := "string"
	if v, ok := in["type"]; ok {
		typ = phpString(v)
	}
	// The controller sets entries to '' when absent, so the emptiness rule always runs on add.
	entries := parseEntries(in["entries"])
	s.mu.Lock()
	if errs := s.validateWarninglist(in, typ, entries, true, 0); len(errs) > 0 {
		s.mu.Unlock()
		c.saveFail("warninglists", "add", "", "warninglist", errs)
		return
	}
	if _, ok := in["name"]; !ok {
		s.mu.Unlock()
		c.internalError()
		return
	}
	if _, ok := in["description"]; !ok {
		// description is TEXT NOT NULL without default: the INSERT fails (misp-api.md §2.6).
		s.mu.Unlock()
		c.internalError()
		return
	}
	w := &wlRec{id: s.nextWLID, name: phpString(in["name"]), typ: typ, description: phpString(in["description"]),
		category: "false_positive", version: 1, enabled: !phpEmpty(in["enabled"])}
	s.nextWLID++
	if v, ok := in["category"]; ok {
		w.category = phpString(v)
	}
	if v, ok := in["version"]; ok {
		w.version = atoiOr(phpString(v), 1)
	}
	w.entries = s.newWLEntriesLocked(entries)
	types, ok := matchingAttributes(in["matching_attributes"])
	if !ok || len(types) == 0 {
		types = []string{"ALL"} // default since 2.4.178
	}
	w.types = s.newWLTypesLocked(types)
	s.wls[w.id] = w
	s.regenWarninglistCacheLocked()
	body := obj{{"Warninglist", warninglistRow(w)}}
	s.unlockAndPublish([]Message{s.msgWarninglist(w, "add")})
	c.view(http.StatusOK, body)
}

// POST|PUT /warninglists/edit/{id} (api/28): custom lists only; only name, description, type,
// category, entries and matching_attributes are taken; version goes up by one. The answer is
// the data array given to Model::save().
func (s *Server) handleWarninglistsEdit(c *call) {
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	w := s.wls[atoiOr(ref, -1)]
	if w == nil || w.isDefault || !isNumeric(ref) {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Invalid Warninglist.")
		return
	}
	if c.r.Method != http.MethodPost && c.r.Method != http.MethodPut {
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	raw := c.warninglistInput()
	in := map[string]any{}
	for _, k := range []string{"name", "description", "type", "category", "entries", "matching_attributes"} {
		if v, ok := raw[k]; ok {
			in[k] = v
		}
	}
	typ := w.typ
	if v, ok := in["type"]; ok {
		typ = phpString(v)
	}
	_, entriesGiven := in["entries"]
	entries := parseEntries(in["entries"])
	if errs := s.validateWarninglist(in, typ, entries, entriesGiven, w.id); len(errs) > 0 {
		s.mu.Unlock()
		c.saveFail("warninglists", "edit", ref, "warninglist", errs)
		return
	}
	if v, ok := in["name"]; ok {
		w.name = phpString(v)
	}
	if v, ok := in["description"]; ok {
		w.description = phpString(v)
	}
	w.typ = typ
	if v, ok := in["category"]; ok {
		w.category = phpString(v)
	}
	w.version++
	row := obj{
		{"id", itoa(w.id)}, {"name", w.name}, {"type", w.typ}, {"description", w.description},
		{"version", w.version}, {"enabled", w.enabled}, {"default", w.isDefault}, {"category", w.category},
	}
	entryRows := wlEntryRows(w)
	if entriesGiven {
		w.entries = s.newWLEntriesLocked(entries)
		entryRows = []any{}
		for _, e := range entries {
			var comment any
			if e.comment != nil {
				comment = *e.comment
			}
			entryRows = append(entryRows, obj{{"value", e.value}, {"comment", comment}})
		}
	}
	typeRows := wlTypeRows(w)
	if types, ok := matchingAttributes(in["matching_attributes"]); ok {
		list := make([]any, len(types))
		typeRows = []any{}
		for i, t := range types {
			list[i] = t
			typeRows = append(typeRows, obj{{"type", t}})
		}
		row = append(row, field{"matching_attributes", list})
		w.types = s.newWLTypesLocked(types)
	}
	s.regenWarninglistCacheLocked()
	body := obj{{"Warninglist", row}, {"WarninglistEntry", entryRows}, {"WarninglistType", typeRows}}
	s.unlockAndPublish([]Message{s.msgWarninglist(w, "edit")})
	c.view(http.StatusOK, body)
}

// POST /warninglists/toggleEnable (api/21, 27): always HTTP 200, success or not; the body is a
// plain json_encode (compact).
func (s *Server) handleWarninglistsToggle(c *call) {
	answer := func(b obj) { c.write(http.StatusOK, phpDefaultJSON(b)) }
	if c.r.Method != http.MethodPost {
		answer(obj{{"saved", false}, {"errors", "This function only accepts POST requests."}})
		return
	}
	m, _ := c.data.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	s.mu.Lock()
	var ids []int
	idGiven := false
	if wl, ok := m["Warninglist"].(map[string]any); ok {
		if d, ok := wl["data"]; ok {
			ids, idGiven = idList(d), !phpEmpty(d)
		}
	} else if !phpEmpty(m["id"]) {
		ids, idGiven = idList(m["id"]), true
	} else if !phpEmpty(m["name"]) {
		names, isArr := m["name"].([]any)
		if !isArr {
			names = []any{m["name"]}
		}
		for _, id := range sortedWLIDs(s.wls) {
			for _, n := range names {
				if likeMatch(s.wls[id].name, phpString(n)) {
					ids = append(ids, id)
					break
				}
			}
		}
		idGiven = len(ids) > 0
	}
	if !idGiven {
		s.mu.Unlock()
		answer(obj{{"saved", false}, {"errors", "Warninglist not found."}})
		return
	}
	var found []*wlRec
	for _, id := range sortedWLIDs(s.wls) {
		for _, want := range ids {
			if id == want {
				found = append(found, s.wls[id])
				break
			}
		}
	}
	if len(found) == 0 {
		s.mu.Unlock()
		answer(obj{{"saved", false}, {"errors", "Warninglist(s) not found."}})
		return
	}
	enabledV, explicit := m["enabled"]
	message := ""
	var msgs []Message
	for _, w := range found {
		if explicit {
			w.enabled = !phpEmpty(enabledV)
			message = "disabled"
			if w.enabled {
				message = "enabled"
			}
		} else {
			w.enabled = !w.enabled
			message = "disabled"
			if w.enabled {
				message = "enabled"
			}
			if len(found) > 1 {
				message = "toggled"
			}
		}
		msgs = append(msgs, s.msgWarninglist(w, "edit"))
	}
	s.regenWarninglistCacheLocked()
	s.unlockAndPublish(msgs)
	answer(obj{{"saved", true}, {"success", itoa(len(found)) + " warninglist(s) " + message}})
}

func idList(v any) []int {
	var out []int
	arr, isArr := v.([]any)
	if !isArr {
		arr = []any{v}
	}
	for _, x := range arr {
		if id, ok := wlIDString(x); ok {
			out = append(out, id)
		}
	}
	return out
}

func sortedWLIDs(m map[int]*wlRec) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// POST /warninglists/delete/{id} (api/68, warninglists_extra/api/23): deletes without
// rebuilding the cache and answers 302 to /warninglists whatever happened.
func (s *Server) handleWarninglistsDelete(c *call) {
	if c.r.Method != http.MethodPost {
		c.errorJSON(http.StatusMethodNotAllowed, "This function can only be reached via AJAX.")
		return
	}
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	delete(s.wls, atoiOr(ref, -1))
	s.mu.Unlock()
	c.w.Header().Set("Location", s.url+"/warninglists")
	c.write(http.StatusFound, nil)
}

// /warninglists/checkValue (api/29, 30; warninglists_extra/api/13–15, 22, 24): checks against
// the enabled lists of the cache; `[]` when nothing matches, otherwise an object keyed by value.
func (s *Server) handleWarninglistsCheckValue(c *call) {
	if c.r.Method != http.MethodPost {
		c.view(http.StatusOK, obj{
			{"name", "/warninglists/checkValue API description"},
			{"description", "POST a JSON list with value(s) to check against the warninglists to get a JSON dictionary as a response with any hits, if there are any (with the key being the passed value triggering a warning)."},
			{"mandatory_fields", []any{"[]"}},
			{"url", "/warninglists/checkValue"},
		})
		return
	}
	if phpEmpty(c.data) {
		c.errorJSON(http.StatusNotFound, "No valid data received.")
		return
	}
	data := c.data
	if m, ok := data.(map[string]any); ok {
		if inner, ok := m["Warninglist"]; ok {
			data = inner
		} else if inner, ok := m["[]"]; ok {
			data = inner
		}
	}
	var values []string
	switch x := data.(type) {
	case []any:
		for _, v := range x {
			values = append(values, phpString(v))
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			values = append(values, phpString(x[k]))
		}
	default:
		values = []string{phpString(x)}
	}
	type hitList struct {
		key  string
		hits []any
	}
	var order []*hitList
	byKey := map[string]*hitList{}
	s.mu.Lock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		for i := range s.wlCache {
			cw := &s.wlCache[i]
			m, ok := cw.match(v)
			if !ok {
				continue
			}
			hl := byKey[v]
			if hl == nil {
				hl = &hitList{key: v}
				byKey[v] = hl
				order = append(order, hl)
			}
			hl.hits = append(hl.hits, obj{{"id", itoa(cw.id)}, {"name", cw.name}, {"matched", m}})
		}
	}
	s.mu.Unlock()
	if len(order) == 0 {
		c.view(http.StatusOK, []any{})
		return
	}
	// PHP turns keys like "0", "1" into integer keys, and an array with keys 0..n-1 in order
	// is encoded as a JSON list.
	isList := true
	for i, hl := range order {
		if !canonicalIntKey(hl.key) || hl.key != itoa(i) {
			isList = false
			break
		}
	}
	if isList {
		out := make([]any, len(order))
		for i, hl := range order {
			out[i] = hl.hits
		}
		c.view(http.StatusOK, out)
		return
	}
	out := obj{}
	for _, hl := range order {
		out = append(out, field{hl.key, hl.hits})
	}
	c.view(http.StatusOK, out)
}
