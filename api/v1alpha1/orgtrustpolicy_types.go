package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what happens to the MISP warninglist when its policy is
// deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain leaves the warninglist in MISP (the default).
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete deletes the warninglist with the policy.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// OrgTrustPolicySpec is one trust level: a set of organisations whose events
// get the same Admiralty-scale tags.
//
// Defaults are resolved by the operator, never written back into the spec;
// status shows the effective values.
type OrgTrustPolicySpec struct {
	// InstanceRef names the MISPInstance, in the same namespace, this policy
	// applies to.
	InstanceRef InstanceReference `json:"instanceRef"`

	// WarninglistName is the name of the MISP custom warninglist holding this
	// policy's organisations. An existing custom list with that name is
	// adopted (e.g. the original script's org-confidence-level-high); a default
	// list never is. Defaults to "misp-trust-operator/<namespace>/<name>".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	WarninglistName string `json:"warninglistName,omitempty"`

	// ValuePrefix is written before each creator UUID in the warninglist
	// (default "org_uuid:"). "sharer:" is reserved: sharingOrganisations are
	// written as "sharer:<uuid>".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[^\s#]*$`
	// +kubebuilder:validation:XValidation:rule="self != 'sharer:'",message="valuePrefix \"sharer:\" is reserved for sharingOrganisations entries"
	ValuePrefix *string `json:"valuePrefix,omitempty"`

	// Priority decides which policy wins when an organisation is in several
	// policies of the same instance: the highest priority, then the more
	// reliable sourceReliability (a before b ...), then the policy name in
	// alphabetical order. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Priority *int32 `json:"priority,omitempty"`

	// SourceReliability is the Admiralty-scale grade tagged on events created
	// by these organisations: admiralty-scale:source-reliability="<grade>".
	// a = completely reliable ... f = cannot be judged, g = deliberately deceptive.
	// +kubebuilder:validation:Enum=a;b;c;d;e;f;g
	SourceReliability string `json:"sourceReliability"`

	// InformationCredibility, when set, also tags
	// admiralty-scale:information-credibility="<1..6>".
	// +optional
	// +kubebuilder:validation:Enum="1";"2";"3";"4";"5";"6"
	InformationCredibility string `json:"informationCredibility,omitempty"`

	// ExtraTags are attached as local tags too, e.g. tlp:green. A tag may not
	// hold a line break, nor be one the operator sets itself
	// (admiralty-scale:source-reliability, admiralty-scale:information-credibility
	// and workflow:state come from sourceReliability, informationCredibility and
	// publish).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^\r\n]*$`
	// +kubebuilder:validation:XValidation:rule="self.all(t, !t.startsWith('admiralty-scale:source-reliability=') && !t.startsWith('admiralty-scale:information-credibility=') && !t.startsWith('workflow:state='))",message="extraTags may not set the grade, the credibility or the workflow state: use sourceReliability, informationCredibility and publish"
	ExtraTags []string `json:"extraTags,omitempty"`

	// Publish also replaces workflow:state="incomplete" with
	// workflow:state="complete" and publishes the event (needs a site-admin
	// key for partners' events).
	// +optional
	Publish bool `json:"publish,omitempty"`

	// DeletionPolicy: Retain (default) leaves the warninglist in MISP when the
	// policy is deleted; Delete removes it (the policy then carries the
	// finalizer misptrust.io/warninglist). Uninstalling the operator (deleting
	// the CRD) never deletes lists, nor does deleting the MISPInstance first.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Organisations trusted at this level. UUIDs are accepted in any case and
	// must be unique ignoring case; the operator writes them in lower case, as
	// MISP does. Use organisationsFrom for lists longer than 500 (the case-insensitive uniqueness rule costs O(n²) in the apiserver, which caps inline lists).
	// +optional
	// +listType=map
	// +listMapKey=uuid
	// +kubebuilder:validation:MaxItems=500
	// +kubebuilder:validation:XValidation:rule="self.map(o, o.uuid.lowerAscii()).distinct().size() == self.size()",message="organisation UUIDs must be unique (ignoring case)"
	Organisations []Organisation `json:"organisations,omitempty"`

	// OrganisationsFrom reads more organisations from ConfigMap keys: one UUID
	// per line, optionally followed by "# name"; blank lines and lines starting
	// with # are ignored. Invalid lines are reported in the
	// OrganisationsValid condition with their line numbers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	OrganisationsFrom []ConfigMapKeyReference `json:"organisationsFrom,omitempty"`

	// SharingOrganisations trusted at this level: the sync partner that shared
	// an event with our MISP, whoever created it. For a pushed event that is
	// the event's owner organisation on our MISP (the pushing sync user's
	// organisation); for a pulled event MISP makes the server link's own
	// organisation the owner, so the partner is the remote organisation of the
	// connected server it came through (servers/index RemoteOrg). organisations
	// and organisationsFrom match the creator (Orgc) only; an event matched by
	// several policies, as creator or as sharer, goes to the policy that wins
	// by the precedence rule (priority, then sourceReliability, then name).
	// Written into the warninglist as "sharer:<uuid>", never confused with a
	// creator entry. The curator learns the sharer from the ZeroMQ feed at no
	// MISP call (org and server ids, resolved from /organisations/index and
	// /servers/index, which needs a site-admin key). Catch-up matches pushed
	// events by sharer, but pulled events by creator only: no event column
	// names the server a pull came through.
	// +optional
	// +listType=map
	// +listMapKey=uuid
	// +kubebuilder:validation:MaxItems=500
	// +kubebuilder:validation:XValidation:rule="self.map(o, o.uuid.lowerAscii()).distinct().size() == self.size()",message="sharing organisation UUIDs must be unique (ignoring case)"
	SharingOrganisations []SharingOrganisation `json:"sharingOrganisations,omitempty"`
}

// SharingOrganisation is a sync partner, identified by its organisation UUID,
// optionally narrowed to the connected servers its events come through.
type SharingOrganisation struct {
	// UUID of the partner organisation.
	// +kubebuilder:validation:MinLength=36
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	UUID string `json:"uuid"`

	// Name of the organisation, written as the warninglist entry's comment.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^\r\n#]*$`
	Name string `json:"name,omitempty"`

	// Servers narrows the rule to events pulled through these connected
	// servers: their local ids on our MISP (Server.id in servers/index, the
	// "Server" of add_from_connected_server). Events the partner pushes
	// (which name no server) then no longer match. Empty: any server, and
	// pushes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[1-9][0-9]{0,9}$`
	Servers []string `json:"servers,omitempty"`
}

// InstanceReference names a MISPInstance in the same namespace.
type InstanceReference struct {
	// Name of the MISPInstance.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Organisation is one MISP organisation, identified by its UUID (the Orgc
// UUID of the events it creates).
type Organisation struct {
	// UUID of the organisation, e.g. 5cf66e53-b5f8-43e7-be9a-49880a3b4631.
	// +kubebuilder:validation:MinLength=36
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	UUID string `json:"uuid"`

	// Name of the organisation, written as the warninglist entry's comment. It
	// may contain '#' ("CERT #1"): MISP splits an entry at its first '#' only
	// (Warninglist::parseFreetext), and the value before it never holds one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^\r\n]*$`
	Name string `json:"name,omitempty"`
}

// ConfigMapKeyReference points at one key of a ConfigMap in the policy's
// namespace.
type ConfigMapKeyReference struct {
	// Name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the ConfigMap's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Condition types of OrgTrustPolicy (besides Ready).
const (
	// ConditionSynced: the MISP warninglist matches the policy.
	ConditionSynced = "Synced"
	// ConditionOrganisationsValid: every organisationsFrom line parsed.
	ConditionOrganisationsValid = "OrganisationsValid"
	// ConditionConflicts: some organisations are won by another policy.
	ConditionConflicts = "Conflicts"
	// ConditionSourceOverlaps: an organisation is a creator in one policy and
	// a sharer in another (or the same), so its own shared events match both;
	// the message names the winner.
	ConditionSourceOverlaps = "SourceOverlaps"
	// ConditionCurationPermitted: the MISPInstance's key can do what the
	// curator needs for this policy (local tags: host organisation; publish:
	// site admin).
	ConditionCurationPermitted = "CurationPermitted"
	// ConditionNameConflict: another object wants this policy's warninglist
	// (on the owner: others were refused it; on the other side: this policy
	// was refused it, reason WarninglistNameTaken or
	// WarninglistOwnedElsewhere). Ownership is recorded in MISP, in the list's
	// description (the owning policy and its MISPInstance's uid); no object
	// rewrites or deletes a list another owns.
	ConditionNameConflict = "NameConflict"
)

// OrgTrustPolicyStatus is written by the controller (conditions Ready,
// Synced, OrganisationsValid, Conflicts, CurationPermitted; warninglist;
// effective values) and by the curator (curation), each with its own
// server-side-apply field manager.
//
// Ready is True when the warninglist matches the policy and every
// organisation source parsed (invalid lines make it False with reason
// InvalidOrganisations, while the valid ones are still written). It does not
// depend on Conflicts (losing an organisation to a higher policy is the
// precedence rule at work) nor on CurationPermitted (a missing capability is
// named in Ready's message and in CurationPermitted). While the MISPInstance
// is missing or not Ready, Ready is False (InstanceNotFound,
// InstanceNotReady) and MISP is not called. A missing organisationsFrom
// ConfigMap or key leaves the warninglist unchanged (Synced False,
// OrganisationsSourceMissing) rather than dropping its organisations.
type OrgTrustPolicyStatus struct {
	// ObservedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions of the policy.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Warninglist is the MISP warninglist this policy manages.
	// +optional
	Warninglist *WarninglistStatus `json:"warninglist,omitempty"`

	// Organisations is the number of effective organisations (inline plus
	// organisationsFrom, duplicates removed).
	// +optional
	Organisations int32 `json:"organisations,omitempty"`

	// SharingOrganisations is the number of sharing organisations.
	// +optional
	SharingOrganisations int32 `json:"sharingOrganisations,omitempty"`

	// Tags are the effective tags attached to curated events.
	// +optional
	Tags []string `json:"tags,omitempty"`

	// Curation counts what the curator did for this policy.
	// +optional
	Curation *CurationStatus `json:"curation,omitempty"`
}

// WarninglistStatus identifies the managed MISP warninglist.
type WarninglistStatus struct {
	// ID of the warninglist in MISP.
	// +optional
	ID string `json:"id,omitempty"`
	// Name of the warninglist in MISP.
	// +optional
	Name string `json:"name,omitempty"`
	// Entries in the list: the organisations this policy wins. An
	// organisation listed by several policies of the same instance is written
	// only into the winner's list, so MISP shows one trust level per
	// organisation, the one the curator applies. MISP refuses an empty list:
	// a policy that wins no organisation keeps a single placeholder entry
	// (<valuePrefix>00000000-0000-0000-0000-000000000000) and Entries is 0.
	// +optional
	Entries int32 `json:"entries,omitempty"`
	// EntriesHash is a digest of the entries last written, so an unchanged
	// list is never rewritten. The list's description in MISP carries it too.
	// +optional
	EntriesHash string `json:"entriesHash,omitempty"`
	// Version of the list in MISP after the operator's last write or read.
	// MISP increments it at every edit (its UI's included): a resync that finds
	// the same version, entry count and description does not download the
	// entries.
	// +optional
	Version int64 `json:"version,omitempty"`
}

// CurationStatus aggregates the curator's outcomes for one policy.
type CurationStatus struct {
	// Tagged counts events that got this policy's tags.
	// +optional
	Tagged int64 `json:"tagged,omitempty"`
	// Published counts events this policy published: MISP published them
	// synchronously, or the curator saw a publish MISP queued ("Job queued")
	// take effect. A queued publish is counted only once confirmed.
	// +optional
	Published int64 `json:"published,omitempty"`
	// PublishesUnconfirmed is the number of this policy's events whose publish
	// MISP queued and the curator has not seen take effect yet (now, not a
	// total). It stays high while MISP's background workers are down; see the
	// PublishesConfirmed condition of the MISPInstance.
	// +optional
	PublishesUnconfirmed int64 `json:"publishesUnconfirmed,omitempty"`
	// Republished counts publishes sent again because the queued one evidently
	// failed (a later publish was confirmed while this event stayed unpublished).
	// +optional
	Republished int64 `json:"republished,omitempty"`
	// AlreadyCurated counts events that needed nothing.
	// +optional
	AlreadyCurated int64 `json:"alreadyCurated,omitempty"`
	// Failed counts events whose curation failed (they are retried).
	// +optional
	Failed int64 `json:"failed,omitempty"`
	// WouldTag counts events that the curator would have tagged while the
	// MISPInstance is in dry run (spec.curation.dryRun): it wrote nothing.
	// With tagged, it tells what switching dry run off will do.
	// +optional
	WouldTag int64 `json:"wouldTag,omitempty"`
	// WouldPublish counts events that the curator would have published while
	// the MISPInstance is in dry run.
	// +optional
	WouldPublish int64 `json:"wouldPublish,omitempty"`
	// LastEventUUID is the last event curated for this policy.
	// +optional
	LastEventUUID string `json:"lastEventUUID,omitempty"`
	// LastEventTime is when it was curated.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`
	// LastError is the last curation failure, for a person to read.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// OrgTrustPolicy maps organisations to an Admiralty-scale trust level for one
// MISPInstance.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=otp,categories=misptrust
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reliability",type=string,JSONPath=`.spec.sourceReliability`
// +kubebuilder:printcolumn:name="Publish",type=boolean,JSONPath=`.spec.publish`
// +kubebuilder:printcolumn:name="Orgs",type=integer,JSONPath=`.status.organisations`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OrgTrustPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OrgTrustPolicySpec   `json:"spec"`
	Status OrgTrustPolicyStatus `json:"status,omitempty"`
}

// OrgTrustPolicyList is a list of OrgTrustPolicy.
//
// +kubebuilder:object:root=true
type OrgTrustPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrgTrustPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrgTrustPolicy{}, &OrgTrustPolicyList{})
}
