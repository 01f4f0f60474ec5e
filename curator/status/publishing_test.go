package status

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

func conditionOf(t *testing.T, obj *unstructured.Unstructured, typ string) map[string]any {
	t.Helper()
	conds, _ := field(t, obj, "status", "conditions").([]any)
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == typ {
			return m
		}
	}
	t.Fatalf("no %s in the applied conditions %v", typ, conds)
	return nil
}

func TestPublishesConfirmedCondition(t *testing.T) {
	// The FeedConnected condition the curator wrote earlier is carried along.
	w, a, clk := newWriter(t, instance(v1alpha1.MISPInstanceStatus{Conditions: []metav1.Condition{{
		Type: ConditionFeedConnected, Status: metav1.ConditionTrue, Reason: ReasonConnected, Message: "subscribed",
		LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour)), ObservedGeneration: 3}}}))
	ctx := context.Background()
	p := Publishing{Unconfirmed: 4, StuckAfter: 5 * time.Minute, Oldest: t0}
	w.SetPublishing(instanceKey, 3, p)
	w.Flush(ctx)
	got := a.take()
	if len(got) != 1 {
		t.Fatalf("%d applies, want 1", len(got))
	}
	c := conditionOf(t, got[0], ConditionPublishesConfirmed)
	if c["status"] != "True" || c["reason"] != ReasonConfirmed {
		t.Fatalf("condition %v", c)
	}
	if f := conditionOf(t, got[0], ConditionFeedConnected); f["message"] != "subscribed" {
		t.Fatalf("FeedConnected not carried along: %v", f)
	}
	// Publishes in flight that are not stuck change nothing.
	p.Unconfirmed = 9
	w.SetPublishing(instanceKey, 3, p)
	w.Flush(ctx)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("%d applies for a change of the in-flight count", len(got))
	}
	// The workers stopped: publishes pile up.
	clk.now = t0.Add(6 * time.Minute)
	p.Stuck = 3
	w.SetPublishing(instanceKey, 3, p)
	w.Flush(ctx)
	got = a.take()
	c = conditionOf(t, got[0], ConditionPublishesConfirmed)
	if c["status"] != "False" || c["reason"] != ReasonUnconfirmed || c["lastTransitionTime"] != "2026-11-26T12:06:00Z" ||
		!strings.Contains(c["message"].(string), "3 publish(es)") || !strings.Contains(c["message"].(string), "2026-11-26T12:00:00Z") {
		t.Fatalf("condition %v", c)
	}
}

func TestPolicyUnconfirmedAndRepublished(t *testing.T) {
	w, a, _ := newWriter(t, policy(&v1alpha1.CurationStatus{Published: 2, Republished: 1}))
	ctx := context.Background()
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e1", Time: t0})                    // a queued publish: nothing counted
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e2", Time: t0, Published: true})   // confirmed
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e3", Time: t0, Republished: true}) // sent again
	w.SetUnconfirmed(policyKey, 2)
	w.Flush(ctx)
	got := a.take()
	cur, _ := field(t, got[0], "status", "curation").(map[string]any)
	if cur["published"] != float64(3) || cur["republished"] != float64(2) || cur["publishesUnconfirmed"] != float64(2) {
		t.Fatalf("status.curation %v", cur)
	}
	w.SetUnconfirmed(policyKey, 0)
	w.Flush(ctx)
	got = a.take()
	cur, _ = field(t, got[0], "status", "curation").(map[string]any)
	if _, has := cur["publishesUnconfirmed"]; has || cur["published"] != float64(3) {
		t.Fatalf("status.curation %v, want publishesUnconfirmed gone (0)", cur)
	}
}
