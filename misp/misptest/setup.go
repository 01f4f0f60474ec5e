package misptest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AddOrg registers an organisation (local false, like a partner's org) and returns it. An org
// with the same UUID is returned as it is; an empty uuid gets a generated one.
func (s *Server) AddOrg(name, uuid string) Org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ensureOrgLocked(Org{Name: name, UUID: uuid}, 1).public()
}

// HostOrg is the host organisation (MISP.host_org_id).
func (s *Server) HostOrg() Org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orgs[s.hostOrgID].public()
}

// ensureOrgLocked finds o by UUID (then by id) or creates it; createdBy is the creating user.
func (s *Server) ensureOrgLocked(o Org, createdBy int) *orgRec {
	if o.UUID != "" {
		if rec := s.orgByUUID(o.UUID); rec != nil {
			return rec
		}
	} else if o.ID != "" {
		if rec := s.orgs[atoiOr(o.ID, -1)]; rec != nil {
			return rec
		}
	}
	uuid := strings.ToLower(o.UUID)
	if uuid == "" {
		uuid = s.newUUID()
	}
	name := o.Name
	if name == "" {
		name = "ORG-" + strings.ToUpper(uuid[:8])
	}
	rec := &orgRec{id: s.nextOrgID, uuid: uuid, name: name, local: o.Local, createdBy: createdBy, dateCreated: s.dateTime()}
	s.orgs[rec.id] = rec
	s.nextOrgID++
	return rec
}

// AddUser creates a user of org with role and returns its API key. Roles equal to one of
// MISP's default roles (admin, Org Admin, User, Publisher, Read Only) use it; any other
// combination becomes a custom role.
func (s *Server) AddUser(org Org, role Role) (apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ensureOrgLocked(org, 1)
	u := &userRec{id: s.nextUserID, orgID: o.id, role: s.roleForLocked(role), key: s.newKey(), created: s.now().Unix()}
	u.email = fmt.Sprintf("user%d@%s.test", u.id, emailDomain(o.name))
	s.users[u.id] = u
	s.nextUserID++
	return u.key
}

// AddUserKey is AddUser with a chosen API key (hack/mispsim's seed file): 40 letters or digits,
// not used by another user.
func (s *Server) AddUserKey(org Org, role Role, key string) error {
	if !validKey(key) {
		return errors.New("add user: the API key must be 40 letters or digits")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.key == key {
			return errors.New("add user: the API key is already in use")
		}
	}
	o := s.ensureOrgLocked(org, 1)
	u := &userRec{id: s.nextUserID, orgID: o.id, role: s.roleForLocked(role), key: key, created: s.now().Unix()}
	u.email = fmt.Sprintf("user%d@%s.test", u.id, emailDomain(o.name))
	s.users[u.id] = u
	s.nextUserID++
	return nil
}

func (s *Server) roleForLocked(r Role) *roleRec {
	for _, rr := range s.roles {
		if rr.Role == r && rr.name != "Sync user" {
			return rr
		}
	}
	rr := &roleRec{id: s.roles[len(s.roles)-1].id + 1, Role: r}
	rr.name = "Custom role " + strconv.Itoa(rr.id)
	s.roles = append(s.roles, rr)
	return rr
}

// syncUserLocked is the user a partner org pushes with (role "Sync user", in that org).
func (s *Server) syncUserLocked(org *orgRec) *userRec {
	if u := s.syncUsers[org.id]; u != nil {
		return u
	}
	var role *roleRec
	for _, rr := range s.roles {
		if rr.name == "Sync user" {
			role = rr
		}
	}
	u := &userRec{id: s.nextUserID, orgID: org.id, role: role, key: s.newKey(), created: s.now().Unix()}
	u.email = "sync@" + emailDomain(org.name) + ".test"
	s.users[u.id] = u
	s.syncUsers[org.id] = u
	s.nextUserID++
	return u
}

func emailDomain(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteRune('-')
		}
	}
	if b.Len() == 0 {
		return "org"
	}
	return b.String()
}

// AddEvent stores e directly (no ZeroMQ message), with Attributes generated attributes.
func (s *Server) AddEvent(e Event) Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := s.orgs[s.hostOrgID]
	if e.Org.UUID != "" || e.Org.ID != "" {
		owner = s.ensureOrgLocked(e.Org, 1)
	}
	orgc := owner
	if e.Orgc.UUID != "" || e.Orgc.ID != "" {
		orgc = s.ensureOrgLocked(e.Orgc, 1)
	}
	ev := s.newEventLocked(e, owner, orgc, s.users[1])
	ev.published, ev.locked = e.Published, e.Locked
	if !e.PublishTimestamp.IsZero() {
		ev.publishTimestamp = e.PublishTimestamp.Unix()
	} else if e.Published {
		ev.publishTimestamp = ev.timestamp
	}
	s.generateAttrsLocked(ev, e.Attributes, ev.timestamp)
	ev.remotePublished = e.Published
	for _, t := range e.Tags {
		tag := s.tagForNameLocked(t.Name)
		s.attachLocked(ev, tag, t.Local)
		if !t.Local {
			ev.remoteTags = append(ev.remoteTags, tag.name)
		}
	}
	return s.publicEventLocked(ev)
}

// AddTag creates a tag (exportable; a random colour when colour is empty) and returns its id;
// an existing tag of that name keeps its id. Tag ids 1–54 are the admiralty-scale, workflow and
// tlp tags of the captures.
func (s *Server) AddTag(name, colour string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tagByExactName(name); t != nil {
		return itoa(t.id)
	}
	if colour == "" {
		colour = s.randomColour()
	}
	return itoa(s.addTagLocked(name, colour, "").id)
}

// newEventLocked allocates an event row from e; callers fill in flags, attributes and tags.
func (s *Server) newEventLocked(e Event, owner, orgc *orgRec, creator *userRec) *eventRec {
	ts := e.Timestamp
	if ts.IsZero() {
		ts = s.now()
	}
	id := atoiOr(e.ID, 0)
	if id <= 0 || s.events[id] != nil {
		id = s.nextEventID
	}
	if id >= s.nextEventID {
		s.nextEventID = id + 1
	}
	uuid := strings.ToLower(e.UUID)
	if uuid == "" {
		uuid = s.newUUID()
	}
	date := e.Date
	if date == "" {
		date = ts.UTC().Format("2006-01-02")
	}
	dist := e.Distribution
	if dist == "" {
		dist = "3"
	}
	info := e.Info
	if info == "" {
		info = "Event " + strconv.Itoa(id)
	}
	ev := &eventRec{
		id: id, uuid: uuid, info: info, date: date, threatLevel: "2", analysis: "1", distribution: dist,
		orgID: owner.id, orgcID: orgc.id, userID: creator.id, creatorEmail: creator.email,
		timestamp: ts.Unix(), remoteTimestamp: ts.Unix(),
	}
	s.events[id] = ev
	s.eventsByUUID[uuid] = ev
	i, _ := slices.BinarySearch(s.eventOrder, id)
	s.eventOrder = slices.Insert(s.eventOrder, i, id)
	return ev
}

// tagForNameLocked finds a tag by exact name or creates it (exportable, random colour), as
// Tag::quickAdd does for synchronised and attached tags.
func (s *Server) tagForNameLocked(name string) *tagRec {
	if t := s.tagByExactName(name); t != nil {
		return t
	}
	return s.addTagLocked(name, s.randomColour(), "")
}

func (s *Server) attachLocked(ev *eventRec, t *tagRec, local bool) *eventTagRec {
	if et := ev.hasTag(t.id); et != nil {
		return et
	}
	et := &eventTagRec{id: s.nextEventTagID, tagID: t.id, local: local}
	s.nextEventTagID++
	ev.tags = append(ev.tags, et)
	return et
}

// generateAttrsLocked appends n deterministic, realistic attributes (domain, ip-dst, url,
// sha256, ip-src) so that views and misp_json messages have real sizes.
func (s *Server) generateAttrsLocked(ev *eventRec, n int, ts int64) []*attributeRec {
	var out []*attributeRec
	start := len(ev.attrs)
	for i := start; i < start+n; i++ {
		a := &attributeRec{id: s.nextAttrID, uuid: s.newUUID(), toIDS: true, timestamp: ts, category: "Network activity"}
		s.nextAttrID++
		host := fmt.Sprintf("c2-%s-%d.example.net", ev.uuid[:8], i+1)
		switch i % 5 {
		case 0:
			a.typ, a.value = "domain", host
		case 1:
			a.typ, a.value = "ip-dst", fmt.Sprintf("203.0.113.%d", (ev.id*7+i)%254+1)
		case 2:
			a.typ, a.value = "url", "https://"+host+"/login/"+strconv.Itoa(i+1)
		case 3:
			sum := sha256.Sum256([]byte(ev.uuid + strconv.Itoa(i)))
			a.typ, a.category, a.value = "sha256", "Payload delivery", fmt.Sprintf("%x", sum)
		case 4:
			a.typ, a.value = "ip-src", fmt.Sprintf("198.51.100.%d", (ev.id*11+i)%254+1)
		}
		ev.attrs = append(ev.attrs, a)
		out = append(out, a)
	}
	return out
}

// Event is the current state of the event with this UUID (tags in attachment order).
func (s *Server) Event(uuid string) (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.eventByUUID(uuid)
	if ev == nil {
		return Event{}, false
	}
	return s.publicEventLocked(ev), true
}

// Events is the current state of every event, by id.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.events))
	for id := range s.events {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]Event, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.publicEventLocked(s.events[id]))
	}
	return out
}

func (s *Server) publicEventLocked(ev *eventRec) Event {
	out := Event{
		ID: itoa(ev.id), UUID: ev.uuid, Info: ev.info,
		Orgc: s.orgs[ev.orgcID].public(), Org: s.orgs[ev.orgID].public(),
		Published: ev.published, Locked: ev.locked, Timestamp: time.Unix(ev.timestamp, 0),
		Date: ev.date, Distribution: ev.distribution, Attributes: ev.attributeCount(),
	}
	if ev.publishTimestamp != 0 {
		out.PublishTimestamp = time.Unix(ev.publishTimestamp, 0)
	}
	for _, et := range ev.tags {
		out.Tags = append(out.Tags, EventTag{Name: s.tags[et.tagID].name, Local: et.local})
	}
	return out
}
