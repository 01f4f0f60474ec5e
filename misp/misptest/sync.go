package misptest

import (
	"time"
)

// Synchronisation: these functions change the state the way a pull or a push of a partner's
// event does on the receiving MISP and publish the exact ZeroMQ sequences captured in
// misp/real/sync/ (README "Observed sequences"):
//
//	pull, new event:  [misp_json_organisation] → misp_json_event add (row only, locked, no tags,
//	                  attribute_count "0") → misp_json_tag "attached to event" per global tag →
//	                  misp_json_attribute add per attribute → misp_json (if published) →
//	                  misp_json_event {"Event":"<uuid>","Server":"1","action":"add_from_connected_server"}
//	pull, edit:       misp_json_event edit (EventTag = tags before the edit, local ones included)
//	                  → misp_json_attribute add / soft-delete → misp_json_tag for global tags new
//	                  to this copy → misp_json (if published) → edit_from_connected_server
//	push:             the same without *_from_connected_server; the owner org is the pushing
//	                  sync user's org.
//
// Local tags of the partner never travel; local tags of this instance survive; global tags this
// instance removed come back with the partner's next edit (remove_missing_tags off).

// PullOptions describe how a pull was triggered.
type PullOptions struct {
	// ServerID is the local servers.id of the partner link ("Server" in the message); default "1".
	ServerID string
	// RemoteID > 0 is a pull by the partner's numeric event id (/servers/pull/1/<id>): "Event" in
	// *_from_connected_server is then this JSON integer, useless for a local lookup (sync/zmq/45).
	RemoteID int
}

// SimulatePull stores the partner's event e as a pull by uuid or "full" does and publishes the
// pull sequence. An event whose UUID already exists is treated as a pulled edit with e as the
// partner's new version. Zero e.Timestamp means "now"; local tags in e.Tags are dropped.
func (s *Server) SimulatePull(e Event) Event { return s.SimulatePullWith(e, PullOptions{}) }

// SimulatePullByID is SimulatePull triggered by the partner's numeric event id.
func (s *Server) SimulatePullByID(e Event, remoteID int) Event {
	return s.SimulatePullWith(e, PullOptions{RemoteID: remoteID})
}

// SimulatePullWith is SimulatePull with explicit options.
func (s *Server) SimulatePullWith(e Event, opts PullOptions) Event {
	s.mu.Lock()
	if ev := s.eventByUUID(e.UUID); e.UUID != "" && ev != nil {
		return s.syncEditLocked(ev, e, false, syncPull, opts)
	}
	return s.syncAddLocked(e, syncPull, opts)
}

// SimulatePullEdit pulls a new version of an event this instance already has. mutate gets the
// PARTNER's copy (its global tags, its timestamp, its published flag, the attribute count) and
// changes it; a higher Attributes adds attributes, a lower one soft-deletes the last ones.
// Leaving Timestamp unchanged means the partner edited it after every local change; a
// Timestamp not newer than this instance's copy makes the pull skip the event, as MISP does
// (no message, state unchanged).
func (s *Server) SimulatePullEdit(uuid string, mutate func(*Event)) Event {
	return s.SimulatePullEditWith(uuid, PullOptions{}, mutate)
}

// SimulatePullEditByID is SimulatePullEdit triggered by the partner's numeric event id.
func (s *Server) SimulatePullEditByID(uuid string, remoteID int, mutate func(*Event)) Event {
	return s.SimulatePullEditWith(uuid, PullOptions{RemoteID: remoteID}, mutate)
}

// SimulatePullEditWith is SimulatePullEdit with explicit options.
func (s *Server) SimulatePullEditWith(uuid string, opts PullOptions, mutate func(*Event)) Event {
	return s.editRemote(uuid, syncPull, opts, mutate)
}

// SimulatePush stores e as a partner's push does (POST /events/add or /events/edit by its sync
// user) and publishes the push sequence; an existing UUID is a pushed edit with e as the new
// version.
func (s *Server) SimulatePush(e Event) Event {
	s.mu.Lock()
	if ev := s.eventByUUID(e.UUID); e.UUID != "" && ev != nil {
		return s.syncEditLocked(ev, e, false, syncPush, PullOptions{})
	}
	return s.syncAddLocked(e, syncPush, PullOptions{})
}

// SimulatePushEdit pushes a new version of an existing event; mutate works as for
// SimulatePullEdit.
func (s *Server) SimulatePushEdit(uuid string, mutate func(*Event)) Event {
	return s.editRemote(uuid, syncPush, PullOptions{}, mutate)
}

type syncKind int

const (
	syncPull syncKind = iota
	syncPush
)

func (s *Server) editRemote(uuid string, kind syncKind, opts PullOptions, mutate func(*Event)) Event {
	s.mu.Lock()
	ev := s.eventByUUID(uuid)
	if ev == nil {
		s.mu.Unlock()
		s.logf("misptest: sync edit of unknown event %s ignored", uuid)
		return Event{}
	}
	remote := s.publicEventLocked(ev)
	remote.Published = ev.remotePublished
	remote.Timestamp = time.Unix(ev.remoteTimestamp, 0)
	remote.Tags = nil
	for _, name := range ev.remoteTags {
		remote.Tags = append(remote.Tags, EventTag{Name: name})
	}
	before := remote.Timestamp
	if mutate != nil {
		mutate(&remote)
	}
	return s.syncEditLocked(ev, remote, remote.Timestamp.Equal(before), kind, opts)
}

func (opts PullOptions) serverID() string {
	if opts.ServerID == "" {
		return "1"
	}
	return opts.ServerID
}

func (opts PullOptions) ref(uuid string) any {
	if opts.RemoteID > 0 {
		return opts.RemoteID
	}
	return uuid
}

// syncAddLocked is Event::_add for a pulled or pushed event. It releases s.mu.
func (s *Server) syncAddLocked(e Event, kind syncKind, opts PullOptions) Event {
	var msgs []Message
	orgc := s.orgByUUID(e.Orgc.UUID)
	if orgc == nil && e.Orgc.UUID == "" && e.Orgc.ID != "" {
		orgc = s.orgs[atoiOr(e.Orgc.ID, -1)]
	}
	if orgc == nil {
		// Organisation::captureOrg creates the unknown creator org (local false) and MISP
		// announces it first (sync/zmq/34).
		o := e.Orgc
		o.Local = false
		orgc = s.ensureOrgLocked(o, 1)
		msgs = append(msgs, s.msgOrganisation(orgc))
	}
	var owner *orgRec
	switch {
	case e.Org.UUID != "" || e.Org.ID != "":
		owner = s.ensureOrgLocked(e.Org, 1)
	case kind == syncPull:
		owner = s.orgs[s.hostOrgID] // the server link's org
	default:
		owner = orgc // the pushing sync user's org
	}
	creator := s.users[1] // the admin who runs the pull
	if kind == syncPush {
		creator = s.syncUserLocked(owner)
	}
	ev := s.newEventLocked(e, owner, orgc, creator)
	ev.published, ev.locked = e.Published, true
	ev.remotePublished = e.Published
	msgs = append(msgs, s.msgEvent(ev, "add"))
	for _, t := range e.Tags {
		if t.Local {
			continue // pulls ask for excludeLocalTags; pushes strip them too
		}
		tag, created := s.syncTagLocked(t.Name)
		if created {
			msgs = append(msgs, s.msgTagAdd(tag))
		}
		if ev.hasTag(tag.id) == nil {
			s.attachLocked(ev, tag, false)
			msgs = append(msgs, s.msgTagAttached(tag, ev, false))
		}
		ev.remoteTags = append(ev.remoteTags, tag.name)
	}
	for _, a := range s.generateAttrsLocked(ev, e.Attributes, ev.timestamp) {
		msgs = append(msgs, s.msgAttribute(ev, a, "add"))
	}
	if ev.published {
		msgs = append(msgs, s.publishLocked(ev))
	}
	if kind == syncPull {
		msgs = append(msgs, s.msgFromServer(opts.ref(ev.uuid), opts.serverID(), "add_from_connected_server"))
	}
	out := s.publicEventLocked(ev)
	s.unlockAndPublish(msgs)
	return out
}

// syncTagLocked finds or creates a tag for a synchronised event (Event::captureTag).
func (s *Server) syncTagLocked(name string) (*tagRec, bool) {
	if t := s.tagByExactName(name); t != nil {
		return t, false
	}
	return s.addTagLocked(name, s.randomColour(), ""), true
}

// syncEditLocked is Event::_edit with remote as the partner's new version. It releases s.mu.
func (s *Server) syncEditLocked(ev *eventRec, remote Event, defaultTimestamp bool, kind syncKind, opts PullOptions) Event {
	ts := remote.Timestamp.Unix()
	if defaultTimestamp || remote.Timestamp.IsZero() {
		ts = max(s.now().Unix(), ev.timestamp+1, ev.remoteTimestamp+1)
	}
	if ts <= ev.timestamp {
		// Server::removeOlderEvents / "Event in the request not newer than the local copy.":
		// the partner's version is skipped silently (misp-api.md §1.10).
		out := s.publicEventLocked(ev)
		s.mu.Unlock()
		s.logf("misptest: %s of event %s skipped: partner timestamp %d not newer than local %d", kind, ev.uuid, ts, ev.timestamp)
		return out
	}
	var msgs []Message
	ev.timestamp, ev.remoteTimestamp = ts, ts
	if remote.Info != "" {
		ev.info = remote.Info
	}
	ev.published = remote.Published
	ev.remotePublished = remote.Published
	ev.locked = true
	// The row is saved first: new timestamp and flags, old attribute count and tags (sync/zmq/37).
	msgs = append(msgs, s.msgEvent(ev, "edit"))
	var alive []*attributeRec
	for _, a := range ev.attrs {
		if !a.deleted {
			alive = append(alive, a)
		}
	}
	del := min(max(remote.SoftDeletedAttributes, 0), len(alive))
	if keep := len(alive) - del; remote.Attributes < keep {
		del = len(alive) - max(remote.Attributes, 0)
	}
	edit := min(max(remote.EditedAttributes, 0), len(alive)-del)
	// Existing attributes come first in the partner's event, in their order; new ones last.
	for i, a := range alive {
		switch {
		case i >= len(alive)-del:
			a.deleted, a.timestamp = true, ts
			msgs = append(msgs, s.msgAttribute(ev, a, "soft-delete"))
		case i < edit:
			a.timestamp = ts
			a.comment = "edited on the partner"
			msgs = append(msgs, s.msgAttribute(ev, a, "edit"))
		}
	}
	if n := remote.Attributes - (len(alive) - del); n > 0 {
		for _, a := range s.generateAttrsLocked(ev, n, ts) {
			msgs = append(msgs, s.msgAttribute(ev, a, "add"))
		}
	}
	var remoteTags []string
	for _, t := range remote.Tags {
		if t.Local {
			continue
		}
		tag, created := s.syncTagLocked(t.Name)
		if created {
			msgs = append(msgs, s.msgTagAdd(tag))
		}
		if ev.hasTag(tag.id) == nil {
			s.attachLocked(ev, tag, false).relNull = true
			msgs = append(msgs, s.msgTagAttached(tag, ev, false))
		}
		remoteTags = append(remoteTags, tag.name)
	}
	ev.remoteTags = remoteTags
	if ev.published {
		msgs = append(msgs, s.publishLocked(ev))
	}
	if kind == syncPull {
		msgs = append(msgs, s.msgFromServer(opts.ref(ev.uuid), opts.serverID(), "edit_from_connected_server"))
	}
	out := s.publicEventLocked(ev)
	s.unlockAndPublish(msgs)
	return out
}

func (k syncKind) String() string {
	if k == syncPush {
		return "push"
	}
	return "pull"
}
