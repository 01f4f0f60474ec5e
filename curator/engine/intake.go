// Message intake, the first stop of a ZeroMQ message: HandleMessage classifies it,
// remembers what it tells about the event (the hints that let a curation skip MISP
// reads) and asks the queue (queue.go) for a curation. Enqueue is the same door for
// catch-up and re-curation. Every function below HandleMessage, Enqueue and classify
// runs with e.mu held.

package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/misp"
)

// HandleMessage takes one parsed ZeroMQ message of this instance. It only updates
// in-memory state and schedules curations; it never calls MISP and never waits for a
// curation. How each message is used: see the package documentation and classify.
func (e *Engine) HandleMessage(m feed.Message) {
	now := e.clock.Now()
	class := classify(m)
	e.met.message(class)
	var out *Outcome // a hand-over the queue refused, or an event deleted while waiting
	defer func() {
		if out != nil {
			e.report(*out)
		}
	}()
	switch class {
	case msgPulled:
		e.mu.Lock()
		out = e.trigger(m.EventUUID, trigger{source: SourcePull, pulled: true, server: m.ServerID, received: now, due: now}, now)
		e.mu.Unlock()
	case msgPulledByID:
		// A pull by the partner's numeric id (sync/zmq/45, 48): the id is useless here.
		// The row message of the same pull named the event and its debounce curates it;
		// catch-up is the safety net.
		e.log.V(1).Info("pulled event announced by the partner's numeric id; curated after the debounce of its row message", "remoteEventID", m.RemoteEventID)
	case msgSyncedRow:
		e.mu.Lock()
		e.learnRow(m, now)
		out = e.trigger(m.EventUUID, trigger{source: SourcePush, received: now, due: now.Add(e.opts.PushDebounce)}, now)
		e.mu.Unlock()
	case msgDelete:
		e.mu.Lock()
		e.forgetLocked(m.EventUUID)
		if en := e.entries[m.EventUUID]; en != nil && en.state != stateRunning {
			e.removeEntry(en)
			e.met.drop(dropDeleted, 1)
			// An outcome all the same: whoever handed the event over (catch-up) learns
			// that it is settled.
			out = &Outcome{Instance: e.opts.Instance, EventUUID: m.EventUUID, Source: en.trigger.source,
				Skipped: "event deleted", Received: en.trigger.received, Due: now, At: now}
		}
		e.mu.Unlock()
	case msgPublish:
		e.mu.Lock()
		tags := make([]string, len(m.Tags))
		for i, t := range m.Tags {
			tags[i] = t.Name
		}
		if e.feedConfirms(m.EventUUID, tags) {
			// Our queued publish ran (or a later one): the check needs no read.
			e.learnPublishAnyway(m, now)
			out = e.trigger(m.EventUUID, trigger{source: SourceConfirm, received: now, due: now}, now)
		} else {
			e.learnPublish(m, now)
		}
		// misp_json is the last message of a published push (sync README "push-new"):
		// the event is complete, but a pull still sends *_from_connected_server after it,
		// so wait CoalesceWindow rather than the whole debounce.
		if en := e.entries[m.EventUUID]; en != nil && en.state == stateWaiting && !en.trigger.pulled &&
			en.attempts == 0 && e.opts.CoalesceWindow >= 0 {
			if due := now.Add(e.opts.CoalesceWindow); due.Before(en.due) {
				e.setDue(en, due)
			}
		}
		e.mu.Unlock()
	case msgTag:
		e.mu.Lock()
		e.learnTag(m, now)
		e.mu.Unlock()
	}
}

// classify says what a message means to the engine (misp-api.md §1.7–1.10):
//
//   - msgPulled: add|edit_from_connected_server with the event UUID — the pull of the
//     event is complete, curate now;
//   - msgPulledByID: the same with the partner's numeric id — useless locally;
//   - msgSyncedRow: an add|edit row with locked:true — a pushed event, or the first
//     message of a pull; names the creator org;
//   - msgLocalRow: an add|edit row with locked:false — created here, never curated;
//   - msgDelete: the event was deleted;
//   - msgPublish: misp_json — a hint (tags, published), never a curation by itself,
//     except the check that confirms a publish we queued (publish.go);
//   - msgTag: a tag attached to / detached from an event — a hint;
//   - msgInvalid: an event message without the UUID it needs;
//   - msgOther: everything else (attributes, heartbeats, audit, …).
func classify(m feed.Message) string {
	switch m.Kind {
	case feed.KindEvent:
		switch {
		case m.Action.FromConnectedServer():
			switch {
			case m.EventUUID != "":
				return msgPulled
			case m.RemoteEventID != "":
				return msgPulledByID
			}
			return msgInvalid
		case m.Action == feed.ActionAdd || m.Action == feed.ActionEdit:
			switch {
			case !m.HasRow || m.EventUUID == "":
				return msgInvalid
			case m.Locked:
				return msgSyncedRow
			}
			return msgLocalRow
		case m.Action == feed.ActionDelete:
			if m.EventUUID == "" {
				return msgInvalid
			}
			return msgDelete
		}
		return msgOther
	case feed.KindPublish:
		if m.EventUUID == "" {
			return msgInvalid
		}
		return msgPublish
	case feed.KindEventTag:
		if m.EventID == "" {
			return msgInvalid
		}
		return msgTag
	}
	return msgOther
}

// Enqueue asks for a curation of an event (catch-up, re-curation), coalesced with any
// pending one for the same event. A hint carrying Meta saves the metadata read.
func (e *Engine) Enqueue(eventUUID string, h Hint) {
	eventUUID = strings.ToLower(strings.TrimSpace(eventUUID))
	if len(eventUUID) != 36 {
		e.log.Info("ignoring a curation request without a valid event UUID", "event", eventUUID)
		return
	}
	if h.Source == "" {
		h.Source = SourceCatchUp
	}
	now := e.clock.Now()
	e.mu.Lock()
	out := e.trigger(eventUUID, trigger{source: h.Source, meta: h.Meta, metaAt: h.ReadAt, received: now, due: now}, now)
	e.mu.Unlock()
	if out != nil {
		e.report(*out)
	}
}

// hint is what the feed told about an event.
type hint struct {
	eventID string
	orgc    string
	owner   string // owner org's local id (Event.org_id): the sharer of a pushed event
	// known: state below is the event's state after its last row message, learnt from a
	// misp_json (full event, every tag with its locality) or from our own curation; no
	// tag change was announced since.
	known  bool
	locked bool  // the event came by synchronisation (row or misp_json said locked:true)
	ts     int64 // event timestamp of the last row or misp_json: identifies the version
	// curated: state is what our own curation of version ts left.
	curated bool
	state   eventState
	// wrote is when a curation of ours last changed the event or saw its publish take
	// effect: metadata read before it is stale (Hint.ReadAt).
	wrote time.Time
}

// learnRow: a row message (locked) starts a new version of the event: its creator org is
// known, its tags are not (they are saved after the row, sync README "pull-new"), and a
// publish we remember for an older version no longer says anything about it. A row with
// the timestamp of the version we already know is a duplicate and changes nothing.
func (e *Engine) learnRow(m feed.Message, now time.Time) {
	old, had := e.hints.get(m.EventUUID, now)
	if had && m.Timestamp != 0 && old.ts == m.Timestamp && (m.OrgcUUID == "" || m.OrgcUUID == old.orgc) &&
		(!old.known || old.state.Published == m.Published) {
		e.putHint(m.EventUUID, old, now)
		return
	}
	h := &hint{eventID: m.EventID, orgc: m.OrgcUUID, owner: m.OrgID, locked: true, ts: m.Timestamp}
	if had {
		h.keep(old)
	}
	e.putHint(m.EventUUID, h, now)
}

// learnPublish: misp_json carries the full event once its tags and attributes are saved,
// every tag with its locality (misp-api.md §1.9), and is sent by Event::publish(), so
// the event is published right after — even when the payload says published:false (a
// local publish sends the flag as loaded before the save, sync README "Other surprises").
func (e *Engine) learnPublish(m feed.Message, now time.Time) {
	old, had := e.hints.get(m.EventUUID, now)
	if had && old.curated && m.Timestamp != 0 && m.Timestamp <= old.ts {
		// Sent for the version we have curated since (a lagging feed delivers a pull's
		// misp_json after our curation): it describes the event before our changes.
		return
	}
	e.learnPublishAnyway(m, now)
}

// learnPublishAnyway stores what a misp_json says about the event, whatever the hint
// said before.
func (e *Engine) learnPublishAnyway(m feed.Message, now time.Time) {
	old, had := e.hints.get(m.EventUUID, now)
	h := &hint{eventID: m.EventID, orgc: m.OrgcUUID, owner: m.OrgID, known: true, locked: m.Locked, ts: m.Timestamp,
		state: eventState{Published: true, Tags: make([]misp.Tag, 0, len(m.Tags))}}
	for _, t := range m.Tags {
		h.state.Tags = append(h.state.Tags, misp.Tag{Name: t.Name, Local: t.Local})
	}
	if had {
		h.keep(old)
	}
	e.putHint(m.EventUUID, h, now)
}

// learnTag: an event tag attached or detached after what we know. A local attach is
// applied; anything else may have unpublished the event (global tags do; a detach does
// not say which kind it was), so the state must be read again.
func (e *Engine) learnTag(m feed.Message, now time.Time) {
	uuid := e.ids[m.EventID]
	if uuid == "" {
		return
	}
	old, ok := e.hints.get(uuid, now)
	if !ok || !old.known {
		return
	}
	h := *old
	if m.Action == feed.ActionTagAttachedToEvent && m.TagLocal {
		if !h.state.has(m.TagName) {
			h.state.Tags = append(slices.Clip(h.state.Tags), misp.Tag{Name: m.TagName, Local: true})
		}
	} else {
		h.known = false
	}
	e.putHint(uuid, &h, now)
}

// learnCurated: after a curation the engine knows the event's state; changed says the
// curation wrote (or confirmed a publish).
func (e *Engine) learnCurated(uuid, orgc string, st eventState, changed bool, now time.Time) {
	h := &hint{orgc: orgc, known: true, locked: true, curated: true, state: st}
	if old, ok := e.hints.get(uuid, now); ok {
		h.ts = old.ts
		h.keep(old)
	}
	if changed {
		h.wrote = now
	}
	e.putHint(uuid, h, now)
}

// keep fills what a newer message did not say from the older hint, and keeps when our
// last write to the event was (no message says it).
func (h *hint) keep(old *hint) {
	h.wrote = old.wrote
	if h.eventID == "" {
		h.eventID = old.eventID
	}
	if h.orgc == "" {
		h.orgc = old.orgc
	}
	if h.owner == "" {
		h.owner = old.owner
	}
}

// wrote records that a curation changed the event (or may have: a failure after a write).
func (e *Engine) wrote(uuid string, now time.Time) {
	h := &hint{}
	if old, ok := e.hints.get(uuid, now); ok {
		cp := *old
		h = &cp
	}
	h.wrote = now
	e.putHint(uuid, h, now)
}

// forgetState keeps what a hint says about the event's creator org but no longer claims
// to know its tags and published flag.
func (e *Engine) forgetState(uuid string, now time.Time) {
	old, ok := e.hints.get(uuid, now)
	if !ok || !old.known {
		return
	}
	h := *old
	h.known, h.curated, h.state = false, false, eventState{}
	e.putHint(uuid, &h, now)
}

func (e *Engine) forgetLocked(uuid string) {
	if h, ok := e.hints.delete(uuid); ok {
		e.forgetID(uuid, h)
	}
	e.dropPublish(uuid)
}

func (e *Engine) putHint(uuid string, h *hint, now time.Time) {
	if h.eventID != "" {
		e.ids[h.eventID] = uuid
	}
	e.hints.put(uuid, h, now)
}

// forgetID drops the id → uuid entry of a hint that is gone (caller holds e.mu).
func (e *Engine) forgetID(uuid string, h *hint) {
	if h.eventID != "" && e.ids[h.eventID] == uuid {
		delete(e.ids, h.eventID)
	}
}
