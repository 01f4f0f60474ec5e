package misptest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// target is what a tag call operates on: an event, or an attribute of an event.
type target struct {
	ev   *eventRec
	attr *attributeRec
}

func (t target) typeName() string {
	if t.attr != nil {
		return "Attribute"
	}
	return "Event"
}

func (t target) id() string {
	if t.attr != nil {
		return itoa(t.attr.id)
	}
	return itoa(t.ev.id)
}

func (t target) tagOf(tagID int) *eventTagRec {
	list := t.ev.tags
	if t.attr != nil {
		list = t.attr.tags
	}
	for _, et := range list {
		if et.tagID == tagID {
			return et
		}
	}
	return nil
}

// tagError is an exception thrown in the middle of a tag action (404 / 403).
type tagError struct {
	status int
	msg    string
}

// findObjectLocked is TagsController::__findObjectByUuid: an event first, then an attribute;
// scope "modify" (global tags) needs site admin or the creator org.
func (s *Server) findObjectLocked(u *userRec, uuid string, modify bool) (target, *tagError) {
	var t target
	if ev := s.eventByUUID(uuid); ev != nil && s.visibleLocked(u, ev) {
		t.ev = ev
	} else if ev, a := s.attributeByUUID(uuid); a != nil && s.visibleLocked(u, ev) {
		t.ev, t.attr = ev, a
	} else {
		return t, &tagError{http.StatusNotFound, "Invalid Target."}
	}
	if modify && !u.role.SiteAdmin && t.ev.orgcID != u.orgID {
		// Real MISP 2.5.1 sends the short message: the "Please consider using local tags"
		// suffix is behind a strict int/string comparison that never holds (sync/api/71, 74).
		return t, &tagError{http.StatusForbidden, "Cannot alter the tags of this data, only the organisation that has created the data (orgc) can modify global tags."}
	}
	return t, nil
}

// unpublishLocked is Event::unpublishEvent: published=0 and timestamp=now, saved with
// unpublishAction so that no misp_json_event is sent (misp-api.md §1.10; sync/api/60).
func (s *Server) unpublishLocked(ev *eventRec) {
	ev.published = false
	ev.timestamp = s.now().Unix()
}

// touchAttributeLocked is Attribute::touch after a global attribute tag change: new attribute
// and event timestamps, event unpublished, and a misp_json_attribute "edit" (zmq/39).
func (s *Server) touchAttributeLocked(t target) Message {
	now := s.now().Unix()
	t.attr.timestamp = now
	s.unpublishLocked(t.ev)
	return s.msgAttribute(t.ev, t.attr, "edit")
}

func (c *call) param(i int, key string) any {
	if len(c.params) > i && c.params[i] != "" {
		return c.params[i]
	}
	if m, ok := c.data.(map[string]any); ok {
		return m[key]
	}
	return nil
}

// POST /tags/attachTagToObject (api/36–47, sync/api/57, 61, 69, 73, 74, 79), following
// TagsController::attachTagToObject step by step.
func (s *Server) handleAttachTag(c *call) {
	if c.r.Method != http.MethodPost {
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	uuidV := c.param(0, "uuid")
	if phpEmpty(uuidV) {
		c.errorJSON(http.StatusMethodNotAllowed, "Invalid object uuid")
		return
	}
	uuid := phpString(uuidV)
	if !isUUID(uuid) {
		// InvalidArgumentException('Invalid UUID'): a 500 with debug off.
		c.internalError()
		return
	}
	tagsV := c.param(1, "tag")
	if phpEmpty(tagsV) {
		c.errorJSON(http.StatusMethodNotAllowed, "Invalid tag")
		return
	}
	tagList, isList := tagsV.([]any)
	if !isList {
		tagList = []any{tagsV}
	}
	local := !phpEmpty(c.param(2, "local"))
	u := c.user

	s.mu.Lock()
	var msgs []Message
	successes := 0
	var fails []string
	var existing []string
	var message string
	var tgt target
	for _, tv := range tagList {
		if local && u.orgID != s.hostOrgID {
			fails = append(fails, "Local tags can only be added by users of the host organisation.")
			continue
		}
		t, terr := s.findObjectLocked(u, uuid, !local)
		if terr != nil {
			s.unlockAndPublish(msgs)
			c.errorJSON(terr.status, terr.msg)
			return
		}
		tgt = t
		var tag *tagRec
		name := phpString(tv)
		if isNumeric(tv) {
			if id, err := strconv.Atoi(strings.TrimSpace(name)); err == nil {
				tag = s.tags[id]
			}
		} else {
			tag = s.tagByName(name)
		}
		if tag == nil {
			if isNumeric(tv) {
				fails = append(fails, "Invalid Tag.")
				continue
			}
			if !u.role.TagEditor {
				fails = append(fails, "Tag not found and insufficient privileges to create it.")
				continue
			}
			// Tag::quickAdd: a new exportable tag, published as misp_json_tag "add" (zmq/38).
			tag = s.addTagLocked(strings.TrimSpace(name), s.randomColour(), "")
			msgs = append(msgs, s.msgTagAdd(tag))
		}
		if tag.localOnly && !local {
			fails = append(fails, "Invalid Tag. This tag can only be set as a local tag.")
			continue
		}
		if tgt.tagOf(tag.id) != nil {
			// Already attached, whatever its locality: success, nothing changes.
			message = fmt.Sprintf("%s already has the requested tag attached, no changes had to be made for tag %s.", tgt.typeName(), tag.name)
			existing = append(existing, tag.name)
			successes++
			continue
		}
		et := &eventTagRec{id: s.nextEventTagID, tagID: tag.id, local: local}
		s.nextEventTagID++
		if tgt.attr != nil {
			tgt.attr.tags = append(tgt.attr.tags, et)
			msgs = append(msgs, s.msgTagAttachedAttribute(tag, tgt.ev, tgt.attr))
		} else {
			tgt.ev.tags = append(tgt.ev.tags, et)
			msgs = append(msgs, s.msgTagAttached(tag, tgt.ev, local))
		}
		kind := "Local"
		if !local {
			kind = "Global"
			if tgt.attr != nil {
				msgs = append(msgs, s.touchAttributeLocked(tgt))
			} else {
				s.unpublishLocked(tgt.ev)
			}
		}
		message = fmt.Sprintf("%s tag %s(%d) successfully attached to %s(%s).", kind, tag.name, tag.id, tgt.typeName(), tgt.id())
		successes++
	}
	s.unlockAndPublish(msgs)

	failed := ""
	if len(fails) > 0 {
		reasons := obj{}
		for i, f := range fails {
			reasons = append(reasons, field{strconv.Itoa(i), f})
		}
		// json_encode($fails, JSON_FORCE_OBJECT) with PHP's default escaping.
		failed = fmt.Sprintf("Failed to attach %d tags. Reasons: %s", len(fails), phpDefaultJSON(reasons))
	}
	if successes == 0 {
		c.saveFail("tags", "attachTagToObject", "", "Tag", failed)
		return
	}
	if successes > 1 {
		message = fmt.Sprintf("Successfully attached %d tags to %s (%s)", successes, tgt.typeName(), tgt.id())
		if len(existing) > 0 {
			names := make([]any, len(existing))
			for i, n := range existing {
				names[i] = n
			}
			message += fmt.Sprintf(". %s already has the requested tag attached, no changes had to be made for tags %s.", tgt.id(), phpDefaultJSON(names))
		}
	}
	if failed != "" {
		message += "\n" + failed
	}
	c.saveSuccess("tags", "attachTagToObject", "", message)
}

// canModifyTagLocked is AppController::__canModifyTag for a local tag: site admin, or a user
// of the host org with perm_tagger (or perm_sync).
func (s *Server) canModifyLocalTagLocked(u *userRec) bool {
	return u.role.SiteAdmin || (u.orgID == s.hostOrgID && (u.role.Tagger || u.role.sync))
}

// POST /tags/removeTagFromObject (api/42, sync/api/59, 71), following
// TagsController::removeTagFromObject.
func (s *Server) handleRemoveTag(c *call) {
	if c.r.Method != http.MethodPost {
		c.errorJSON(http.StatusMethodNotAllowed, "This method is only accessible via POST requests.")
		return
	}
	uuidV := c.param(0, "uuid")
	if phpEmpty(uuidV) {
		c.errorJSON(http.StatusMethodNotAllowed, "Invalid object uuid")
		return
	}
	uuid := phpString(uuidV)
	if !isUUID(uuid) {
		c.internalError()
		return
	}
	tagV := c.param(1, "tag")
	if phpEmpty(tagV) {
		c.errorJSON(http.StatusMethodNotAllowed, "Invalid tag")
		return
	}
	u := c.user
	s.mu.Lock()
	var tag *tagRec
	if isNumeric(tagV) {
		tag = s.tags[atoiOr(phpString(tagV), -1)]
	} else {
		tag = s.tagByName(phpString(tagV))
	}
	if tag == nil {
		s.mu.Unlock()
		c.errorJSON(http.StatusMethodNotAllowed, "Invalid Tag.")
		return
	}
	tgt, terr := s.findObjectLocked(u, uuid, false)
	if terr != nil {
		s.mu.Unlock()
		c.errorJSON(terr.status, terr.msg)
		return
	}
	et := tgt.tagOf(tag.id)
	if et == nil {
		s.mu.Unlock()
		c.errorJSON(http.StatusNotFound, "Could not remove tag as it is not attached to the target "+tgt.typeName())
		return
	}
	if !et.local {
		if _, terr := s.findObjectLocked(u, uuid, true); terr != nil {
			s.mu.Unlock()
			c.errorJSON(terr.status, terr.msg)
			return
		}
	} else if !s.canModifyLocalTagLocked(u) {
		s.mu.Unlock()
		c.errorJSON(http.StatusForbidden, "Insufficient privileges to remove local tags from events you do not own.")
		return
	}
	var msgs []Message
	if tgt.attr != nil {
		tgt.attr.tags = removeTag(tgt.attr.tags, et)
		msgs = append(msgs, s.msgTagDetachedAttribute(tag, tgt.ev, tgt.attr))
	} else {
		tgt.ev.tags = removeTag(tgt.ev.tags, et)
		msgs = append(msgs, s.msgTagDetached(tag, tgt.ev))
	}
	kind := "Local"
	if !et.local {
		kind = "Global"
		if tgt.attr != nil {
			msgs = append(msgs, s.touchAttributeLocked(tgt))
		} else {
			// A global removal unpublishes the event and bumps its timestamp (sync/api/59-60).
			s.unpublishLocked(tgt.ev)
		}
	}
	message := fmt.Sprintf("%s tag %s (%d) successfully removed from %s(%s).", kind, tag.name, tag.id, tgt.typeName(), tgt.id())
	s.unlockAndPublish(msgs)
	c.saveSuccess("tags", "removeTagFromObject", "", message)
}

func removeTag(list []*eventTagRec, et *eventTagRec) []*eventTagRec {
	out := list[:0]
	for _, x := range list {
		if x != et {
			out = append(out, x)
		}
	}
	return out
}
