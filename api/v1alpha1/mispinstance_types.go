package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MISPInstanceSpec says how to reach one MISP server: its REST API (with an API
// key from a Secret) and, for the curator, its ZeroMQ publisher.
//
// Defaults are resolved by the operator, never written back into the spec (a
// GitOps tool would see a permanent diff); status shows the effective values.
//
// The Secrets it names must carry the label misptrust.io/allow: "true", and the
// hosts of url and zeroMQ.endpoint must be on the operator's allow-list
// (--misp-allowed-hosts, the chart's mispAllowedHosts; empty allows any host).
//
// +kubebuilder:validation:XValidation:rule="!self.url.startsWith('http://') || (has(self.allowInsecureHTTP) && self.allowInsecureHTTP)",message="an http:// url sends the API key unencrypted: use https, or set allowInsecureHTTP: true"
type MISPInstanceSpec struct {
	// URL of the MISP web application, e.g. https://misp.misp.svc. Plain http
	// needs allowInsecureHTTP.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#]+(/[^\s]*)?$`
	URL string `json:"url"`

	// AllowInsecureHTTP accepts a plain http url: the API key then travels
	// unencrypted. Only for a MISP reached over a trusted network (or tests).
	// +optional
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`

	// APIKeySecretRef names the Secret key holding the MISP API key (key
	// defaults to "apiKey"). The key's user should be a site admin of the host
	// organisation with perm_warninglist: the MISPInstance conditions report any
	// capability it lacks.
	APIKeySecretRef SecretKeyReference `json:"apiKeySecretRef"`

	// TLS settings for the REST API. Certificates are verified against the
	// system roots by default.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// ZeroMQ is MISP's ZeroMQ publisher, used by the curator. Without it the
	// curator only catches up through the REST API.
	// +optional
	ZeroMQ *ZeroMQSpec `json:"zeroMQ,omitempty"`

	// API tunes how hard the operator may use the MISP REST API.
	// +optional
	API *APISpec `json:"api,omitempty"`

	// Curation tunes the curator for this instance.
	// +optional
	Curation *CurationSpec `json:"curation,omitempty"`
}

// TLSSpec configures certificate verification for the MISP REST API.
type TLSSpec struct {
	// CASecretRef names a Secret key holding a PEM CA bundle trusted in
	// addition to the system roots (key defaults to "ca.crt").
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// InsecureSkipVerify disables certificate verification. Only for tests;
	// the operator logs a warning while it is set.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// ZeroMQSpec says where MISP's ZeroMQ publisher listens.
type ZeroMQSpec struct {
	// Endpoint of the publisher, tcp://host:port (MISP's default port is
	// 50000; set Plugin.ZeroMQ_host to 0.0.0.0 so it is reachable).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^tcp://([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$`
	Endpoint string `json:"endpoint"`

	// CredentialsSecretRef names a Secret with "username" and "password" keys
	// for ZeroMQ PLAIN authentication (MISP's Plugin.ZeroMQ_username/password).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// APISpec limits the operator's use of the MISP REST API.
type APISpec struct {
	// RequestsPerSecond caps the requests per second of each component. Without
	// it the client adapts by itself: it keeps as many requests in flight as
	// MISP serves without queueing them (an adaptive limit that backs off when
	// MISP's latency rises or it answers 429/5xx; gauge
	// misptrust_misp_concurrency_limit), so set it only to leave MISP capacity
	// for others.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`

	// Timeout of one HTTP request (default 30s), between 1s and 5m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="api.timeout must be between 1s and 5m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// CurationSpec tunes how the curator treats events of this instance.
type CurationSpec struct {
	// DryRun makes the curator log what it would do and write nothing to MISP.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// Concurrency is the number of events curated in parallel (default 16).
	// MISP's load is set by the client's adaptive limit on requests in flight,
	// not by this: raise it only for a MISP with more than ~12 request workers.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Concurrency int32 `json:"concurrency,omitempty"`

	// PushDebounce delays the curation of pushed events: MISP announces a
	// pushed event when its row is saved, before its tags and attributes
	// (default 5s; 0 curates at once), at most 5m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('5m')",message="pushDebounce must be between 0s and 5m"
	PushDebounce *metav1.Duration `json:"pushDebounce,omitempty"`

	// CatchUp configures the REST catch-up that recovers events whose ZeroMQ
	// message was lost.
	// +optional
	CatchUp *CatchUpSpec `json:"catchUp,omitempty"`
}

// CatchUpSpec configures the periodic REST catch-up.
type CatchUpSpec struct {
	// Interval between catch-up passes (default 5m), between 1s and 24h. A
	// pass also runs at start and after every ZeroMQ reconnect.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="catchUp.interval must be between 1s and 24h"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Lookback bounds how far back the first pass and a trust change look for
	// events to curate (default 24h), between 1m and 30 days (720h).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="catchUp.lookback must be between 1m and 720h"
	Lookback *metav1.Duration `json:"lookback,omitempty"`
}

// Condition types of MISPInstance written by the controller (besides Ready).
const (
	// ConditionReachable: MISP answered and its version (>= 2.4.145, the first
	// with custom warninglists) is supported.
	ConditionReachable = "Reachable"
	// ConditionAuthenticated: the API key is accepted (/users/view/me).
	ConditionAuthenticated = "Authenticated"
	// ConditionHostOrg: the key's organisation is MISP.host_org_id, which
	// local tags need. Unknown when the key cannot read the setting (only site
	// admins can).
	ConditionHostOrg = "HostOrg"
	// ConditionSiteAdmin: the key is a site admin, which publishing partners'
	// events and removing their global workflow tag need.
	ConditionSiteAdmin = "SiteAdmin"
	// ConditionWarninglistPermission: the key may create and edit
	// warninglists (perm_warninglist or site admin).
	ConditionWarninglistPermission = "WarninglistPermission"
)

// MISPInstanceStatus is written by two processes, each with its own fields
// and its own server-side-apply field manager: the controller (MISP access:
// conditions Ready, Reachable, Authenticated, HostOrg, SiteAdmin,
// WarninglistPermission; mispVersion; identity) and the curator (feed,
// catchUp, condition FeedConnected).
//
// Ready is True when the controller can manage warninglists: Reachable,
// Authenticated and WarninglistPermission are True. A key that is not a site
// admin or not in the host organisation keeps Ready True with reason
// LimitedCapabilities and a message naming what curation cannot do; the
// HostOrg and SiteAdmin conditions carry the detail, and every OrgTrustPolicy
// that needs the missing capability reports it in its CurationPermitted
// condition.
type MISPInstanceStatus struct {
	// ObservedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe what the API key can do and the feed state.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// MISPVersion reported by /servers/getVersion.
	// +optional
	MISPVersion string `json:"mispVersion,omitempty"`

	// Identity of the API key's user as MISP reports it.
	// +optional
	Identity *MISPIdentity `json:"identity,omitempty"`

	// Feed is the curator's view of the ZeroMQ connection.
	// +optional
	Feed *FeedStatus `json:"feed,omitempty"`

	// CatchUp is the curator's REST catch-up progress.
	// +optional
	CatchUp *CatchUpStatus `json:"catchUp,omitempty"`
}

// MISPIdentity is who the API key belongs to.
type MISPIdentity struct {
	// Email of the key's user.
	// +optional
	Email string `json:"email,omitempty"`
	// OrgName of the key's organisation.
	// +optional
	OrgName string `json:"orgName,omitempty"`
	// OrgUUID of the key's organisation.
	// +optional
	OrgUUID string `json:"orgUUID,omitempty"`
	// Role name of the key's user.
	// +optional
	Role string `json:"role,omitempty"`
}

// FeedStatus is the state of the curator's ZeroMQ subscription.
type FeedStatus struct {
	// State is Connected, Connecting or Disconnected (or NotConfigured).
	// +optional
	State string `json:"state,omitempty"`
	// LastMessageTime is when the last message of any topic arrived
	// (updated at most every few seconds).
	// +optional
	LastMessageTime *metav1.Time `json:"lastMessageTime,omitempty"`
	// LastHeartbeatTime is when the last misp_json_self arrived.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// Reconnects counts redials since the curator started.
	// +optional
	Reconnects int64 `json:"reconnects,omitempty"`
	// LastError is the last connection problem, for a person to read.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// CatchUpStatus records the curator's REST catch-up watermark, so a restarted
// curator resumes where the previous one stopped.
type CatchUpStatus struct {
	// Watermark: every event changed before this time (minus a safety margin)
	// has been seen by the curator.
	// +optional
	Watermark *metav1.Time `json:"watermark,omitempty"`
	// LastRunTime is when the last catch-up pass finished.
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`
	// EventsScanned by the last pass.
	// +optional
	EventsScanned int64 `json:"eventsScanned,omitempty"`
	// SkippedRows are rows of MISP's event index the last pass could not read
	// (damaged, or MISP fails to render them) and skipped; the curator's log
	// names each one.
	// +optional
	SkippedRows int64 `json:"skippedRows,omitempty"`
}

// MISPInstance is one MISP server the operator manages warninglists on and
// curates events for.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mispi,categories=misptrust
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.mispVersion`
// +kubebuilder:printcolumn:name="Feed",type=string,JSONPath=`.status.feed.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MISPInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MISPInstanceSpec   `json:"spec"`
	Status MISPInstanceStatus `json:"status,omitempty"`
}

// MISPInstanceList is a list of MISPInstance.
//
// +kubebuilder:object:root=true
type MISPInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MISPInstance `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MISPInstance{}, &MISPInstanceList{})
}
