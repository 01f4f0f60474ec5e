package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
)

// recorded drains the fake recorder: one "Type Reason note" string per Event.
func recorded(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func withRecorder(w *Writer) *events.FakeRecorder {
	r := events.NewFakeRecorder(100)
	w.opts.Recorder = r
	return r
}

func TestDryRunCountsEachEventOnceAndContinuesFromTheStatus(t *testing.T) {
	w, a, _ := newWriter(t, policy(&v1alpha1.CurationStatus{Tagged: 5, WouldTag: 10, WouldPublish: 4}))
	for _, o := range []Outcome{
		{EventUUID: "e1", DryRun: true, WouldTag: true, WouldPublish: true},
		{EventUUID: "e2", DryRun: true, WouldTag: true},
		// A duplicate message and a catch-up pass plan e1 again: still one event.
		{EventUUID: "e1", DryRun: true, WouldTag: true, WouldPublish: true},
		{EventUUID: "e1", DryRun: true, WouldTag: true, WouldPublish: true},
		// Nothing left to do needs no dry run: counted as already curated.
		{EventUUID: "e3", AlreadyCurated: true},
	} {
		o.Policy = policyKey
		w.RecordOutcome(o)
	}
	w.Flush(context.Background())
	got := a.take()
	if len(got) != 1 {
		t.Fatalf("%d applies, want 1", len(got))
	}
	cur, _ := field(t, got[0], "status", "curation").(map[string]any)
	want := map[string]float64{"wouldTag": 12, "wouldPublish": 5, "tagged": 5, "alreadyCurated": 1}
	for k, v := range want {
		if cur[k] != v {
			t.Errorf("status.curation.%s = %v, want %v", k, cur[k], v)
		}
	}
	if _, ok := cur["published"]; ok {
		t.Errorf("a dry run counted a publish: %v", cur)
	}
	if cur["lastEventUUID"] != "e3" {
		t.Errorf("lastEventUUID = %v: a dry run curated nothing, the last curated event is e3", cur["lastEventUUID"])
	}
}

func TestRecentSetForgetsTheOldestBeyondItsBound(t *testing.T) {
	var r recentSet
	for i := 0; i < 5; i++ {
		if !r.add(fmt.Sprint(i), 3) {
			t.Fatalf("%d reported as seen", i)
		}
	}
	for _, s := range []string{"2", "3", "4"} {
		if r.add(s, 3) {
			t.Errorf("%s forgotten, want the last 3 remembered", s)
		}
	}
	if !r.add("0", 3) {
		t.Error("0 still remembered beyond the bound")
	}
	if len(r.set) != 3 || len(r.ring) != 3 {
		t.Fatalf("set %d, ring %d: want both bounded at 3", len(r.set), len(r.ring))
	}
}

func refusal(uuid string) error {
	return fmt.Errorf("curate event %s: publish: %w", uuid, &misp.APIError{Op: "publish event " + uuid, Method: "POST",
		Endpoint: "/events/publish/{id}", Status: 405, Kind: misp.ErrNotAllowed, Message: "You do not have the permission to do that."})
}

func TestFailuresAreOneEventPerFlushAndRefusedPublishesAreNamed(t *testing.T) {
	w, _, _ := newWriter(t, policy(nil))
	rec := withRecorder(w)
	ctx := context.Background()
	w.Flush(ctx)
	if got := recorded(rec); len(got) != 0 {
		t.Fatalf("Events without outcomes: %q", got)
	}

	for i := 1; i <= 3; i++ {
		w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: fmt.Sprintf("e%d", i), Err: errors.New("attach tags: server error")})
	}
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e4", Tagged: true})
	w.Flush(ctx)
	got := recorded(rec)
	if len(got) != 1 || !strings.HasPrefix(got[0], "Warning CurationFailed 3 curations failed for good (last: event e3: attach tags: server error)") {
		t.Fatalf("Events %q, want one CurationFailed for the three failures", got)
	}
	w.Flush(ctx)
	if got := recorded(rec); len(got) != 0 {
		t.Fatalf("a flush without new failures emitted %q", got)
	}

	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e5", Err: refusal("e5")})
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e6", Err: refusal("e6")})
	w.Flush(ctx)
	got = recorded(rec)
	if len(got) != 1 || !strings.HasPrefix(got[0], "Warning PublishRefused MISP refused to publish 2 events of this policy (last: event e6:") ||
		!strings.Contains(got[0], "HTTP 405") || !strings.Contains(got[0], "site-admin") {
		t.Fatalf("Events %q, want one PublishRefused naming the fix", got)
	}

	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e7", Err: errors.New("read metadata: timeout")})
	w.RecordOutcome(Outcome{Policy: policyKey, EventUUID: "e8", Err: refusal("e8")})
	w.Flush(ctx)
	got = recorded(rec)
	if len(got) != 2 || !strings.HasPrefix(got[0], "Warning PublishRefused MISP refused to publish 1 event ") ||
		!strings.HasPrefix(got[1], "Warning CurationFailed 1 curation failed for good.") {
		t.Fatalf("Events %q, want a refusal and another failure", got)
	}
}

func TestPublishRefused(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"405 on publish (not a site admin)", refusal("e"), true},
		{"403 removing the partner's global tag", &misp.APIError{Endpoint: "/tags/removeTagFromObject", Status: 403, Kind: misp.ErrForbidden}, true},
		{"403 attaching tags (another problem)", &misp.APIError{Endpoint: "/tags/attachTagToObject", Status: 403, Kind: misp.ErrForbidden}, false},
		{"500 on publish (transient)", &misp.APIError{Endpoint: "/events/publish/{id}", Status: 500, Kind: misp.ErrServer}, false},
		{"not a MISP answer", errors.New("context deadline exceeded"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := publishRefused(fmt.Errorf("curate: %w", c.err)); got != c.want {
				t.Errorf("publishRefused = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFeedEventsFollowWhatThisProcessWrote(t *testing.T) {
	w, _, clk := newWriter(t, instance(v1alpha1.MISPInstanceStatus{}))
	rec := withRecorder(w)
	ctx := context.Background()
	endpoint := "tcp://misp:50000"
	step := func(name string, f Feed, want ...string) {
		t.Helper()
		clk.now = clk.now.Add(time.Second)
		f.Configured, f.Endpoint = true, endpoint
		w.SetFeed(instanceKey, 3, f)
		w.Flush(ctx)
		got := recorded(rec)
		if len(got) != len(want) {
			t.Fatalf("%s: Events %q, want %d starting %q", name, got, len(want), want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("%s: Event %q, want it to start %q", name, got[i], want[i])
			}
		}
	}
	step("first dial", Feed{})
	step("connected", Feed{Connected: true, ConnectedSince: clk.now.Add(time.Second)},
		"Normal FeedConnected ZeroMQ feed subscribed to tcp://misp:50000.")
	step("still connected, a message", Feed{Connected: true, ConnectedSince: clk.now, LastMessage: clk.now.Add(time.Second)})
	step("lost", Feed{LastError: "EOF", Failure: FailureLost},
		"Warning FeedLost ZeroMQ feed lost (Connecting): tcp://misp:50000: EOF; redialling. Catch-up recovers")
	step("redial refused", Feed{LastError: "connection refused", Failure: FailureConnect},
		"Warning FeedConnectFailed ZeroMQ feed cannot connect (Unreachable): tcp://misp:50000: connection refused.")
	step("still refused", Feed{LastError: "connection refused", Failure: FailureConnect, Reconnects: 3})
	step("back", Feed{Connected: true, ConnectedSince: clk.now.Add(time.Second)}, "Normal FeedConnected")

	t.Run("a restarted curator reading Connected from the status lost nothing", func(t *testing.T) {
		connected := metav1.Condition{Type: ConditionFeedConnected, Status: metav1.ConditionTrue, Reason: ReasonConnected,
			Message: "subscribed to " + endpoint, ObservedGeneration: 3, LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))}
		w, a, _ := newWriter(t, instance(v1alpha1.MISPInstanceStatus{Conditions: []metav1.Condition{connected}}))
		w.opts.Recorder = rec
		w.SetFeed(instanceKey, 3, Feed{Configured: true, Endpoint: endpoint, LastError: "EOF", Failure: FailureLost})
		w.Flush(ctx)
		if n := len(a.take()); n != 1 {
			t.Fatalf("%d applies, want 1 (the condition changed)", n)
		}
		if got := recorded(rec); len(got) != 0 {
			t.Fatalf("Events %q at the first dial of a new process", got)
		}
	})
}
