package status

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// FieldManager is the server-side-apply field manager of everything the curator writes.
const FieldManager = "misp-trust-curator"

// Defaults for zero Options fields.
const (
	DefaultFlushInterval         = 5 * time.Second
	DefaultMessageTimeResolution = 30 * time.Second
	DefaultSilentAfter           = 45 * time.Second
)

// Applier server-side-applies a partial object (apiVersion, kind, name, namespace, uid and
// the curator's status fields) to the status subresource.
type Applier interface {
	ApplyStatus(ctx context.Context, obj *unstructured.Unstructured) error
}

// ClientApplier applies with a controller-runtime client under FieldManager, forcing
// ownership of the curator's own fields.
type ClientApplier struct{ Client client.Client }

// ApplyStatus implements Applier.
func (a ClientApplier) ApplyStatus(ctx context.Context, obj *unstructured.Unstructured) error {
	return a.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner(FieldManager), client.ForceOwnership)
}

// Options configure a Writer.
type Options struct {
	// Applier writes the statuses; Reader reads the objects once, for the values the curator
	// wrote before (counters, watermark, the condition's transition time): usually the
	// manager's cache-backed client.
	Applier Applier
	Reader  client.Reader
	// FlushInterval: each object is applied at most once per interval (default 5s).
	FlushInterval time.Duration
	// MessageTimeResolution: status.feed.lastMessageTime and lastHeartbeatTime are only
	// rewritten when they moved by at least this much (default 30s).
	MessageTimeResolution time.Duration
	// SilentAfter: a connected feed with nothing received for this long is reported Silent
	// (default 45s; MISP sends a heartbeat after 10 s idle).
	SilentAfter time.Duration
	Now         func() time.Time
	Logger      logr.Logger
	Metrics     *Metrics
	// Recorder, when set, receives the curator's Events (events.go): the feed connected,
	// lost or failing on MISPInstances; failed curations and refused publishes on policies.
	Recorder events.EventRecorder
}

// CatchUp is the catch-up progress of one instance.
type CatchUp struct {
	Watermark     time.Time
	LastRun       time.Time
	EventsScanned int64
	SkippedRows   int64
}

// Writer batches the curator's status changes and applies them. It is safe for concurrent
// use; Run does the writing.
type Writer struct {
	opts Options
	log  logr.Logger

	mu        sync.Mutex
	policies  map[types.NamespacedName]*policyEntry
	instances map[types.NamespacedName]*instanceEntry
}

type policyEntry struct {
	loaded  bool
	uid     types.UID
	base    v1alpha1.CurationStatus // what the status held when first read
	acc     curation                // outcomes since
	written *v1alpha1.CurationStatus
	// unconfirmed is the policy's unconfirmed publishes now (SetUnconfirmed): a level,
	// not added to the baseline.
	unconfirmed int64
}

type instanceEntry struct {
	loaded     bool
	uid        types.UID
	generation int64
	feed       *Feed
	catchUp    *v1alpha1.CatchUpStatus
	// What the status held or what was last written; the apply always carries every
	// curator field, because a server-side apply drops the fields its manager owned and
	// left out (the watermark must never vanish that way).
	feedStatus  *v1alpha1.FeedStatus
	cond        *metav1.Condition
	lastCatchUp *v1alpha1.CatchUpStatus
	// writtenReason is FeedConnected's reason as this process last wrote it ("" before its
	// first write): what the feed Events compare with.
	writtenReason string
	publishing    *Publishing       // set by SetPublishing; nil: no PublishesConfirmed yet
	pubCond       *metav1.Condition // PublishesConfirmed as read or last written
}

// NewWriter returns a Writer; nothing is written until Run.
func NewWriter(opts Options) *Writer {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.MessageTimeResolution <= 0 {
		opts.MessageTimeResolution = DefaultMessageTimeResolution
	}
	if opts.SilentAfter <= 0 {
		opts.SilentAfter = DefaultSilentAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return &Writer{
		opts:      opts,
		log:       log,
		policies:  map[types.NamespacedName]*policyEntry{},
		instances: map[types.NamespacedName]*instanceEntry{},
	}
}

// RecordOutcome adds one curation outcome to its policy's counters.
func (w *Writer) RecordOutcome(o Outcome) {
	if o.Policy.Name == "" {
		return
	}
	if o.Time.IsZero() {
		o.Time = w.opts.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.policies[o.Policy]
	if e == nil {
		e = &policyEntry{}
		w.policies[o.Policy] = e
	}
	e.acc.add(o)
}

// SetUnconfirmed records how many of the policy's events wait for the confirmation of a
// publish MISP queued (status.curation.publishesUnconfirmed).
func (w *Writer) SetUnconfirmed(policy types.NamespacedName, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.policies[policy]
	if e == nil {
		if n == 0 {
			return
		}
		e = &policyEntry{}
		w.policies[policy] = e
	}
	e.unconfirmed = int64(n)
}

// SetPublishing records the state of an instance's queued publishes (the
// PublishesConfirmed condition); generation is as for SetFeed.
func (w *Writer) SetPublishing(instance types.NamespacedName, generation int64, p Publishing) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.instance(instance)
	e.generation = generation
	e.publishing = &p
}

// SetFeed records the feed state of an instance; generation is the MISPInstance generation
// the pipeline was built from (the condition's observedGeneration).
func (w *Writer) SetFeed(instance types.NamespacedName, generation int64, f Feed) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.instance(instance)
	e.generation = generation
	e.feed = &f
}

// SetCatchUp records the catch-up progress of an instance.
func (w *Writer) SetCatchUp(instance types.NamespacedName, c CatchUp) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.instance(instance)
	cs := &v1alpha1.CatchUpStatus{EventsScanned: c.EventsScanned, SkippedRows: c.SkippedRows}
	if !c.Watermark.IsZero() {
		t := metav1.NewTime(c.Watermark.UTC().Truncate(time.Second))
		cs.Watermark = &t
	}
	if !c.LastRun.IsZero() {
		t := metav1.NewTime(c.LastRun.UTC().Truncate(time.Second))
		cs.LastRunTime = &t
	}
	e.catchUp = cs
}

func (w *Writer) instance(key types.NamespacedName) *instanceEntry {
	e := w.instances[key]
	if e == nil {
		e = &instanceEntry{}
		w.instances[key] = e
	}
	return e
}

// Watermark is the instance's catch-up watermark: the last one recorded in this process, or
// the one persisted in status.catchUp.watermark. Zero when there is none.
func (w *Writer) Watermark(ctx context.Context, instance types.NamespacedName) (time.Time, error) {
	w.mu.Lock()
	if e := w.instances[instance]; e != nil && e.catchUp != nil && e.catchUp.Watermark != nil {
		t := e.catchUp.Watermark.Time
		w.mu.Unlock()
		return t, nil
	}
	w.mu.Unlock()
	var obj v1alpha1.MISPInstance
	if err := w.opts.Reader.Get(ctx, instance, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("read catch-up watermark of MISPInstance %s: %w", instance, err)
	}
	if obj.Status.CatchUp == nil || obj.Status.CatchUp.Watermark == nil {
		return time.Time{}, nil
	}
	return obj.Status.CatchUp.Watermark.Time, nil
}

// Run flushes every FlushInterval until ctx ends. It does not flush at the end: the caller
// decides whether a last Flush is right (the curator does one once its pipelines stopped).
func (w *Writer) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.Flush(ctx)
		}
	}
}

// Flush applies every object whose curator fields differ from what was last written.
func (w *Writer) Flush(ctx context.Context) {
	w.mu.Lock()
	pkeys := make([]types.NamespacedName, 0, len(w.policies))
	for k := range w.policies {
		pkeys = append(pkeys, k)
	}
	ikeys := make([]types.NamespacedName, 0, len(w.instances))
	for k := range w.instances {
		ikeys = append(ikeys, k)
	}
	w.mu.Unlock()
	sortKeys(pkeys)
	sortKeys(ikeys)
	for _, k := range pkeys {
		if ctx.Err() != nil {
			return
		}
		w.flushPolicy(ctx, k)
	}
	for _, k := range ikeys {
		if ctx.Err() != nil {
			return
		}
		w.flushInstance(ctx, k)
	}
}

func sortKeys(keys []types.NamespacedName) {
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
}

// ---- OrgTrustPolicy ----

func (w *Writer) flushPolicy(ctx context.Context, key types.NamespacedName) {
	w.mu.Lock()
	e := w.policies[key]
	loaded := e != nil && e.loaded
	w.mu.Unlock()
	if e == nil {
		return
	}
	if !loaded {
		var obj v1alpha1.OrgTrustPolicy
		if err := w.opts.Reader.Get(ctx, key, &obj); err != nil {
			if apierrors.IsNotFound(err) {
				w.dropPolicy(key, e)
				return
			}
			w.log.Error(err, "read OrgTrustPolicy for its curation counters; retrying at the next flush", "policy", key)
			return
		}
		w.mu.Lock()
		e.loaded, e.uid = true, obj.UID
		if obj.Status.Curation != nil {
			e.base = *obj.Status.Curation.DeepCopy()
		}
		w.mu.Unlock()
	}

	w.mu.Lock()
	want := e.desired()
	uid := e.uid
	unchanged := curationEqual(want, e.written)
	w.mu.Unlock()
	w.emitPolicyEvents(key, uid, e)
	if unchanged {
		return
	}
	obj, err := partial(KindPolicy, key, uid, map[string]any{"curation": want})
	if err == nil {
		err = w.opts.Applier.ApplyStatus(ctx, obj)
	}
	switch {
	case err == nil:
		w.opts.Metrics.apply(KindPolicy, resultApplied)
		w.mu.Lock()
		e.written = want
		w.mu.Unlock()
	case apierrors.IsNotFound(err):
		w.opts.Metrics.apply(KindPolicy, resultNotFound)
		w.dropPolicy(key, e)
	case apierrors.IsConflict(err):
		// The uid precondition failed: the policy was deleted and created again under the
		// same name. Start over from the new object's status.
		w.opts.Metrics.apply(KindPolicy, resultError)
		w.mu.Lock()
		e.loaded, e.written = false, nil
		e.base = v1alpha1.CurationStatus{}
		w.mu.Unlock()
	default:
		w.opts.Metrics.apply(KindPolicy, resultError)
		w.log.Error(err, "apply OrgTrustPolicy status.curation; retrying at the next flush", "policy", key)
	}
}

func (w *Writer) dropPolicy(key types.NamespacedName, e *policyEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.policies[key] == e {
		delete(w.policies, key)
	}
}

// desired is the baseline plus what happened since.
func (e *policyEntry) desired() *v1alpha1.CurationStatus {
	out := e.base.DeepCopy()
	a := e.acc.cur
	out.Tagged += a.Tagged
	out.Published += a.Published
	out.AlreadyCurated += a.AlreadyCurated
	out.Failed += a.Failed
	out.WouldTag += a.WouldTag
	out.WouldPublish += a.WouldPublish
	out.Republished += a.Republished
	out.PublishesUnconfirmed = e.unconfirmed
	if a.LastEventUUID != "" {
		out.LastEventUUID = a.LastEventUUID
		out.LastEventTime = a.LastEventTime.DeepCopy()
	}
	if a.LastError != "" {
		out.LastError = a.LastError
	}
	return out
}

// ---- MISPInstance ----

func (w *Writer) flushInstance(ctx context.Context, key types.NamespacedName) {
	w.mu.Lock()
	e := w.instances[key]
	loaded := e != nil && e.loaded
	w.mu.Unlock()
	if e == nil {
		return
	}
	if !loaded {
		var obj v1alpha1.MISPInstance
		if err := w.opts.Reader.Get(ctx, key, &obj); err != nil {
			if apierrors.IsNotFound(err) {
				w.dropInstance(key, e)
				return
			}
			w.log.Error(err, "read MISPInstance for the curator's status; retrying at the next flush", "instance", key)
			return
		}
		w.mu.Lock()
		e.loaded, e.uid = true, obj.UID
		if obj.Status.CatchUp != nil {
			e.lastCatchUp = obj.Status.CatchUp.DeepCopy()
			if e.catchUp == nil {
				e.catchUp = obj.Status.CatchUp.DeepCopy()
			}
		}
		if obj.Status.Feed != nil {
			e.feedStatus = obj.Status.Feed.DeepCopy()
		}
		for i := range obj.Status.Conditions {
			switch obj.Status.Conditions[i].Type {
			case ConditionFeedConnected:
				e.cond = obj.Status.Conditions[i].DeepCopy()
			case ConditionPublishesConfirmed:
				e.pubCond = obj.Status.Conditions[i].DeepCopy()
			}
		}
		w.mu.Unlock()
	}

	now := w.opts.Now()
	w.mu.Lock()
	feed, cond, pubCond, changed := e.desired(now, w.opts)
	uid := e.uid
	catchUp := e.catchUp.DeepCopy()
	w.mu.Unlock()
	if !changed {
		return
	}
	status := map[string]any{}
	if feed != nil {
		status["feed"] = feed
	}
	if catchUp != nil {
		status["catchUp"] = catchUp
	}
	var conds []*metav1.Condition
	for _, c := range []*metav1.Condition{cond, pubCond} {
		if c != nil {
			conds = append(conds, c)
		}
	}
	if len(conds) > 0 {
		status["conditions"] = conds
	}
	obj, err := partial(KindInstance, key, uid, status)
	if err == nil {
		err = w.opts.Applier.ApplyStatus(ctx, obj)
	}
	switch {
	case err == nil:
		w.opts.Metrics.apply(KindInstance, resultApplied)
		w.mu.Lock()
		e.feedStatus, e.cond, e.pubCond, e.lastCatchUp = feed, cond, pubCond, catchUp
		prevReason := e.writtenReason
		if cond != nil {
			e.writtenReason = cond.Reason
		}
		w.mu.Unlock()
		w.emitFeedEvent(key, uid, prevReason, cond)
	case apierrors.IsNotFound(err):
		w.opts.Metrics.apply(KindInstance, resultNotFound)
		w.dropInstance(key, e)
	case apierrors.IsConflict(err):
		w.opts.Metrics.apply(KindInstance, resultError)
		w.mu.Lock()
		e.loaded, e.feedStatus, e.cond, e.pubCond, e.lastCatchUp = false, nil, nil, nil, nil
		w.mu.Unlock()
	default:
		w.opts.Metrics.apply(KindInstance, resultError)
		w.log.Error(err, "apply MISPInstance curator status; retrying at the next flush", "instance", key)
	}
}

func (w *Writer) dropInstance(key types.NamespacedName, e *instanceEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.instances[key] == e {
		delete(w.instances, key)
	}
}

// desired computes status.feed, FeedConnected and PublishesConfirmed and reports whether
// anything differs from what was last written (or read from the object at first). Caller
// holds the lock.
func (e *instanceEntry) desired(now time.Time, o Options) (*v1alpha1.FeedStatus, *metav1.Condition, *metav1.Condition, bool) {
	feed, cond, pubCond := e.feedStatus, e.cond, e.pubCond
	if e.publishing != nil {
		st, reason, msg := publishingCondition(*e.publishing)
		c := metav1.Condition{Type: ConditionPublishesConfirmed, Status: st, Reason: reason, Message: msg,
			ObservedGeneration: e.generation, LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second))}
		if e.pubCond != nil && e.pubCond.Status == st {
			c.LastTransitionTime = e.pubCond.LastTransitionTime
		}
		pubCond = &c
	}
	if e.feed != nil {
		feed = feedStatus(*e.feed, e.feedStatus, o.MessageTimeResolution)
		st, reason, msg := feedCondition(*e.feed, now, o.SilentAfter)
		c := metav1.Condition{Type: ConditionFeedConnected, Status: st, Reason: reason, Message: msg,
			ObservedGeneration: e.generation, LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second))}
		if e.cond != nil && e.cond.Status == st {
			c.LastTransitionTime = e.cond.LastTransitionTime
		}
		cond = &c
	}
	changed := !feedStatusEqual(feed, e.feedStatus) || !conditionEqual(cond, e.cond) ||
		!conditionEqual(pubCond, e.pubCond) || !catchUpEqual(e.catchUp, e.lastCatchUp)
	return feed, cond, pubCond, changed
}

func conditionEqual(a, b *metav1.Condition) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message &&
		a.ObservedGeneration == b.ObservedGeneration && a.LastTransitionTime.Unix() == b.LastTransitionTime.Unix()
}

// partial builds the object to apply: identity plus the given status fields only.
func partial(kind string, key types.NamespacedName, uid types.UID, status map[string]any) (*unstructured.Unstructured, error) {
	// Through JSON, so the API types' json tags and omitempty decide the field names.
	raw, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s status: %w", kind, key, err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("encode %s %s status: %w", kind, key, err)
	}
	meta := map[string]any{"name": key.Name, "namespace": key.Namespace}
	if uid != "" {
		// A precondition: never write counters of a deleted policy onto a new one of the same name.
		meta["uid"] = string(uid)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       kind,
		"metadata":   meta,
		"status":     st,
	}}, nil
}
