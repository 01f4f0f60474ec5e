package misptest

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// visibleLocked is the double's event ACL: site admins see everything; others see their own
// org's events and events shared beyond the org (distribution ≥ 1). Sharing groups and the
// community semantics of distribution 1/2 are not modelled.
func (s *Server) visibleLocked(u *userRec, ev *eventRec) bool {
	if u.role.SiteAdmin || ev.orgID == u.orgID || ev.orgcID == u.orgID {
		return true
	}
	return ev.distribution != "0"
}

// filterParams collects the filters of an index/restSearch call: the JSON body (optionally
// wrapped in "request"), or the named URL parameters. A "search" prefix is dropped
// (searcheventid → eventid), as EventsController::index does.
func (c *call) filterParams() map[string]any {
	out := map[string]any{}
	if m, ok := c.data.(map[string]any); ok {
		if inner, ok := m["request"].(map[string]any); ok {
			m = inner
		}
		for k, v := range m {
			out[strings.TrimPrefix(k, "search")] = v
		}
		return out
	}
	for k, v := range c.named {
		out[strings.TrimPrefix(k, "search")] = v
	}
	return out
}

// terms splits a filter value into positive and negated ("!x") terms; strings use "|" as
// separator, arrays are taken element by element.
func terms(v any) (pos, neg []string) {
	var raw []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			raw = append(raw, phpString(e))
		}
	case nil:
	default:
		raw = strings.Split(phpString(x), "|")
	}
	for _, t := range raw {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "!") {
			neg = append(neg, t[1:])
		} else {
			pos = append(pos, t)
		}
	}
	return pos, neg
}

var relativeTime = regexp.MustCompile(`^([0-9]+)([smhdw])$`)

// timeBound resolves MISP's time filter values: an epoch, or a relative "30m", "1d", "2w".
func (s *Server) timeBound(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	m := relativeTime.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]int64{"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
	return s.now().Unix() - n*unit, true
}

// timeRange reads a timestamp filter: a single lower bound, or [from, to].
func (s *Server) timeRange(v any) (from, to int64, ok bool) {
	to = 1<<62 - 1
	if arr, isArr := v.([]any); isArr {
		if len(arr) == 0 {
			return 0, 0, false
		}
		from, ok = s.timeBound(phpString(arr[0]))
		if len(arr) > 1 {
			if t, ok2 := s.timeBound(phpString(arr[1])); ok2 {
				to = t
			}
		}
		return from, to, ok
	}
	if phpEmpty(v) {
		return 0, 0, false
	}
	from, ok = s.timeBound(phpString(v))
	return from, to, ok
}

// matchEventsLocked applies the index/restSearch filters that the double models: eventid (id
// or uuid), uuid (event or attribute uuid), org (creator: id, uuid or name), tag/tags (id or
// name), published, timestamp, publish_timestamp, eventinfo, datefrom, dateuntil. Results are
// in id order.
func (s *Server) matchEventsLocked(u *userRec, f map[string]any) []*eventRec {
	match := s.compileFilterLocked(f)
	candidates := s.eventOrder
	// The curator's usual call names one event: look it up instead of scanning.
	if v, ok := f["eventid"]; ok && !phpEmpty(v) {
		if pos, neg := terms(v); len(pos) == 1 && len(neg) == 0 {
			candidates = nil
			if ev := s.eventByRef(pos[0]); ev != nil {
				candidates = []int{ev.id}
			}
		}
	}
	var out []*eventRec
	for _, id := range candidates {
		ev := s.events[id]
		if s.visibleLocked(u, ev) && match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// termFilter is a parsed "a|b|!c" filter value.
type termFilter struct{ pos, neg []string }

func newTermFilter(v any) *termFilter {
	if phpEmpty(v) {
		return nil
	}
	pos, neg := terms(v)
	return &termFilter{pos, neg}
}

// ok is true when some positive term matches (or there is none) and no negated one does.
func (tf *termFilter) ok(match func(string) bool) bool {
	if tf == nil {
		return true
	}
	for _, t := range tf.neg {
		if match(t) {
			return false
		}
	}
	if len(tf.pos) == 0 {
		return true
	}
	for _, t := range tf.pos {
		if match(t) {
			return true
		}
	}
	return false
}

func (s *Server) compileFilterLocked(f map[string]any) func(*eventRec) bool {
	eventID := newTermFilter(f["eventid"])
	uuid := newTermFilter(f["uuid"])
	org := newTermFilter(f["org"])
	tag := newTermFilter(f["tag"])
	tags := newTermFilter(f["tags"])
	info := newTermFilter(f["eventinfo"])
	tsFrom, tsTo, tsOK := s.timeRange(f["timestamp"])
	ptsFrom, ptsTo, ptsOK := s.timeRange(f["publish_timestamp"])
	dateFrom, dateUntil := "", ""
	if v := f["datefrom"]; !phpEmpty(v) {
		dateFrom = phpString(v)
	}
	if v := f["dateuntil"]; !phpEmpty(v) {
		dateUntil = phpString(v)
	}
	published := func(*eventRec) bool { return true }
	if v, ok := f["published"]; ok && v != nil {
		if arr, isArr := v.([]any); isArr {
			published = func(ev *eventRec) bool {
				for _, x := range arr {
					if phpEmpty(x) != ev.published {
						return true
					}
				}
				return len(arr) == 0
			}
		} else if str := phpString(v); str == "0" || str == "1" || str == "" {
			want := !phpEmpty(v)
			published = func(ev *eventRec) bool { return ev.published == want }
		}
	}
	hasTag := func(ev *eventRec) func(string) bool {
		return func(t string) bool {
			for _, et := range ev.tags {
				tg := s.tags[et.tagID]
				if t == itoa(tg.id) || likeMatch(tg.name, t) {
					return true
				}
			}
			return false
		}
	}
	return func(ev *eventRec) bool {
		if !eventID.ok(func(t string) bool {
			if isUUID(t) {
				return strings.EqualFold(t, ev.uuid)
			}
			return t == itoa(ev.id)
		}) {
			return false
		}
		if !uuid.ok(func(t string) bool {
			if strings.EqualFold(t, ev.uuid) {
				return true
			}
			for _, a := range ev.attrs {
				if strings.EqualFold(t, a.uuid) {
					return true
				}
			}
			return false
		}) {
			return false
		}
		o := s.orgs[ev.orgcID]
		if !org.ok(func(t string) bool {
			return t == itoa(o.id) || strings.EqualFold(t, o.uuid) || strings.EqualFold(t, o.name)
		}) {
			return false
		}
		if !tag.ok(hasTag(ev)) || !tags.ok(hasTag(ev)) || !published(ev) {
			return false
		}
		if tsOK && (ev.timestamp < tsFrom || ev.timestamp > tsTo) {
			return false
		}
		if ptsOK && (ev.publishTimestamp < ptsFrom || ev.publishTimestamp > ptsTo) {
			return false
		}
		if !info.ok(func(t string) bool { return strings.Contains(strings.ToLower(ev.info), strings.ToLower(t)) }) {
			return false
		}
		if dateFrom != "" && ev.date < dateFrom || dateUntil != "" && ev.date > dateUntil {
			return false
		}
		return true
	}
}

// paginate applies limit and page (1-based).
func paginate[T any](items []T, f map[string]any) []T {
	limit := atoiOr(phpString(f["limit"]), 0)
	if limit <= 0 {
		return items
	}
	page := atoiOr(phpString(f["page"]), 1)
	if page < 1 {
		page = 1
	}
	start := (page - 1) * limit
	if start >= len(items) {
		return items[:0]
	}
	end := start + limit
	if end > len(items) {
		end = len(items)
	}
	return items[start:end]
}

// GET|POST /events/index (api/51, api/52, api/57). X-Result-Count is the number of matches
// before pagination. minimal also drops events without attributes (EventsController.php
// L645-653; observed on 2.5.1, misp-api.md §2.3).
func (s *Server) handleEventsIndex(c *call) {
	f := c.filterParams()
	minimal := !phpEmpty(f["minimal"])
	s.mu.Lock()
	events := s.matchEventsLocked(c.user, f)
	if minimal {
		kept := events[:0:0]
		for _, ev := range events {
			if ev.attributeCount() > 0 {
				kept = append(kept, ev)
			}
		}
		events = kept
	}
	sortEvents(events, phpString(f["sort"]), phpString(f["direction"]))
	total := len(events)
	events = paginate(events, f)
	rows := make([]any, 0, len(events))
	for _, ev := range events {
		if minimal {
			rows = append(rows, s.eventMinimal(ev))
		} else {
			rows = append(rows, s.eventIndexRow(ev))
		}
	}
	s.mu.Unlock()
	if !s.damageRows(events, rows) {
		c.internalError()
		return
	}
	c.w.Header().Set("X-Result-Count", strconv.Itoa(total))
	c.view(http.StatusOK, rows)
}

func sortEvents(events []*eventRec, by, direction string) {
	key := func(e *eventRec) int64 { return int64(e.id) }
	switch strings.TrimPrefix(by, "Event.") {
	case "timestamp":
		key = func(e *eventRec) int64 { return e.timestamp }
	case "publish_timestamp":
		key = func(e *eventRec) int64 { return e.publishTimestamp }
	case "", "id":
	default:
		return
	}
	desc := strings.EqualFold(direction, "desc")
	sort.SliceStable(events, func(i, j int) bool {
		if desc {
			return key(events[i]) > key(events[j])
		}
		return key(events[i]) < key(events[j])
	})
}

// GET|HEAD /events/view/{id|uuid} (api/32, api/49, api/61).
func (s *Server) handleEventsView(c *call) {
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	ev := s.eventByRef(ref)
	if ev == nil || !s.visibleLocked(c.user, ev) {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Invalid event")
		return
	}
	body := obj{{"Event", s.eventFull(ev, fullOpts{
		creatorEmail: c.user.role.SiteAdmin,
		warnings:     c.named["includeWarninglistHits"] != "0",
		noLocalTags:  !phpEmpty(c.named["excludeLocalTags"]),
	})}}
	s.mu.Unlock()
	c.view(http.StatusOK, body)
}

// POST /events/restSearch with returnFormat json (api/53, api/58, api/59): written by
// JsonExport as `{"response": [` + compact events joined by "," + `]}` + "\n".
func (s *Server) handleEventsRestSearch(c *call) {
	f := c.filterParams()
	if rf := phpString(f["returnFormat"]); rf != "" && rf != "json" {
		s.logf("misptest: restSearch returnFormat %q is not modelled", rf)
		c.errorJSON(http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	events := paginate(s.matchEventsLocked(c.user, f), f)
	opts := fullOpts{creatorEmail: c.user.role.SiteAdmin, metadata: !phpEmpty(f["metadata"]),
		noLocalTags: !phpEmpty(f["excludeLocalTags"])}
	var b strings.Builder
	b.WriteString(`{"response": [`)
	for i, ev := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(compactJSON(obj{{"Event", s.eventFull(ev, opts)}}))
	}
	b.WriteString("]}\n")
	s.mu.Unlock()
	filename := "misp.event.list.json"
	if v, ok := f["eventid"]; ok && !phpEmpty(v) {
		if _, isArr := v.([]any); !isArr {
			filename = "misp.event." + phpString(v) + ".json"
		}
	}
	hdr := c.w.Header()
	hdr.Set("X-Result-Count", strconv.Itoa(len(events)))
	hdr.Set("X-Export-Module-Used", "json")
	hdr.Set("X-Response-Format", "json")
	hdr.Set("X-Skipped-Elements-Count", "0")
	hdr.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	c.write(http.StatusOK, []byte(b.String()))
}

// canPublishLocked is ACLComponent::canPublishEvent: site admin, or perm_publish and the
// event's creator org is the user's org (misp-api.md §2.5).
func canPublishLocked(u *userRec, ev *eventRec) bool {
	return u.role.SiteAdmin || (u.role.Publish && ev.orgcID == u.orgID)
}

// canModifyLocked is EventsController::__canModifyEvent for the roles the double has.
func canModifyLocked(u *userRec, ev *eventRec) bool {
	return u.role.SiteAdmin || ev.orgcID == u.orgID
}

// POST /events/publish/{id|uuid} (api/51, background_jobs/api/04, sync/api/63, 76, 77).
func (s *Server) handlePublish(c *call) {
	s.publishAction(c, "publish", "Event published without alerts", "Job queued")
}

// POST /events/alert/{id|uuid}: publish plus e-mails (api/55, background_jobs/api/06). The
// double only counts it: the curator must never call it.
func (s *Server) handleAlert(c *call) {
	s.publishAction(c, "alert", "Email sent to all participants.", "Job queued.")
}

func (s *Server) publishAction(c *call, action, syncMsg, queuedMsg string) {
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	ev := s.eventByRef(ref)
	if ev == nil || !s.visibleLocked(c.user, ev) {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Invalid event.")
		return
	}
	if !canPublishLocked(c.user, ev) {
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "You do not have the permission to do that.")
		return
	}
	if c.r.Method != http.MethodPost && c.r.Method != http.MethodPut {
		// MISP renders an HTML confirmation form here; not modelled beyond refusing.
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	id := itoa(ev.id)
	if s.opts.BackgroundJobs && c.named["disable_background_processing"] != "1" {
		s.queuePublishLocked(ev, action)
		s.mu.Unlock()
		c.saveSuccess("events", action, id, queuedMsg)
		return
	}
	m := s.publishLocked(ev)
	s.unlockAndPublish([]Message{m})
	c.saveSuccess("events", action, id, syncMsg)
}

// publishLocked is Event::publish(): misp_json carries the event as loaded before the publish
// is saved; then published=1 and publish_timestamp=now, timestamp unchanged, no
// misp_json_event (skip_zmq).
func (s *Server) publishLocked(ev *eventRec) Message {
	m := s.msgPublish(ev)
	ev.published = true
	ev.publishTimestamp = s.now().Unix()
	return m
}

// POST /events/unpublish/{id|uuid} (api/54): misp_json_event "edit" with published false,
// timestamp unchanged.
func (s *Server) handleUnpublish(c *call) {
	ref := ""
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	ev := s.eventByRef(ref)
	if ev == nil || !s.visibleLocked(c.user, ev) {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Invalid event")
		return
	}
	if !canModifyLocked(c.user, ev) {
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "You do not have the permission to do that.")
		return
	}
	if c.r.Method != http.MethodPost && c.r.Method != http.MethodPut {
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	ev.published = false
	m := s.msgEvent(ev, "edit")
	s.unlockAndPublish([]Message{m})
	c.saveSuccess("events", "unpublish", ref, "Event unpublished.")
}
