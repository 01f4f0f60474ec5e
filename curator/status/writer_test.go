package status

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// applies records what the writer applies; err, when set, is returned instead.
type applies struct {
	mu   sync.Mutex
	objs []*unstructured.Unstructured
	err  error
}

func (a *applies) ApplyStatus(_ context.Context, obj *unstructured.Unstructured) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.objs = append(a.objs, obj.DeepCopy())
	return nil
}

func (a *applies) take() []*unstructured.Unstructured {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.objs
	a.objs = nil
	return out
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

var (
	policyKey   = types.NamespacedName{Namespace: "sec", Name: "high"}
	instanceKey = types.NamespacedName{Namespace: "sec", Name: "misp"}
	t0          = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
)

func newWriter(t *testing.T, objs ...client.Object) (*Writer, *applies, *fakeClock) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	a := &applies{}
	clk := &fakeClock{now: t0}
	return NewWriter(Options{Applier: a, Reader: reader, Now: clk.Now}), a, clk
}

func policy(cur *v1alpha1.CurationStatus) *v1alpha1.OrgTrustPolicy {
	return &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high", UID: "uid-high"},
		Status:     v1alpha1.OrgTrustPolicyStatus{Curation: cur, Organisations: 3},
	}
}

func field(t *testing.T, obj *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if err != nil || !found {
		return nil
	}
	return v
}

func TestPolicyCountersContinueFromTheStatusAndOnlyChangesAreApplied(t *testing.T) {
	w, a, _ := newWriter(t, policy(&v1alpha1.CurationStatus{Tagged: 5, Published: 2, LastEventUUID: "old"}))
	ctx := context.Background()
	at := t0.Add(time.Minute)
	for _, o := range []Outcome{
		{EventUUID: "e1", Tagged: true},
		{EventUUID: "e2", Tagged: true, Published: true},
		{EventUUID: "e3", AlreadyCurated: true},
		{EventUUID: "e4", Err: errors.New("attach tags to event e4: server error")},
	} {
		o.Policy, o.Time = policyKey, at
		w.RecordOutcome(o)
	}
	w.Flush(ctx)
	got := a.take()
	if len(got) != 1 {
		t.Fatalf("%d applies, want 1", len(got))
	}
	obj := got[0]
	if obj.GetKind() != "OrgTrustPolicy" || obj.GetAPIVersion() != "misptrust.io/v1alpha1" ||
		obj.GetName() != "high" || obj.GetNamespace() != "sec" || obj.GetUID() != "uid-high" {
		t.Errorf("applied to %s %s/%s uid %s", obj.GetKind(), obj.GetNamespace(), obj.GetName(), obj.GetUID())
	}
	want := map[string]any{"tagged": int64(7), "published": int64(3), "alreadyCurated": int64(1), "failed": int64(1),
		"lastEventUUID": "e3", "lastEventTime": "2026-11-26T12:01:00Z", "lastError": "attach tags to event e4: server error"}
	cur, _ := field(t, obj, "status", "curation").(map[string]any)
	for k, v := range want {
		if n, ok := cur[k].(float64); ok {
			cur[k] = int64(n)
		}
		if cur[k] != v {
			t.Errorf("status.curation.%s = %v (%T), want %v", k, cur[k], cur[k], v)
		}
	}
	if st := field(t, obj, "status").(map[string]any); len(st) != 1 {
		t.Errorf("applied status fields %v, want only curation (the controller owns the others)", st)
	}

	w.Flush(ctx)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("a flush without new outcomes applied %d times", len(got))
	}
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e5", Time: at, Tagged: true})
	w.Flush(ctx)
	if got := a.take(); len(got) != 1 {
		t.Fatalf("a new outcome gave %d applies, want 1", len(got))
	}
}

func TestDeletedPolicyIsForgotten(t *testing.T) {
	w, a, _ := newWriter(t, policy(nil))
	a.err = apierrors.NewNotFound(schema.GroupResource{Group: "misptrust.io", Resource: "orgtrustpolicies"}, "high")
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e1", Tagged: true})
	w.Flush(context.Background())
	w.mu.Lock()
	n := len(w.policies)
	w.mu.Unlock()
	if n != 0 {
		t.Fatal("a policy that is gone is still tracked")
	}
}

func TestFailedApplyIsRetriedAtTheNextFlush(t *testing.T) {
	w, a, _ := newWriter(t, policy(nil))
	a.err = errors.New("connection refused")
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e1", Tagged: true})
	w.Flush(context.Background())
	a.err = nil
	w.Flush(context.Background())
	if got := a.take(); len(got) != 1 {
		t.Fatalf("%d applies after the apiserver recovered, want 1", len(got))
	}
}

func instance(st v1alpha1.MISPInstanceStatus) *v1alpha1.MISPInstance {
	return &v1alpha1.MISPInstance{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "misp", UID: "uid-misp", Generation: 3},
		Status:     st,
	}
}

func condition(t *testing.T, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	conds, _ := field(t, obj, "status", "conditions").([]any)
	if len(conds) != 1 {
		t.Fatalf("applied conditions %v, want exactly FeedConnected", conds)
	}
	return conds[0].(map[string]any)
}

func TestInstanceFeedStatusAndCondition(t *testing.T) {
	wm := metav1.NewTime(t0.Add(-time.Hour))
	w, a, clk := newWriter(t, instance(v1alpha1.MISPInstanceStatus{
		MISPVersion: "2.5.1", // the controller's
		CatchUp:     &v1alpha1.CatchUpStatus{Watermark: &wm, EventsScanned: 4},
	}))
	ctx := context.Background()
	feed := Feed{Configured: true, Endpoint: "tcp://misp:50000", Connected: true, ConnectedSince: t0,
		LastMessage: t0, LastHeartbeat: t0, Reconnects: 2}
	w.SetFeed(instanceKey, 3, feed)
	w.Flush(ctx)
	got := a.take()
	if len(got) != 1 {
		t.Fatalf("%d applies, want 1", len(got))
	}
	obj := got[0]
	c := condition(t, obj)
	if c["type"] != ConditionFeedConnected || c["status"] != "True" || c["reason"] != ReasonConnected ||
		c["observedGeneration"] != float64(3) || c["lastTransitionTime"] != "2026-11-26T12:00:00Z" {
		t.Errorf("condition %v", c)
	}
	if s := field(t, obj, "status", "feed", "state"); s != FeedStateConnected {
		t.Errorf("feed.state %v", s)
	}
	// The persisted watermark is part of every apply: leaving it out would delete it.
	if wmGot := field(t, obj, "status", "catchUp", "watermark"); wmGot != "2026-11-26T11:00:00Z" {
		t.Errorf("catchUp.watermark %v, want the persisted one carried along", wmGot)
	}
	if v := field(t, obj, "status", "mispVersion"); v != nil {
		t.Errorf("applied the controller's mispVersion %v", v)
	}

	// Heartbeats every 10 s: lastHeartbeatTime/lastMessageTime are rewritten only after 30 s.
	for i := 1; i <= 2; i++ {
		clk.now = t0.Add(time.Duration(i) * 10 * time.Second)
		feed.LastMessage, feed.LastHeartbeat = clk.now, clk.now
		w.SetFeed(instanceKey, 3, feed)
		w.Flush(ctx)
	}
	if got := a.take(); len(got) != 0 {
		t.Fatalf("heartbeats within 30s caused %d applies", len(got))
	}
	clk.now = t0.Add(30 * time.Second)
	feed.LastMessage, feed.LastHeartbeat = clk.now, clk.now
	w.SetFeed(instanceKey, 3, feed)
	w.Flush(ctx)
	got = a.take()
	if len(got) != 1 || field(t, got[0], "status", "feed", "lastHeartbeatTime") != "2026-11-26T12:00:30Z" {
		t.Fatalf("after 30s of heartbeats: %d applies", len(got))
	}

	// Nothing at all for 45 s: Silent, without any new SetFeed.
	clk.now = t0.Add(30*time.Second + DefaultSilentAfter)
	w.Flush(ctx)
	got = a.take()
	if len(got) != 1 {
		t.Fatalf("silence gave %d applies, want 1", len(got))
	}
	c = condition(t, got[0])
	if c["status"] != "False" || c["reason"] != ReasonSilent || c["lastTransitionTime"] != "2026-11-26T12:01:15Z" {
		t.Errorf("silent condition %v", c)
	}

	// A wrong password: the reason says why, the transition time stays (still False).
	clk.now = clk.now.Add(time.Minute)
	w.SetFeed(instanceKey, 3, Feed{Configured: true, Endpoint: "tcp://misp:50000", Reconnects: 3,
		LastError: "handshake failed: the publisher refused the PLAIN credentials", Failure: FailureHandshake})
	w.Flush(ctx)
	got = a.take()
	c = condition(t, got[0])
	if c["reason"] != ReasonHandshakeFailing || !strings.Contains(c["message"].(string), "refused the PLAIN credentials") ||
		c["lastTransitionTime"] != "2026-11-26T12:01:15Z" {
		t.Errorf("handshake condition %v", c)
	}
	if s := field(t, got[0], "status", "feed", "state"); s != FeedStateDisconnected {
		t.Errorf("feed.state %v, want Disconnected", s)
	}
}

func TestWatermarkComesFromTheStatusThenFromMemory(t *testing.T) {
	wm := metav1.NewTime(t0.Add(-time.Hour))
	w, a, _ := newWriter(t, instance(v1alpha1.MISPInstanceStatus{CatchUp: &v1alpha1.CatchUpStatus{Watermark: &wm}}))
	ctx := context.Background()
	got, err := w.Watermark(ctx, instanceKey)
	if err != nil || !got.Equal(wm.Time) {
		t.Fatalf("Watermark = %s, %v; want the persisted %s", got, err, wm.Time)
	}
	w.SetCatchUp(instanceKey, CatchUp{Watermark: t0, LastRun: t0.Add(time.Second), EventsScanned: 12})
	if got, _ := w.Watermark(ctx, instanceKey); !got.Equal(t0) {
		t.Fatalf("Watermark = %s after SetCatchUp, want %s", got, t0)
	}
	w.Flush(ctx)
	objs := a.take()
	if len(objs) != 1 || field(t, objs[0], "status", "catchUp", "watermark") != "2026-11-26T12:00:00Z" ||
		field(t, objs[0], "status", "catchUp", "eventsScanned") != float64(12) {
		t.Fatalf("applied %v", objs)
	}
	if c := field(t, objs[0], "status", "conditions"); c != nil {
		t.Errorf("applied conditions %v before any feed state was known", c)
	}
	if got, _ := w.Watermark(ctx, types.NamespacedName{Namespace: "sec", Name: "absent"}); !got.IsZero() {
		t.Errorf("Watermark of an unknown instance = %s, want zero", got)
	}
}

func TestFeedCondition(t *testing.T) {
	connected := Feed{Configured: true, Endpoint: "tcp://m:1", Connected: true, ConnectedSince: t0}
	cases := []struct {
		name   string
		feed   Feed
		now    time.Time
		status metav1.ConditionStatus
		reason string
	}{
		{"not configured", Feed{}, t0, metav1.ConditionFalse, ReasonNotConfigured},
		{"secret missing", Feed{Configured: true, Connected: true, ConfigError: `Secret "misp" does not exist`}, t0,
			metav1.ConditionFalse, ReasonInvalidConfiguration},
		{"first attempt", Feed{Configured: true}, t0, metav1.ConditionUnknown, ReasonConnecting},
		{"connected, no message yet", connected, t0.Add(10 * time.Second), metav1.ConditionTrue, ReasonConnected},
		{"connected and silent", connected, t0.Add(DefaultSilentAfter), metav1.ConditionFalse, ReasonSilent},
		{"refused", Feed{Configured: true, LastError: "connect: connection refused", Failure: FailureConnect}, t0,
			metav1.ConditionFalse, ReasonUnreachable},
		{"wrong password", Feed{Configured: true, LastError: "handshake failed", Failure: FailureHandshake}, t0,
			metav1.ConditionFalse, ReasonHandshakeFailing},
		{"redialled after silence", Feed{Configured: true, LastError: "nothing received", Failure: FailureSilence}, t0,
			metav1.ConditionFalse, ReasonSilent},
		{"lost", Feed{Configured: true, LastError: "connection lost: EOF", Failure: FailureLost}, t0,
			metav1.ConditionFalse, ReasonConnecting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, reason, msg := feedCondition(tc.feed, tc.now, DefaultSilentAfter)
			if st != tc.status || reason != tc.reason || msg == "" {
				t.Fatalf("= %s %s %q, want %s %s", st, reason, msg, tc.status, tc.reason)
			}
		})
	}
}
