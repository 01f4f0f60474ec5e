package misp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tag is a tag attached to an event.
type Tag struct {
	ID    string // MISP's local tag id
	Name  string // e.g. admiralty-scale:source-reliability="a"
	Local bool   // local tags stay on this instance and do not unpublish (misp-api.md §1.10)
}

// EventMeta is the metadata of one event, as /events/index reports it (never the full event).
type EventMeta struct {
	ID       string // local numeric id
	UUID     string // lower case
	OrgcUUID string // creator organisation, lower case
	OrgcName string
	// OrgID is the owner organisation's local id (Event.org_id): after a push, the
	// partner that pushed it; after a pull, the server link's local org (misp-api.md §2.2).
	OrgID     string
	Published bool
	Locked    bool      // true for events that came from another instance (pull or push)
	Timestamp time.Time // the event timestamp (UTC); 0 when MISP sent none
	Tags      []Tag     // from EventTag, exportable tags only (MISP filters the others)
}

// indexEvent is one row of POST /events/index: a flat event row with Orgc and EventTag
// siblings (testdata/real/sync/api/51_A_events_index_eventid_e1.json). The minimal form
// carries "orgc_uuid" instead of Orgc.
type indexEvent struct {
	ID        flexString `json:"id"`
	UUID      flexString `json:"uuid"`
	Published flexBool   `json:"published"`
	Locked    flexBool   `json:"locked"`
	Timestamp flexInt    `json:"timestamp"`
	OrgcUUID  flexString `json:"orgc_uuid"`
	OrgID     flexString `json:"org_id"`
	Orgc      *struct {
		Name flexString `json:"name"`
		UUID flexString `json:"uuid"`
	} `json:"Orgc"`
	EventTag []struct {
		Local flexBool `json:"local"`
		Tag   *struct {
			ID   flexString `json:"id"`
			Name flexString `json:"name"`
		} `json:"Tag"`
	} `json:"EventTag"`
}

// SkippedRow is an /events/index row the client could not use (no uuid, a field of the
// wrong type): the other rows of the answer are returned without it.
type SkippedRow struct {
	Index  int    // position in the answer, 0-based
	ID     string // the row's local event id, "" when even that is unreadable
	Reason string
}

// decodeEventIndex decodes the /events/index answer: a JSON array (possibly []). Rows are
// decoded one by one, so one damaged row costs that row only.
func decodeEventIndex(body []byte) ([]EventMeta, []SkippedRow, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, nil, fmt.Errorf("expected a JSON array of events, got %s", jsonKind(trimmed))
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(trimmed, &raws); err != nil {
		return nil, nil, err
	}
	out := make([]EventMeta, 0, len(raws))
	var skipped []SkippedRow
	for i, raw := range raws {
		var r indexEvent
		if err := json.Unmarshal(raw, &r); err != nil {
			skipped = append(skipped, SkippedRow{Index: i, ID: rowID(raw), Reason: "cannot decode the row: " + err.Error()})
			continue
		}
		if r.UUID == "" {
			skipped = append(skipped, SkippedRow{Index: i, ID: string(r.ID), Reason: "the row has no uuid"})
			continue
		}
		m := EventMeta{
			ID:        string(r.ID),
			UUID:      strings.ToLower(string(r.UUID)),
			OrgcUUID:  strings.ToLower(string(r.OrgcUUID)),
			OrgID:     string(r.OrgID),
			Published: bool(r.Published),
			Locked:    bool(r.Locked),
		}
		if r.Timestamp > 0 {
			m.Timestamp = time.Unix(int64(r.Timestamp), 0).UTC()
		}
		if r.Orgc != nil {
			if r.Orgc.UUID != "" {
				m.OrgcUUID = strings.ToLower(string(r.Orgc.UUID))
			}
			m.OrgcName = string(r.Orgc.Name)
		}
		for _, et := range r.EventTag {
			// The index drops the Tag of non-exportable tags; without a name the row is useless.
			if et.Tag == nil || et.Tag.Name == "" {
				continue
			}
			m.Tags = append(m.Tags, Tag{ID: string(et.Tag.ID), Name: string(et.Tag.Name), Local: bool(et.Local)})
		}
		out = append(out, m)
	}
	return out, skipped, nil
}

// rowID reads the id of a row that does not decode as a whole, for the report.
func rowID(raw json.RawMessage) string {
	var r struct {
		ID flexString `json:"id"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return truncate(string(r.ID), 32)
}

// EventMeta returns the metadata of one event in one call: POST /events/index
// {"eventid": uuid}. The minimal form is not used because it silently drops events without
// attributes (misp-api.md §2.3). ErrNotFound when MISP answers [] (unknown or invisible).
func (c *Client) EventMeta(ctx context.Context, eventUUID string) (EventMeta, error) {
	req := request{op: "read metadata of event " + eventUUID, method: http.MethodPost,
		route: "/events/index", path: "/events/index", idempotent: true}
	if err := c.checkUUID(req, "event uuid", eventUUID); err != nil {
		return EventMeta{}, err
	}
	// eventid takes a uuid when it is exactly 36 characters long (EventsController
	// __setIndexFilterConditions); anything else would be read as a numeric id.
	ref := strings.ToLower(eventUUID)
	return c.eventMeta(ctx, req, ref, "uuid", func(e EventMeta) bool { return e.UUID == ref })
}

// EventMetaByID is EventMeta for this instance's numeric event id (what the MISP UI
// shows); the same single call, with the id as eventid.
func (c *Client) EventMetaByID(ctx context.Context, id string) (EventMeta, error) {
	req := request{op: "read metadata of event " + id, method: http.MethodPost,
		route: "/events/index", path: "/events/index", idempotent: true}
	if err := c.checkID(req, "event id", id); err != nil {
		return EventMeta{}, err
	}
	return c.eventMeta(ctx, req, id, "id", func(e EventMeta) bool { return e.ID == id })
}

func (c *Client) eventMeta(ctx context.Context, req request, ref, what string, match func(EventMeta) bool) (EventMeta, error) {
	req.body = map[string]any{"eventid": ref}
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return EventMeta{}, err
	}
	events, skipped, err := decodeEventIndex(resp.body)
	if err != nil {
		return EventMeta{}, c.decodeFailure(req, resp, err)
	}
	for _, e := range events {
		if match(e) {
			return e, nil
		}
	}
	if len(skipped) > 0 {
		// MISP found the event but its row is unusable: not "unknown event".
		return EventMeta{}, c.decodeFailure(req, resp, fmt.Errorf("row %d (event id %q): %s", skipped[0].Index, skipped[0].ID, skipped[0].Reason))
	}
	return EventMeta{}, &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Status: resp.status,
		Kind: ErrNotFound, Message: "no event with this " + what + " is visible to this API key"}
}

// EventSearch filters SearchEvents.
type EventSearch struct {
	Since time.Time // events whose timestamp is at or after Since (zero: no filter)
	// PublishedSince: events this instance published at or after it (publish_timestamp;
	// zero: no filter). A synchronised event keeps its partner's timestamp, but its
	// publish_timestamp is ours: this catches events pulled long after they changed.
	PublishedSince time.Time
	OrgUUIDs       []string // optional "org" filter (creator org uuids)
	Limit          int      // page size; 0 → no paging, MISP returns every match
	Page           int      // 1-based; used only with Limit (0 → 1)
}

// EventPage is one page of SearchEventsPage.
type EventPage struct {
	Events []EventMeta
	// Total is MISP's X-Result-Count: the number of matches over all pages (before the
	// client-side org filter), or -1 when MISP sent none. Page on with Page+1 while
	// Page*Limit < Total; do not stop on a short page (see SearchEventsPage).
	Total int
	// Skipped are the rows of this page that could not be decoded; Events holds the others.
	// Rows counts both (before the client-side org filter): a full page has Rows == Limit.
	Skipped []SkippedRow
	Rows    int
}

// SearchEvents returns the events changed since q.Since (POST /events/index, without
// minimal, so events without attributes are included). See SearchEventsPage.
func (c *Client) SearchEvents(ctx context.Context, q EventSearch) ([]EventMeta, error) {
	p, err := c.SearchEventsPage(ctx, q)
	if err != nil {
		return nil, err
	}
	return p.Events, nil
}

// SearchEventsPage is SearchEvents plus MISP's total match count.
//
// Order: the client asks for ascending local id (sort=id, direction=asc), which MISP 2.5.1
// honours for REST index calls (EventsController::__indexRestResponse) and which keeps
// paging stable while events are edited (ids do not move, timestamps do). Other servers
// may ignore it: do not rely on the order, compute a catch-up watermark as the largest
// Timestamp over all pages.
//
// The org filter has two MISP quirks (EventsController::__setIndexFilterConditions,
// 2.5.1): it is ignored entirely when MISP.showorg is off, and when any listed uuid is
// unknown to this MISP the whole answer is [] even if other orgs are known. The client
// sends uuids lower-cased (MISP compares them with LOWER(uuid)), and filters the answer on
// OrgcUUID itself, so the first quirk costs bandwidth but not correctness; for the second,
// only list orgs this MISP knows, or query one org at a time. A page can therefore hold
// fewer than Limit events although more pages follow: use Total.
func (c *Client) SearchEventsPage(ctx context.Context, q EventSearch) (EventPage, error) {
	req := request{op: "search events", method: http.MethodPost, route: "/events/index", path: "/events/index", idempotent: true}
	body := map[string]any{"sort": "id", "direction": "asc"}
	if !q.Since.IsZero() && q.Since.Unix() > 0 {
		// MISP takes seconds, as a string or a time delta ("1d"); send the plain number.
		body["timestamp"] = strconv.FormatInt(q.Since.Unix(), 10)
		req.op += " changed since " + q.Since.UTC().Format(time.RFC3339)
	}
	if !q.PublishedSince.IsZero() && q.PublishedSince.Unix() > 0 {
		body["publish_timestamp"] = strconv.FormatInt(q.PublishedSince.Unix(), 10)
		req.op += " published since " + q.PublishedSince.UTC().Format(time.RFC3339)
	}
	var orgs map[string]bool
	if len(q.OrgUUIDs) > 0 {
		orgs = make(map[string]bool, len(q.OrgUUIDs))
		list := make([]string, 0, len(q.OrgUUIDs))
		for _, o := range q.OrgUUIDs {
			if err := c.checkUUID(req, "org uuid", o); err != nil {
				return EventPage{}, err
			}
			o = strings.ToLower(o)
			if !orgs[o] {
				orgs[o] = true
				list = append(list, o)
			}
		}
		body["org"] = list
		req.op += fmt.Sprintf(" of %d org(s)", len(list))
	}
	if q.Limit < 0 || q.Page < 0 {
		return EventPage{}, c.invalid(req, "Limit and Page must not be negative")
	}
	if q.Limit > 0 {
		page := max(q.Page, 1)
		body["limit"] = q.Limit
		body["page"] = page
		req.op += fmt.Sprintf(" (page %d, %d per page)", page, q.Limit)
	}
	req.body = body
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return EventPage{}, err
	}
	events, skipped, err := decodeEventIndex(resp.body)
	if err != nil {
		return EventPage{}, c.decodeFailure(req, resp, err)
	}
	rows := len(events) + len(skipped)
	total := -1
	if n, err := strconv.Atoi(strings.TrimSpace(resp.header.Get("X-Result-Count"))); err == nil {
		total = n
	}
	if orgs != nil {
		kept := events[:0]
		for _, e := range events {
			if orgs[e.OrgcUUID] {
				kept = append(kept, e)
			}
		}
		if len(kept) < len(events) {
			c.orgFilterIgnored.Do(func() {
				c.log.Info("MISP ignored the org filter of /events/index (is MISP.showorg off?); filtering on the client side")
			})
		}
		events = kept
	}
	return EventPage{Events: events, Total: total, Skipped: skipped, Rows: rows}, nil
}

// AttachTags attaches tags to an event: POST /tags/attachTagToObject
// {"uuid", "tag": name or [names], "local": 1|0} (misp-api.md §2.4). Attaching a tag that
// is already attached succeeds without change (even if it is attached with the other
// locality). Unknown names are created when the key has perm_tag_editor. Local tags need
// the key's org to be MISP.host_org_id: otherwise MISP answers 403 saved:false, which is
// ErrValidation here; a global tag on another org's event without site admin is
// ErrForbidden (testdata/real/sync/api/74_A_pub_tag_e2_global_workflow_complete.json).
func (c *Client) AttachTags(ctx context.Context, eventUUID string, tags []string, local bool) error {
	kind := "global"
	if local {
		kind = "local"
	}
	req := request{op: fmt.Sprintf("attach %s tags %q to event %s", kind, tags, eventUUID),
		method: http.MethodPost, route: "/tags/attachTagToObject", path: "/tags/attachTagToObject"}
	if err := c.checkUUID(req, "event uuid", eventUUID); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	for _, t := range tags {
		if strings.TrimSpace(t) == "" {
			return c.invalid(req, "empty tag name")
		}
	}
	var tag any = tags
	if len(tags) == 1 {
		tag = tags[0] // the single-name form, as captured in api/36…38
	}
	flag := 0
	if local {
		flag = 1
	}
	req.body = map[string]any{"uuid": strings.ToLower(eventUUID), "tag": tag, "local": flag}
	_, err := c.save(ctx, req)
	return err
}

// RemoveTag detaches one tag from an event: POST /tags/removeTagFromObject {"uuid","tag"}.
// A tag that is not attached gives ErrNotFound (HTTP 404), and so does a tag name unknown to
// MISP (HTTP 405 "Invalid Tag.", misp-api.md §2.4): either way the tag is not on the event.
// Removing a global tag unpublishes the event and bumps its timestamp (misp-api.md §1.10).
func (c *Client) RemoveTag(ctx context.Context, eventUUID, tag string) error {
	req := request{op: fmt.Sprintf("remove tag %q from event %s", tag, eventUUID),
		method: http.MethodPost, route: "/tags/removeTagFromObject", path: "/tags/removeTagFromObject"}
	if err := c.checkUUID(req, "event uuid", eventUUID); err != nil {
		return err
	}
	if strings.TrimSpace(tag) == "" {
		return c.invalid(req, "empty tag name")
	}
	req.body = map[string]any{"uuid": strings.ToLower(eventUUID), "tag": tag}
	_, err := c.save(ctx, req)
	var ae *APIError
	if asAPIError(err, &ae) && ae.Status == http.StatusMethodNotAllowed && strings.Contains(ae.Message, "Invalid Tag") {
		ae.Kind = ErrNotFound
	}
	return err
}

// Publish publishes an event: POST /events/publish/{uuid} (misp-api.md §2.5) and returns
// MISP's message: "Job queued" with background jobs (the publish happens a moment later,
// the event reads as unpublished until then) or "Event published without alerts".
// Publishing an event created by another org needs site admin: otherwise MISP answers 405
// (ErrNotAllowed). A 403 save-fail (ErrValidation) can come after a local publish when the
// push to a connected server failed; the event is published locally then.
func (c *Client) Publish(ctx context.Context, eventUUID string) (string, error) {
	req := request{op: "publish event " + eventUUID, method: http.MethodPost, route: "/events/publish/{id}"}
	if err := c.checkUUID(req, "event uuid", eventUUID); err != nil {
		return "", err
	}
	req.path = "/events/publish/" + strings.ToLower(eventUUID)
	b, err := c.save(ctx, req)
	if err != nil {
		return "", err
	}
	return b.message(), nil
}

// save runs a request answered in MISP's save style and checks "saved"/"success": some
// endpoints report failures with HTTP 200 (misp-api.md §2.6 toggleEnable).
func (c *Client) save(ctx context.Context, req request) (saveBody, error) {
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return saveBody{}, err
	}
	b, err := decodeSave(resp.body)
	if err != nil {
		return saveBody{}, c.decodeFailure(req, resp, err)
	}
	if b.failed() {
		e := c.apiError(req, resp)
		e.Kind = ErrValidation
		return b, e
	}
	return b, nil
}
