// Package engine is the curation engine of one MISPInstance: it turns ZeroMQ messages
// (package feed) and catch-up requests into the fewest MISP calls that bring each
// synchronised event from a trusted creator organisation to its policy's state — local
// trust tags attached, and for publishing policies workflow:state="complete" instead of
// "incomplete" and the event published (design.md "The job, end to end" §3).
//
// What the engine relies on (misp-api.md §1.7–1.10, misp/real/sync/README.md):
//
//   - A pulled event produces misp_json_event add|edit (the row: Orgc, locked:true,
//     EventTag before this sync's tags), tag and attribute messages, misp_json when
//     published (the full event with every tag, local ones included), then
//     add|edit_from_connected_server with only the UUID. The last one triggers the
//     curation at once; the row message names the creator org, so an untrusted pulled
//     event costs no call.
//   - A pushed event produces the same minus *_from_connected_server. Its row message
//     arrives before its tags and attributes are saved, so the engine waits
//     Options.PushDebounce after the last row message (misp_json, the last message of a
//     published push, shortens the wait to Options.CoalesceWindow).
//   - Locally created events (locked:false) are not curated.
//   - misp_json and misp_json_tag messages never start a curation; they update what the
//     engine knows about an event (its tags and published flag) so that a curation can
//     skip the metadata read (see Options.HintTTL).
//
// When the metadata read (POST /events/index, one call) is skipped, and why it is safe:
//
//   - the creator org is untrusted and a row message (or a catch-up search) named it:
//     nothing is done, so nothing can be wrong;
//   - a misp_json for the event arrived after its last row message and no tag change was
//     announced since (misp_json_tag): misp_json is built by Event::publish() from the
//     saved event after its tags and attributes (the last message of a push, the last but
//     one of a pull), carries every tag with its locality, and the event is published
//     right after it. A pulled event's *_from_connected_server follows it with nothing in
//     between (sync README "pull-new", "pull-edit");
//   - a catch-up search already returned the metadata (Hint.Meta);
//   - the previous curation of the same version left a known state (a duplicate message).
//
// A retry after a failure never skips it. A stale hint (tags changed by someone while
// ZeroMQ tag notifications were off) mostly costs a wasted call — attaching an attached
// tag succeeds, removing a missing one answers 404 — or leaves a step to the next
// curation or catch-up pass, which read the metadata.
//
// Every curation of an event is serialised: messages for an event waiting or being
// curated are coalesced into it (at most one follow-up curation after the one in
// flight). Curation steps are idempotent and derived from the event's current state, so
// a retry or a crash between two steps is finished by the next pass.
//
// Reading order, following one message: intake.go (HandleMessage: classify, hints,
// trigger) → queue.go (entries, debounce, scheduler, workers, finish) → curate.go (one
// attempt's MISP calls) → plan.go (the steps an event needs) → back to queue.go's
// finish and report, which hand the Outcome to Options.OnOutcome. publish.go follows a
// publish MISP only queued until it is confirmed (or evidently failed); engine.go holds
// the Engine itself (options, New, Run); api.go the types callers use.
//
// Every hand-over ends in an Outcome: a curation's, or a refusal (ErrQueueFull) or a
// drop (an event deleted while waiting), so that catch-up sees it.
package engine

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"

	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// MISP is the part of the MISP client (package misp) the engine calls; *misp.Client
// satisfies it. Errors are classified with errors.Is against the misp.Err* kinds.
type MISP interface {
	// EventMeta reads an event's metadata in one call (Orgc, published, tags with
	// their locality); misp.ErrNotFound when the event is unknown or invisible.
	EventMeta(ctx context.Context, eventUUID string) (misp.EventMeta, error)
	// AttachTags attaches every tag in one call; already attached tags are a success.
	AttachTags(ctx context.Context, eventUUID string, tags []string, local bool) error
	// RemoveTag detaches a tag; misp.ErrNotFound means it was not attached (nothing
	// removed, so nothing unpublished).
	RemoveTag(ctx context.Context, eventUUID, tag string) error
	// Publish publishes the event (never /events/alert).
	Publish(ctx context.Context, eventUUID string) (string, error)
}

// Sharers is what the engine needs of curator/sources.Table.
type Sharers interface {
	// Sharer returns the partner that shared an event: the remote org of serverID when
	// set (a pull), else the owner org ownerID ("" when that is a server link's own org).
	// known is false when an id is unknown; calls is the MISP calls a refresh made.
	Sharer(ctx context.Context, ownerID, serverID string) (uuid string, known bool, calls int)
}

// Source says what made the engine curate an event.
type Source string

const (
	// SourcePull: an add|edit_from_connected_server message (this MISP pulled it).
	SourcePull Source = "pull"
	// SourcePush: a locked add|edit row message not followed by *_from_connected_server
	// within the debounce (a partner pushed it, or a pull by numeric id).
	SourcePush Source = "push"
	// SourceCatchUp: Enqueue from the REST catch-up.
	SourceCatchUp Source = "catchup"
	// SourceRecuration: Enqueue after a trust change (index.Diff).
	SourceRecuration Source = "recuration"
	// SourceConfirm: the engine checks a publish MISP queued ("Job queued") and has not
	// confirmed yet (publish.go).
	SourceConfirm Source = "confirm"
)

// ErrQueueFull is the Outcome.Err of an event the engine refused because Options.MaxPending
// events are waiting: nothing was done, catch-up retries it at its next pass.
var ErrQueueFull = errors.New("curation queue full")

// Class groups curated events for the call-count metrics and the benchmark.
type Class string

const (
	ClassUntrustedPulled Class = "untrusted_pulled"
	ClassUntrustedPushed Class = "untrusted_pushed"
	ClassUntrusted       Class = "untrusted" // untrusted event from catch-up or re-curation
	ClassTagOnly         Class = "tag_only"
	ClassTagPublish      Class = "tag_publish"
)

// Hint is what an Enqueue caller already knows about the event.
type Hint struct {
	// Source of the request; "" means SourceCatchUp.
	Source Source
	// Meta, when set, is the event's metadata as a search just returned it
	// (misp.Client.SearchEvents): the curation then skips its own EventMeta read.
	Meta *misp.EventMeta
	// ReadAt is when the search that returned Meta was sent (the engine's clock). Meta
	// read before the engine's last change to the event describes the event before it,
	// and is not used. Zero: unknown (Meta is used).
	ReadAt time.Time
}

// Options configure an Engine. Only Index and MISP are required.
type Options struct {
	// Instance names the MISPInstance ("namespace/name") in logs, metrics and outcomes.
	Instance string
	// Index is the instance's trust index; it is read at every curation, so a policy
	// change applies to the next event at once.
	Index *index.Index
	// MISP is the client (its own rate limit and HTTP retries apply underneath).
	MISP MISP
	// Sharers resolves the numeric ids of the feed (Event.org_id, the server of a pull)
	// to the sharing organisation's UUID from an in-memory table (curator/sources). Used
	// only while a policy has sharingOrganisations; nil: events match by creator only.
	Sharers Sharers
	// Concurrency is the number of events curated in parallel; default 16. It is not
	// what protects MISP: the client's adaptive concurrency limit (misp/limiter.go) decides
	// how many calls are in flight, and a curation waits there for its turn. 16 leaves that
	// limit room to use a MISP of up to ~12 request workers (hack/bench -mode capacity).
	Concurrency int
	// PushDebounce is how long a locked add|edit row message waits for the rest of its
	// event (tags and attributes are saved after the row) when no *_from_connected_server
	// follows; every new row message for the event restarts it. Default 5s; negative → 0.
	PushDebounce time.Duration
	// CoalesceWindow is the wait after a misp_json (publish) for an event whose row
	// message is waiting for PushDebounce: misp_json is the last message of a published
	// push, but a pull still sends *_from_connected_server after it. Default 1s (capped by
	// PushDebounce); negative → never shorten the debounce.
	CoalesceWindow time.Duration
	// DryRun logs the plan of each event and calls nothing that writes (EventMeta reads
	// still happen). It can be changed later with SetDryRun.
	DryRun bool
	// ConfirmAfter is how long a publish MISP queued ("Job queued": a background worker
	// publishes later, or not at all) waits for a confirmation from the feed (its
	// misp_json) before the engine reads the event to check it; later checks back off up
	// to ConfirmMaxDelay. Defaults 30s and 5m. See publish.go.
	ConfirmAfter, ConfirmMaxDelay time.Duration
	// PublishFailedAfter: a queued publish is sent again once the event still reads as
	// unpublished this long after a publish the engine queued LATER was confirmed — the
	// workers took the jobs queued after ours, so ours failed or vanished. Default 5m.
	PublishFailedAfter time.Duration
	// PublishStuckAfter: unconfirmed publishes older than this are reported as stuck
	// (Unconfirmed().Stuck; MISP's workers down or losing jobs). Default 5m.
	PublishStuckAfter time.Duration
	// HintTTL is how long the engine remembers what the feed told about an event (creator
	// org, and tags + published after a misp_json). Default 2m.
	HintTTL time.Duration
	// MaxHints bounds the remembered events (oldest forgotten first): about 0.5 KB each
	// with a few tags, so the default 50,000 is at most ~25 MiB.
	MaxHints int
	// MaxPending bounds the events waiting or being curated; beyond it new events are
	// refused (an Outcome with ErrQueueFull: counted, logged, retried by catch-up). It
	// also bounds the unconfirmed publishes. Default 100,000.
	MaxPending int
	// MaxAttempts bounds the curations of one event after transient failures (MISP 5xx,
	// 429, network); the last failure is reported in Outcome.Err and the event is left to
	// catch-up. Default 5.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the capped exponential backoff (full jitter)
	// between attempts. Defaults 2s and 2m.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// CurationTimeout bounds one attempt (all its MISP calls). Default 2m.
	CurationTimeout time.Duration
	// Logger receives one line per curated event that changed something or failed;
	// per-event detail at V(1).
	Logger logr.Logger
	// Metrics (NewMetrics) may be shared by the engines of several instances; nil records
	// nothing.
	Metrics *Metrics
	// OnOutcome is called once per finished curation (success, failure after the last
	// attempt, untrusted, dry run) and once per refused hand-over (ErrQueueFull, an event
	// deleted while waiting), from a worker goroutine or the caller of HandleMessage or
	// Enqueue: keep it short. An Outcome with PublishPending is not final: another one
	// follows for the event once its publish is confirmed.
	OnOutcome func(Outcome)
	// Clock is the time source (tests); default the real clock.
	Clock Clock
}

// Outcome is the result of one curation of one event.
type Outcome struct {
	Instance  string
	Policy    string // winning policy key; "" when the creator org is untrusted
	EventUUID string
	OrgUUID   string // creator org; "" when it could not be read
	// SharerUUID is the partner that shared the event with this MISP (the pushing org,
	// or the remote org of the server it was pulled through); "" when unknown or not
	// needed (no policy has sharingOrganisations).
	SharerUUID string
	// Via says which rule of Policy matched: "creator" or "sharer".
	Via    trust.Via
	Source Source
	Class  Class

	Tagged bool // at least one policy tag was attached by this curation
	// Published: a publish of the engine took effect — MISP published synchronously, or a
	// publish it queued was confirmed by this curation (a read or misp_json shows the
	// event published after MISP answered "Job queued").
	Published bool
	// PublishQueued: this curation sent a publish that MISP queued (or whose outcome is
	// unknown); it is not counted as Published until confirmed.
	PublishQueued bool
	// PublishPending: a publish of the engine is still unconfirmed after this curation;
	// the event is not settled (catch-up holds its watermark), and a later Outcome says
	// how it ended.
	PublishPending bool
	// Republished: the publish sent by this curation replaces one whose job evidently
	// failed (a later publish was confirmed, this one not: Options.PublishFailedAfter).
	Republished       bool
	RemovedIncomplete bool // workflow:state="incomplete" was removed
	RemovedTags       []string
	AlreadyCurated    bool // trusted, and nothing was left to do
	DryRun            bool // the plan was logged, not applied
	// Skipped says why nothing was looked at: "local event" (not synchronised, locked
	// false), "event not found" (deleted before its curation).
	Skipped string
	Plan    Plan // what was (or, in a dry run, would have been) done

	// Calls is the number of MISP calls of this curation (every attempt, reads included).
	Calls int
	// Attempts is 1 plus the retries after transient failures.
	Attempts int
	// Err is the last error when the curation failed for good (non-retryable, or
	// MaxAttempts reached); the event is left to catch-up. Wraps a misp.Err* kind.
	Err error

	// Received is when the first message (or Enqueue) of this curation arrived; Due when
	// it became ready to run (the debounce ended, a pull completed); At when it finished.
	Received, Due, At time.Time
}

// Plan is what a curation does to one event, in this order.
type Plan struct {
	// Attach are the policy tags missing from the event, attached as local tags in one
	// call (workflow:state="complete" included for publishing policies).
	Attach []string
	// Remove are tags to detach, one call each: workflow:state="incomplete" for
	// publishing policies, and local admiralty-scale grades the policy no longer gives.
	Remove []string
	// Publish the event after the removals (also when a removal of a global tag is what
	// unpublished it).
	Publish bool
	// PublishIfUnpublished: publish only if removing a global tag unpublished the event
	// (the event is published now, or was published by us moments ago).
	PublishIfUnpublished bool
}

// Empty reports whether the plan does nothing.
func (p Plan) Empty() bool {
	return len(p.Attach) == 0 && len(p.Remove) == 0 && !p.Publish && !p.PublishIfUnpublished
}

// Clock is the engine's time source.
type Clock interface {
	Now() time.Time
	// NewTimer is time.NewTimer.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the engine uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}
