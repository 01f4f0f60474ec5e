package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

func partnerEvent(org string, published bool, tags ...misptest.EventTag) misptest.Event {
	name := map[string]string{orgHigh: "PARTNER-HIGH", orgMedium: "PARTNER-SUB", orgUntrusted: "STRANGER"}[org]
	return misptest.Event{Orgc: misptest.Org{Name: name, UUID: org}, Published: published, Attributes: 3, Tags: tags}
}

var (
	tlpGreen      = misptest.EventTag{Name: "tlp:green"}
	incompleteTag = misptest.EventTag{Name: incomplete}
)

func noPublishHint(m feed.Message) bool { return m.Kind != feed.KindPublish }
func onlyPull(m feed.Message) bool      { return m.Action.FromConnectedServer() }

// curatedHigh is the state of a high-policy event after its curation.
var curatedHigh = []string{gradeA + " local", "tlp:green global", complete + " local"}

func TestPulledEvents(t *testing.T) {
	cases := []struct {
		name      string
		event     misptest.Event
		deliver   func(feed.Message) bool
		wantCalls int
		budget    int
		wantClass Class
		wantTags  []string
		wantPub   bool
	}{
		{"high org, published with the partner's incomplete: attach, remove, publish (misp_json told the tags)",
			partnerEvent(orgHigh, true, tlpGreen, incompleteTag), nil, 3, 4, ClassTagPublish, curatedHigh, true},
		{"high org, misp_json lost: one metadata read more",
			partnerEvent(orgHigh, true, tlpGreen, incompleteTag), noPublishHint, 4, 4, ClassTagPublish, curatedHigh, true},
		{"high org, unpublished partner event (pull by uuid, no misp_json): read, attach, remove, publish",
			partnerEvent(orgHigh, false, tlpGreen, incompleteTag), nil, 4, 4, ClassTagPublish, curatedHigh, true},
		{"high org, published without incomplete: one attach",
			partnerEvent(orgHigh, true, tlpGreen), nil, 1, 4, ClassTagPublish, curatedHigh, true},
		{"medium org: one attach, the partner's incomplete stays and nothing is published",
			partnerEvent(orgMedium, true, incompleteTag), nil, 1, 2, ClassTagOnly, []string{gradeC + " local", incomplete + " global"}, true},
		{"medium org, misp_json lost: read and attach",
			partnerEvent(orgMedium, true, tlpGreen), noPublishHint, 2, 2, ClassTagOnly, []string{gradeC + " local", "tlp:green global"}, true},
		{"untrusted org named by the row message: no call",
			partnerEvent(orgUntrusted, true, tlpGreen, incompleteTag), nil, 0, 0, ClassUntrustedPulled, []string{"tlp:green global", incomplete + " global"}, true},
		{"untrusted org, row message lost: one read",
			partnerEvent(orgUntrusted, true, tlpGreen), onlyPull, 1, 1, ClassUntrustedPulled, []string{"tlp:green global"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEnv(t, envConfig{})
			pulled := ev.srv.SimulatePull(tc.event)
			ev.srv.ResetStats()
			ev.deliver(tc.deliver)
			o := ev.outcome()
			ev.idle()
			if o.Err != nil {
				t.Fatalf("outcome error: %v", o.Err)
			}
			if o.EventUUID != pulled.UUID || o.Source != SourcePull || o.Class != tc.wantClass {
				t.Errorf("outcome %+v", o)
			}
			if o.Calls != tc.wantCalls || ev.calls() != tc.wantCalls || o.Calls > tc.budget {
				t.Errorf("calls: outcome %d, MISP saw %d %v; want %d (budget %d)", o.Calls, ev.calls(), ev.srv.CallsByRoute(), tc.wantCalls, tc.budget)
			}
			got, _ := ev.srv.Event(pulled.UUID)
			if !reflect.DeepEqual(tagState(got), tc.wantTags) || got.Published != tc.wantPub {
				t.Errorf("event tags %q published %v; want %q %v", tagState(got), got.Published, tc.wantTags, tc.wantPub)
			}
			if ev.srv.Calls("/events/alert") != 0 {
				t.Error("the curator must never call /events/alert")
			}
		})
	}
}

func TestPullEditOfCuratedEventRestoresState(t *testing.T) {
	ev := newEnv(t, envConfig{})
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.deliver(nil)
	if o := ev.outcome(); !o.Published || !o.RemovedIncomplete {
		t.Fatalf("first curation %+v", o)
	}
	ev.idle()
	// The partner edits and republishes: the pull brings the global incomplete back
	// (sync/api/83); our local tags survive.
	ev.srv.SimulatePullEdit(e.UUID, func(p *misptest.Event) { p.Attributes++ })
	ev.srv.ResetStats()
	ev.deliver(nil)
	o := ev.outcome()
	if o.Err != nil || o.Tagged || !o.RemovedIncomplete || !o.Published || o.Calls != 2 {
		t.Fatalf("second curation %+v (calls by route %v)", o, ev.srv.CallsByRoute())
	}
	got, _ := ev.srv.Event(e.UUID)
	if !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
		t.Fatalf("event %q published %v", tagState(got), got.Published)
	}
}

func TestDuplicateMessagesCurateOnceAndPublishOnce(t *testing.T) {
	// Background jobs on, with a slow worker: the event reads as unpublished for a while
	// after our publish (design.md "Failure model").
	ev := newEnv(t, envConfig{server: misptest.Options{BackgroundJobs: true, JobDelay: 3 * time.Second}})
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	msgs := ev.deliver(nil)
	for _, m := range msgs { // the whole sequence again, at once
		ev.eng.HandleMessage(m)
	}
	first := ev.outcome()
	if first.Published || !first.PublishQueued || !first.PublishPending {
		t.Fatalf("first outcome %+v: want a queued publish, unconfirmed", first)
	}
	ev.idle()
	// Later duplicates: the pull message again, our own tag messages, a catch-up pass
	// that still sees the event unpublished (the job has not run).
	ev.deliver(nil)
	for _, m := range msgs {
		if m.Action.FromConnectedServer() {
			ev.eng.HandleMessage(m)
		}
	}
	meta := misp.EventMeta{UUID: e.UUID, OrgcUUID: orgHigh, Locked: true, Published: false,
		Tags: []misp.Tag{{Name: gradeA, Local: true}, {Name: complete, Local: true}, {Name: "tlp:green"}}}
	ev.eng.Enqueue(e.UUID, Hint{Meta: &meta})
	ev.idle()
	for {
		select {
		case o := <-ev.outcomes:
			if o.Published || o.Tagged || o.Err != nil {
				t.Fatalf("a duplicate did something: %+v", o)
			}
			continue
		default:
		}
		break
	}
	if n := ev.srv.Calls("/events/publish"); n != 1 {
		t.Fatalf("published %d times, want once", n)
	}
	if n := ev.srv.Calls("/tags/attachTagToObject"); n != 1 {
		t.Fatalf("attached %d times, want once", n)
	}
}

func TestCoalescesMessagesOfOnePull(t *testing.T) {
	// Fake clock: nothing runs before the pull's last message.
	ev := newEnv(t, envConfig{fakeClock: true})
	ev.srv.SimulatePull(partnerEvent(orgMedium, true, tlpGreen))
	ev.srv.SimulatePull(partnerEvent(orgMedium, true, tlpGreen))
	ev.deliver(nil)
	a, b := ev.outcome(), ev.outcome()
	ev.idle()
	if a.Source != SourcePull || b.Source != SourcePull || a.EventUUID == b.EventUUID {
		t.Fatalf("outcomes %+v %+v", a, b)
	}
	ev.noOutcome(100 * time.Millisecond)
	// The row messages' debounce entries were merged into the pulls: nothing left.
	ev.advance(time.Minute)
	ev.noOutcome(100 * time.Millisecond)
}

func TestPushedEventWaitsForTheDebounce(t *testing.T) {
	t.Run("row only: curated when the debounce ends", func(t *testing.T) {
		ev := newEnv(t, envConfig{fakeClock: true})
		e := ev.srv.SimulatePush(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.srv.ResetStats()
		ev.deliver(noPublishHint)
		ev.advance(4 * time.Second)
		ev.noOutcome(200 * time.Millisecond)
		if ev.calls() != 0 {
			t.Fatalf("MISP called during the debounce: %v", ev.srv.CallsByRoute())
		}
		ev.advance(time.Second)
		o := ev.outcome()
		if o.Source != SourcePush || o.Err != nil || !o.Published || o.Calls != 4 {
			t.Fatalf("outcome %+v", o)
		}
		if got, _ := ev.srv.Event(e.UUID); !reflect.DeepEqual(tagState(got), curatedHigh) {
			t.Fatalf("tags %q", tagState(got))
		}
	})
	t.Run("misp_json ends the push: curated after the coalesce window without a read", func(t *testing.T) {
		ev := newEnv(t, envConfig{fakeClock: true})
		ev.srv.SimulatePush(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.srv.ResetStats()
		ev.deliver(nil)
		ev.advance(999 * time.Millisecond)
		ev.noOutcome(200 * time.Millisecond)
		ev.advance(time.Millisecond)
		o := ev.outcome()
		if o.Source != SourcePush || o.Err != nil || !o.Published || o.Calls != 3 || ev.srv.Calls("/events/index") != 0 {
			t.Fatalf("outcome %+v, calls %v", o, ev.srv.CallsByRoute())
		}
	})
	t.Run("a later edit row restarts the debounce; one curation", func(t *testing.T) {
		ev := newEnv(t, envConfig{fakeClock: true})
		e := ev.srv.SimulatePush(partnerEvent(orgMedium, true, tlpGreen))
		ev.deliver(noPublishHint)
		ev.advance(4 * time.Second)
		ev.srv.SimulatePushEdit(e.UUID, func(p *misptest.Event) { p.Attributes++ })
		ev.deliver(noPublishHint)
		ev.advance(4 * time.Second)
		ev.noOutcome(200 * time.Millisecond)
		ev.advance(time.Second)
		o := ev.outcome()
		if o.Err != nil || !o.Tagged || o.Source != SourcePush {
			t.Fatalf("outcome %+v", o)
		}
		ev.idle()
		ev.noOutcome(100 * time.Millisecond)
	})
	t.Run("untrusted pushed event: no call", func(t *testing.T) {
		ev := newEnv(t, envConfig{fakeClock: true})
		ev.srv.SimulatePush(partnerEvent(orgUntrusted, true, tlpGreen))
		ev.srv.ResetStats()
		ev.deliver(nil)
		ev.advance(5 * time.Second)
		o := ev.outcome()
		if o.Class != ClassUntrustedPushed || o.Calls != 0 || o.Policy != "" || o.OrgUUID != orgUntrusted || ev.calls() != 0 {
			t.Fatalf("outcome %+v, calls %v", o, ev.srv.CallsByRoute())
		}
	})
	t.Run("pull by numeric id: the row message's debounce curates it", func(t *testing.T) {
		ev := newEnv(t, envConfig{fakeClock: true})
		e := ev.srv.SimulatePullByID(partnerEvent(orgMedium, true, tlpGreen), 4711)
		ev.deliver(nil)
		ev.advance(5 * time.Second)
		o := ev.outcome()
		if o.EventUUID != e.UUID || o.Err != nil || !o.Tagged {
			t.Fatalf("outcome %+v", o)
		}
	})
}

func TestLocalEventsAreNotCurated(t *testing.T) {
	ev := newEnv(t, envConfig{fakeClock: true})
	// A local event whose creator is (strangely) a trusted org: locked false.
	ev.eng.HandleMessage(frame(t, "event_add_local"))
	ev.advance(time.Minute)
	ev.noOutcome(200 * time.Millisecond)
	if ev.eng.Pending() != 0 || ev.calls() != 0 {
		t.Fatalf("pending %d, calls %d", ev.eng.Pending(), ev.calls())
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ev := newEnv(t, envConfig{opts: func(o *Options) { o.DryRun = true }})
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, false, tlpGreen, incompleteTag))
	ev.srv.ResetStats()
	ev.deliver(nil)
	o := ev.outcome()
	want := Plan{Attach: []string{gradeA, complete}, Remove: []string{incomplete}, Publish: true}
	if !o.DryRun || o.Tagged || o.Published || !reflect.DeepEqual(o.Plan, want) || o.Err != nil {
		t.Fatalf("outcome %+v", o)
	}
	if ev.srv.WriteCalls() != 0 || ev.srv.Calls("/events/index") != 1 {
		t.Fatalf("calls %v, writes %d", ev.srv.CallsByRoute(), ev.srv.WriteCalls())
	}
	if got, _ := ev.srv.Event(e.UUID); got.Published || len(got.Tags) != 2 {
		t.Fatalf("event changed in a dry run: %+v", got)
	}
	// Switched off: the next request applies the plan.
	ev.eng.SetDryRun(false)
	ev.eng.Enqueue(e.UUID, Hint{})
	if o := ev.outcome(); o.DryRun || !o.Published || o.Source != SourceCatchUp {
		t.Fatalf("outcome after SetDryRun(false) %+v", o)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Run("MISP 5xx on attach, then success", func(t *testing.T) {
		ev := newEnv(t, envConfig{})
		ev.srv.SetFault("/tags/attachTagToObject", misptest.Fault{ErrorStatus: 500})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(nil)
		deadline := time.Now().Add(eventually)
		for ev.srv.Calls("/tags/attachTagToObject") < 2 {
			if time.Now().After(deadline) {
				t.Fatal("attach not retried")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ev.srv.SetFault("/tags/attachTagToObject", misptest.Fault{})
		o := ev.outcome()
		if o.Err != nil || !o.Published || !o.Tagged || o.Attempts < 3 {
			t.Fatalf("outcome %+v", o)
		}
		if got, _ := ev.srv.Event(e.UUID); !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
			t.Fatalf("event %q published %v", tagState(got), got.Published)
		}
	})
	t.Run("publish refused after the unpublishing removal: the retry re-reads and publishes", func(t *testing.T) {
		ev := newEnv(t, envConfig{})
		// A 429 says MISP did not publish (a 5xx would not: see TestUnknownPublishOutcome).
		ev.srv.SetFault("/events/publish", misptest.Fault{ErrorStatus: 429})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(nil)
		deadline := time.Now().Add(eventually)
		for ev.srv.Calls("/events/publish") < 1 {
			if time.Now().After(deadline) {
				t.Fatal("publish never tried")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ev.srv.SetFault("/events/publish", misptest.Fault{})
		o := ev.outcome()
		if o.Err != nil || !o.Published || !o.RemovedIncomplete || o.Attempts < 2 {
			t.Fatalf("outcome %+v", o)
		}
		if got, _ := ev.srv.Event(e.UUID); !got.Published {
			t.Fatal("event left unpublished")
		}
	})
	t.Run("MISP down for good: bounded attempts, then the error", func(t *testing.T) {
		ev := newEnv(t, envConfig{opts: func(o *Options) { o.MaxAttempts = 3 }})
		ev.srv.SimulatePull(partnerEvent(orgMedium, true, tlpGreen))
		ev.srv.SetDown(true)
		ev.srv.ResetStats()
		ev.deliver(nil)
		o := ev.outcome()
		if o.Err == nil || o.Attempts != 3 || o.Calls != 3 {
			t.Fatalf("outcome %+v", o)
		}
		ev.idle()
		if n := ev.calls(); n != 3 {
			t.Fatalf("MISP saw %d calls, want 3 (one per attempt, no hot loop)", n)
		}
	})
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	// A publisher of the host org (not site admin): local tags work, removing the
	// partner's global tag is 403 (sync/api/71).
	ev := newEnv(t, envConfig{apiKey: func(s *misptest.Server) string {
		return s.AddUser(s.HostOrg(), misptest.Role{Publish: true, Tagger: true})
	}})
	ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.deliver(nil)
	o := ev.outcome()
	if o.Err == nil || !errors.Is(o.Err, misp.ErrForbidden) || o.Attempts != 1 || !o.Tagged {
		t.Fatalf("outcome %+v", o)
	}
}

func TestEnqueueWithMetadataSkipsTheRead(t *testing.T) {
	ev := newEnv(t, envConfig{})
	e := ev.srv.AddEvent(misptest.Event{Orgc: misptest.Org{Name: "PARTNER-SUB", UUID: orgMedium}, Locked: true, Published: true})
	ev.srv.ResetStats()
	ev.eng.Enqueue(e.UUID, Hint{Meta: &misp.EventMeta{UUID: e.UUID, OrgcUUID: orgMedium, Locked: true, Published: true}})
	o := ev.outcome()
	if o.Err != nil || o.Calls != 1 || !o.Tagged || ev.srv.Calls("/events/index") != 0 || o.Source != SourceCatchUp {
		t.Fatalf("outcome %+v, calls %v", o, ev.srv.CallsByRoute())
	}
	// A deleted event is skipped, not failed.
	ev.eng.Enqueue("5a3c2fcd-8328-42bb-a95e-4f4402de0b81", Hint{Source: SourceRecuration})
	if o := ev.outcome(); o.Err != nil || o.Skipped != "event not found" || o.Source != SourceRecuration {
		t.Fatalf("outcome %+v", o)
	}
}

func TestPromotionRecuration(t *testing.T) {
	ev := newEnv(t, envConfig{})
	e := ev.srv.SimulatePull(partnerEvent(orgMedium, true, tlpGreen, incompleteTag))
	ev.deliver(nil)
	if o := ev.outcome(); !o.Tagged || o.Policy != "sec/medium" {
		t.Fatalf("first outcome %+v", o)
	}
	ev.idle()
	// PARTNER-SUB is promoted to the high policy.
	old := ev.idx.Swap(index.Build([]*v1alpha1.OrgTrustPolicy{
		testPolicy("high", 100, "a", true, orgHigh, orgMedium), testPolicy("medium", 50, "c", false)}, inlineOrgs))
	for _, org := range index.Diff(old, ev.idx.Load()) {
		if org != orgMedium {
			t.Fatalf("diff lists %s", org)
		}
		ev.eng.Enqueue(e.UUID, Hint{Source: SourceRecuration})
	}
	o := ev.outcome()
	if o.Err != nil || o.Policy != "sec/high" || !o.Published || !reflect.DeepEqual(o.RemovedTags, []string{gradeC, incomplete}) {
		t.Fatalf("re-curation %+v", o)
	}
	got, _ := ev.srv.Event(e.UUID)
	if !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
		t.Fatalf("event %q published %v", tagState(got), got.Published)
	}
}

func TestDeleteDropsAWaitingCuration(t *testing.T) {
	ev := newEnv(t, envConfig{fakeClock: true})
	ev.eng.HandleMessage(frame(t, "event_add_pushed_row"))
	if ev.eng.Pending() != 1 {
		t.Fatal("pushed row not scheduled")
	}
	del := frame(t, "event_add_pushed_row")
	del.Action = feed.ActionDelete
	ev.eng.HandleMessage(del)
	if ev.eng.Pending() != 0 {
		t.Fatal("deleted event still pending")
	}
}

func TestQueueBoundDropsNewEvents(t *testing.T) {
	ev := newEnv(t, envConfig{fakeClock: true, opts: func(o *Options) { o.MaxPending = 1 }})
	ev.eng.HandleMessage(frame(t, "event_add_pushed_row"))
	ev.eng.HandleMessage(frame(t, "event_add_pulled_row"))
	if ev.eng.Pending() != 1 {
		t.Fatalf("pending %d, want the bound", ev.eng.Pending())
	}
}

func TestRunStopsWithPendingEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := misptest.NewServer(misptest.Options{})
	t.Cleanup(srv.Close)
	client, err := misp.New(misp.Options{URL: srv.URL(), APIKey: srv.AdminKey()})
	if err != nil {
		t.Fatal(err)
	}
	idx := &index.Index{}
	eng := New(Options{Instance: "sec/misp", Index: idx, MISP: client, Metrics: NewMetrics(reg), Clock: newFakeClock()})
	eng.HandleMessage(frame(t, "event_add_pushed_row"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(eventually):
		t.Fatal("Run did not return after its context ended")
	}
	if got := testutil.ToFloat64(NewMetrics(reg).dropped.WithLabelValues("sec/misp", dropShutdown)); got != 1 {
		t.Fatalf("dropped{shutdown} = %v, want 1", got)
	}
	if eng.Pending() != 0 {
		t.Fatal("entries left after Run")
	}
}

func TestSlowPullCuratedByTheDebounceThenByThePull(t *testing.T) {
	// A pull whose attributes take longer than the debounce: the row message's debounce
	// curates the event mid-pull; the pull's own misp_json, arriving later, describes the
	// event before our changes and must not make the follow-up redo them. (The pull's
	// global tag messages make the follow-up read the metadata once: a global tag change
	// may have unpublished the event.)
	ev := newEnv(t, envConfig{fakeClock: true})
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.srv.ResetStats()
	isRow := func(m feed.Message) bool { return m.Kind == feed.KindEvent && m.Action == feed.ActionAdd }
	ev.deliver(isRow)
	ev.cursor = 0 // the rest of the pull is delivered below
	ev.advance(5 * time.Second)
	first := ev.outcome()
	if first.Source != SourcePush || !first.Published || first.Calls != 4 {
		t.Fatalf("debounce curation %+v", first)
	}
	ev.idle()
	seenPull := false
	ev.deliver(func(m feed.Message) bool {
		if isRow(m) { // delivered already
			return false
		}
		keep := !seenPull
		seenPull = seenPull || m.Action.FromConnectedServer()
		return keep // the pull's messages, not the ones our curation caused
	})
	second := ev.outcome()
	if second.Source != SourcePull || second.Calls != 1 || !second.AlreadyCurated || ev.srv.WriteCalls() != 3 {
		t.Fatalf("follow-up %+v, calls %v", second, ev.srv.CallsByRoute())
	}
	if got, _ := ev.srv.Event(e.UUID); !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
		t.Fatalf("event %q published %v", tagState(got), got.Published)
	}
}

func TestMessagesDuringACurationGiveOneFollowUp(t *testing.T) {
	ev := newEnv(t, envConfig{})
	// The double records a call when it ends: the finished metadata read (misp_json is
	// not delivered) means the slow attach is in flight.
	ev.srv.SetFault("/tags/attachTagToObject", misptest.Fault{Latency: 300 * time.Millisecond})
	ev.srv.SimulatePull(partnerEvent(orgMedium, true, tlpGreen))
	msgs := ev.deliver(noPublishHint)
	ev.waitInFlight("/events/index")
	for i := 0; i < 3; i++ {
		ev.eng.HandleMessage(msgs[len(msgs)-1]) // add_from_connected_server again
	}
	first, second := ev.outcome(), ev.outcome()
	ev.idle()
	if !first.Tagged || second.Tagged || second.Calls != 0 || !second.AlreadyCurated {
		t.Fatalf("outcomes %+v\n%+v", first, second)
	}
	select {
	case o := <-ev.outcomes:
		t.Fatalf("more than one follow-up: %+v", o)
	default:
	}
}

// waitInFlight waits until MISP has answered a call of route. The double records a call
// when it ends, so tests slow down the NEXT step of the curation with a latency fault:
// the curation is then running.
func (ev *env) waitInFlight(route string) {
	ev.t.Helper()
	deadline := time.Now().Add(eventually)
	for ev.srv.Calls(route) == 0 {
		if time.Now().After(deadline) {
			ev.t.Fatalf("no %s call: the curation never started", route)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFollowUpDoesNotReuseStateFromBeforeTheCuration(t *testing.T) {
	t.Run("catch-up metadata read before the curation finished: the follow-up does nothing", func(t *testing.T) {
		ev := newEnv(t, envConfig{})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		// What a catch-up search returned before the curation: the partner's state.
		stale, err := ev.eng.opts.MISP.EventMeta(context.Background(), e.UUID)
		if err != nil {
			t.Fatal(err)
		}
		ev.srv.SetFault("/events/publish", misptest.Fault{Latency: 500 * time.Millisecond})
		ev.srv.ResetStats()
		ev.deliver(nil)
		ev.waitInFlight("/tags/removeTagFromObject") // the publish is in flight
		ev.eng.Enqueue(e.UUID, Hint{Meta: &stale})
		// The follow-up is scheduled when the first curation finishes, and another worker
		// may report it before the first worker reports its own outcome: order by start.
		first, second := ev.outcome(), ev.outcome()
		if second.Received.Before(first.Received) {
			first, second = second, first
		}
		ev.idle()
		if first.Err != nil || !first.Tagged || !first.Published {
			t.Fatalf("first outcome %+v", first)
		}
		if second.Err != nil || second.Tagged || second.Published || len(second.RemovedTags) != 0 || !second.AlreadyCurated ||
			second.Calls > 1 || second.Source != SourceCatchUp {
			t.Fatalf("follow-up %+v", second)
		}
		if w := ev.srv.WriteCalls(); w != 3 {
			t.Fatalf("%d writes %v, want 3 (attach, remove, publish once)", w, ev.srv.CallsByRoute())
		}
		if got, _ := ev.srv.Event(e.UUID); !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
			t.Fatalf("event %q published %v", tagState(got), got.Published)
		}
	})
	t.Run("the curation failed after a write: the follow-up re-reads instead of trusting misp_json", func(t *testing.T) {
		// A publisher of the host org (not site admin): the local attach works, removing
		// the partner's global tag is 403 (sync/api/71), a permanent failure.
		ev := newEnv(t, envConfig{apiKey: func(s *misptest.Server) string {
			return s.AddUser(s.HostOrg(), misptest.Role{Publish: true, Tagger: true})
		}})
		ev.srv.SetFault("/tags/removeTagFromObject", misptest.Fault{Latency: 500 * time.Millisecond})
		ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.srv.ResetStats()
		msgs := ev.deliver(nil)
		ev.waitInFlight("/tags/attachTagToObject") // the removal is in flight
		ev.eng.HandleMessage(msgs[len(msgs)-1])    // add_from_connected_server again
		first, second := ev.outcome(), ev.outcome()
		if second.Received.Before(first.Received) { // reports of two workers may swap
			first, second = second, first
		}
		ev.idle()
		if !first.Tagged || !errors.Is(first.Err, misp.ErrForbidden) {
			t.Fatalf("first outcome %+v", first)
		}
		if second.Tagged || ev.srv.Calls("/tags/attachTagToObject") != 1 || ev.srv.Calls("/events/index") != 1 {
			t.Fatalf("follow-up %+v, calls %v (want one attach overall and one metadata read)", second, ev.srv.CallsByRoute())
		}
	})
}

func TestEnqueueJoinsAPendingPushDebounce(t *testing.T) {
	ev := newEnv(t, envConfig{fakeClock: true})
	e := ev.srv.SimulatePush(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	// A catch-up search that ran while the push was being saved: no tags yet, unpublished
	// (the row is saved before the tags, sync README "push-new").
	early := misp.EventMeta{UUID: e.UUID, OrgcUUID: orgHigh, Locked: true}
	ev.srv.ResetStats()
	ev.deliver(noPublishHint)
	ev.advance(time.Second)
	for _, src := range []Source{SourceCatchUp, SourceRecuration} {
		ev.eng.Enqueue(e.UUID, Hint{Source: src, Meta: &early})
	}
	ev.noOutcome(200 * time.Millisecond)
	if ev.calls() != 0 || ev.eng.Pending() != 1 {
		t.Fatalf("curated during the debounce: calls %v, pending %d", ev.srv.CallsByRoute(), ev.eng.Pending())
	}
	ev.advance(4 * time.Second)
	o := ev.outcome()
	ev.idle()
	if o.Err != nil || !o.Tagged || !o.Published || !o.RemovedIncomplete {
		t.Fatalf("outcome %+v", o)
	}
	// The early metadata was not used: the curation read the complete event.
	if ev.srv.Calls("/events/index") != 1 || ev.calls() != 4 {
		t.Fatalf("calls %v", ev.srv.CallsByRoute())
	}
	if got, _ := ev.srv.Event(e.UUID); !reflect.DeepEqual(tagState(got), curatedHigh) || !got.Published {
		t.Fatalf("event %q published %v", tagState(got), got.Published)
	}
	ev.noOutcome(100 * time.Millisecond)
}

// TestRefusedAndDroppedHandOversEndInAnOutcome (defect 2): an event refused at MaxPending
// or dropped by a delete message used to vanish without an outcome, so catch-up never
// retried it. Every hand-over now ends in an outcome: refused is a failure (catch-up
// retries it), deleted is settled.
func TestRefusedAndDroppedHandOversEndInAnOutcome(t *testing.T) {
	ev := newEnv(t, envConfig{fakeClock: true, opts: func(o *Options) { o.MaxPending = 1 }})
	row := frame(t, "event_add_pushed_row")
	ev.eng.HandleMessage(row) // waits for its debounce: the queue is full
	const other = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"
	ev.eng.Enqueue(other, Hint{Source: SourceRecuration})
	o := ev.outcome()
	if o.EventUUID != other || !errors.Is(o.Err, ErrQueueFull) || o.Source != SourceRecuration {
		t.Fatalf("refused hand-over: outcome %+v, want ErrQueueFull for %s", o, other)
	}
	pulled := frame(t, "event_add_from_server_uuid")
	ev.eng.HandleMessage(pulled)
	if o := ev.outcome(); o.EventUUID != pulled.EventUUID || !errors.Is(o.Err, ErrQueueFull) || o.Source != SourcePull {
		t.Fatalf("refused pull: outcome %+v", o)
	}
	del := row
	del.Action = feed.ActionDelete
	ev.eng.HandleMessage(del)
	if o := ev.outcome(); o.EventUUID != row.EventUUID || o.Err != nil || o.Skipped != "event deleted" {
		t.Fatalf("deleted while waiting: outcome %+v", o)
	}
	if ev.eng.Pending() != 0 {
		t.Fatalf("pending %d", ev.eng.Pending())
	}
}
