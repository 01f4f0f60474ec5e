package feed

// Topic is the part of a frame before the first space (misp-api.md §1.4).
type Topic string

// The topics that MISP's mispzmq.py forwards (misp-api.md §1.5). Subscriptions are
// byte-prefix matches, so subscribing to TopicPublish ("misp_json") receives all of
// them; Parse always compares the exact topic.
const (
	TopicPublish         Topic = "misp_json" // full event on publish, no "action"
	TopicEvent           Topic = "misp_json_event"
	TopicAttribute       Topic = "misp_json_attribute"
	TopicObject          Topic = "misp_json_object"
	TopicObjectReference Topic = "misp_json_object_reference"
	TopicTag             Topic = "misp_json_tag"
	TopicSighting        Topic = "misp_json_sighting"
	TopicOrganisation    Topic = "misp_json_organisation"
	TopicUser            Topic = "misp_json_user"
	TopicConversation    Topic = "misp_json_conversation"
	TopicAudit           Topic = "misp_json_audit"
	TopicWarninglist     Topic = "misp_json_warninglist"
	TopicWorkflow        Topic = "misp_json_workflow"
	TopicSelf            Topic = "misp_json_self" // heartbeat of mispzmq.py, §1.6
)

// Kind says what a parsed message is good for.
type Kind uint8

const (
	// KindIgnored: a known topic the curator does not use (attributes, audit, …).
	// Its payload is not inspected.
	KindIgnored Kind = iota
	// KindEvent: misp_json_event (any action).
	KindEvent
	// KindPublish: misp_json, the full event sent on publish.
	KindPublish
	// KindEventTag: misp_json_tag "attached to event" / "detached from event".
	KindEventTag
	// KindTag: any other misp_json_tag action (tag created/edited, attribute tags).
	KindTag
	// KindHeartbeat: misp_json_self.
	KindHeartbeat
)

func (k Kind) String() string {
	switch k {
	case KindIgnored:
		return "ignored"
	case KindEvent:
		return "event"
	case KindPublish:
		return "publish"
	case KindEventTag:
		return "event_tag"
	case KindTag:
		return "tag"
	case KindHeartbeat:
		return "heartbeat"
	}
	return "unknown"
}

// Action is the "action" field of misp_json_event and misp_json_tag payloads.
// Values other than the constants below are passed through unchanged.
type Action string

const (
	ActionAdd    Action = "add"
	ActionEdit   Action = "edit"
	ActionDelete Action = "delete"
	// Sent by a pull only, after the event, its tags and attributes are committed
	// (misp-api.md §1.7c, captured in sync/zmq/34_…, 37_…).
	ActionAddFromConnectedServer  Action = "add_from_connected_server"
	ActionEditFromConnectedServer Action = "edit_from_connected_server"

	ActionTagAttachedToEvent   Action = "attached to event"
	ActionTagDetachedFromEvent Action = "detached from event"
)

// FromConnectedServer reports whether the action is one of the two pull actions.
func (a Action) FromConnectedServer() bool {
	return a == ActionAddFromConnectedServer || a == ActionEditFromConnectedServer
}

// Tag is an event tag as carried by the payloads.
type Tag struct {
	Name  string
	Local bool
}

// Heartbeat is the misp_json_self payload: {"status": "...", "uptime": N}.
type Heartbeat struct {
	Status string
	Uptime int64
}

// Message is one parsed frame. Which fields are set depends on Kind:
//
//   - KindEvent (misp_json_event): Action; for add/edit/delete the payload holds
//     the event row (HasRow) with EventUUID, EventID, OrgID, Locked, Published,
//     Timestamp, and for add/edit the sibling Orgc (OrgcUUID, OrgcName) and
//     EventTag (Tags, HasTags). For *_from_connected_server, "Event" is the event
//     UUID (EventUUID) or, after a pull by numeric id, the PARTNER's numeric id
//     (RemoteEventID; EventUUID is empty, the id is useless locally and the engine
//     skips the message — catch-up finds the event), plus ServerID.
//   - KindPublish (misp_json): EventUUID, EventID, OrgID, Locked, Published, Timestamp,
//     OrgcUUID/OrgcName (nested Event.Orgc), Tags (Event.Tag, local tags included).
//   - KindEventTag / KindTag (misp_json_tag): Action, TagName, TagLocal, EventID
//     (the tag's event_id) and AttributeID. Detach messages carry no "local" key;
//     TagLocal is then false.
//   - KindHeartbeat (misp_json_self): Heartbeat.
//
// UUIDs are validated and lower-cased; ids are decimal strings whether MISP sent
// them as JSON strings or numbers (misp-api.md §0).
type Message struct {
	Topic Topic
	Kind  Kind
	// Size is the length of the frame in bytes.
	Size int

	Action        Action
	EventUUID     string
	EventID       string
	RemoteEventID string
	ServerID      string
	// OrgID is the owner organisation's local id (Event.org_id of the row): the
	// partner after a push, the server link's org after a pull. Only the id travels.
	OrgID string

	HasRow    bool
	Locked    bool
	Published bool
	Timestamp int64
	OrgcUUID  string
	OrgcName  string
	HasTags   bool
	Tags      []Tag

	TagName     string
	TagLocal    bool
	AttributeID string

	Heartbeat Heartbeat
}
