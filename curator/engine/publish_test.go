package engine

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// jobsEnv is an engine against a MISP double with background jobs, and confirmation
// timings short enough for a test.
func jobsEnv(t *testing.T, reg *prometheus.Registry, clientRetries bool) *env {
	return newEnv(t, envConfig{
		server:        misptest.Options{BackgroundJobs: true, JobDelay: 10 * time.Millisecond},
		clientRetries: clientRetries,
		opts: func(o *Options) {
			o.ConfirmAfter, o.ConfirmMaxDelay = 50*time.Millisecond, 200*time.Millisecond
			o.PublishFailedAfter, o.PublishStuckAfter = 300*time.Millisecond, 300*time.Millisecond
			if reg != nil {
				o.Metrics = NewMetrics(reg)
			}
		},
	})
}

// outcomesOf collects the outcomes of one event until cond holds on them.
func (ev *env) outcomesUntil(what string, cond func([]Outcome) bool) map[string][]Outcome {
	ev.t.Helper()
	got := map[string][]Outcome{}
	all := []Outcome{}
	deadline := time.After(eventually)
	for !cond(all) {
		select {
		case o := <-ev.outcomes:
			got[o.EventUUID] = append(got[o.EventUUID], o)
			all = append(all, o)
		case <-deadline:
			ev.t.Fatalf("timed out waiting for %s; outcomes so far: %+v", what, all)
		}
	}
	return got
}

func confirmed(os []Outcome) int {
	n := 0
	for _, o := range os {
		if o.Published {
			n++
		}
	}
	return n
}

func jobsOf(srv *misptest.Server, uuid string) map[misptest.JobStatus]int {
	out := map[misptest.JobStatus]int{}
	for _, j := range srv.PublishJobs() {
		if j.EventUUID == uuid {
			out[j.Status]++
		}
	}
	return out
}

// TestQueuedPublishIsNotAPublish (defect 1): "Job queued" used to count the event
// published and to be remembered for 10 minutes, so a job that failed left the event
// unpublished for good while the counters said published. The publish stays unconfirmed
// until a read shows the event published; a job that evidently failed (a later publish was
// confirmed, this event stays unpublished) is sent again, once.
func TestQueuedPublishIsNotAPublish(t *testing.T) {
	reg := prometheus.NewRegistry()
	ev := jobsEnv(t, reg, false)
	// The first job fails in the worker; the second one runs.
	ev.srv.SetJobFaults(misptest.JobFaults{FailRate: 1})
	lost := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.deliver(nil)
	first := ev.outcome()
	if first.Published || !first.PublishQueued || !first.PublishPending {
		t.Fatalf("outcome of the queued publish %+v: want queued and pending, not published", first)
	}
	waitFor(t, "the failing job", func() bool { return jobsOf(ev.srv, lost.UUID)[misptest.JobFailed] == 1 })
	ev.srv.SetJobFaults(misptest.JobFaults{})
	ok := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.deliver(noPublishHint) // no misp_json: the checks confirm by reading

	got := ev.outcomesUntil("both events confirmed", func(all []Outcome) bool {
		n := 0
		for _, o := range all {
			if o.Published {
				n++
			}
		}
		return n == 2
	})
	if e, _ := ev.srv.Event(lost.UUID); !e.Published {
		t.Fatal("the event whose job failed is still unpublished")
	}
	if confirmed(got[lost.UUID]) != 1 || confirmed(got[ok.UUID]) != 1 {
		t.Fatalf("confirmed publishes: %d and %d, want one each\n%+v", confirmed(got[lost.UUID]), confirmed(got[ok.UUID]), got)
	}
	republished := false
	for _, o := range got[lost.UUID] {
		republished = republished || o.Republished
	}
	if !republished {
		t.Errorf("the second publish of %s is not reported as a republish: %+v", lost.UUID, got[lost.UUID])
	}
	if j := jobsOf(ev.srv, lost.UUID); j[misptest.JobFailed] != 1 || j[misptest.JobCompleted] != 1 {
		t.Errorf("jobs of the event whose job failed: %v, want one failed and one completed", j)
	}
	if j := jobsOf(ev.srv, ok.UUID); j[misptest.JobCompleted] != 1 || len(j) != 1 {
		t.Errorf("jobs of the other event: %v, want exactly one, completed", j)
	}
	ev.idle()
	m := NewMetrics(reg)
	if v := testutil.ToFloat64(m.unconfirmed.WithLabelValues("sec/misp")); v != 0 {
		t.Errorf("unconfirmed publishes gauge %v, want 0", v)
	}
	if v := testutil.ToFloat64(m.resent.WithLabelValues("sec/misp")); v != 1 {
		t.Errorf("resent publishes %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.outcomes.WithLabelValues("sec/misp", "sec/high", ActionPublished)); v != 2 {
		t.Errorf("published outcomes %v, want 2 (confirmed ones only)", v)
	}
}

// TestStoppedWorkersArePublishedOnceTheyComeBack: with the workers down nothing is
// confirmed, so nothing is sent again (that would publish twice once they are back); the
// publishes are reported as stuck, and confirmed when the queue drains.
func TestStoppedWorkersArePublishedOnceTheyComeBack(t *testing.T) {
	reg := prometheus.NewRegistry()
	ev := jobsEnv(t, reg, false)
	ev.srv.SetWorkersDown(true)
	var uuids []string
	for range 3 {
		uuids = append(uuids, ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag)).UUID)
	}
	ev.deliver(nil)
	for range 3 {
		if o := ev.outcome(); o.Published || !o.PublishPending {
			t.Fatalf("outcome %+v", o)
		}
	}
	// Long past PublishFailedAfter and several check rounds.
	waitFor(t, "stuck publishes", func() bool { return ev.eng.Unconfirmed().Stuck == 3 })
	time.Sleep(500 * time.Millisecond)
	if n := ev.srv.Calls("/events/publish"); n != 3 {
		t.Fatalf("%d publishes with the workers down, want 3 (none sent again)", n)
	}
	u := ev.eng.Unconfirmed()
	if u.Count != 3 || u.ByPolicy["sec/high"] != 3 || u.Oldest.IsZero() {
		t.Fatalf("unconfirmed %+v", u)
	}
	if v := testutil.ToFloat64(NewMetrics(reg).unconfirmed.WithLabelValues("sec/misp")); v != 3 {
		t.Fatalf("unconfirmed publishes gauge %v, want 3", v)
	}
	reads := ev.srv.Calls("/events/index")
	if reads > 40 {
		t.Errorf("%d metadata reads while the workers were down: the checks must not read every event every round", reads)
	}

	ev.srv.SetWorkersDown(false)
	got := ev.outcomesUntil("the three publishes confirmed", func(all []Outcome) bool { return confirmed(all) == 3 })
	for _, uuid := range uuids {
		if confirmed(got[uuid]) != 1 {
			t.Errorf("%s confirmed %d times", uuid, confirmed(got[uuid]))
		}
		if j := jobsOf(ev.srv, uuid); j[misptest.JobCompleted] != 1 || len(j) != 1 {
			t.Errorf("jobs of %s: %v, want exactly one, completed", uuid, j)
		}
	}
	if u := ev.eng.Unconfirmed(); u.Count != 0 {
		t.Fatalf("unconfirmed after the workers came back: %+v", u)
	}
}

// TestMispJSONConfirmsAQueuedPublishWithoutARead: the worker's misp_json shows the tags
// the curation left; it confirms the publish at no cost.
func TestMispJSONConfirmsAQueuedPublishWithoutARead(t *testing.T) {
	ev := jobsEnv(t, nil, false)
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.deliver(nil)
	if o := ev.outcome(); !o.PublishPending || o.Calls != 3 {
		t.Fatalf("outcome %+v", o)
	}
	waitFor(t, "the job", func() bool { return jobsOf(ev.srv, e.UUID)[misptest.JobCompleted] == 1 })
	ev.srv.ResetStats()
	ev.deliver(nil) // our tag messages and the job's misp_json
	o := ev.outcome()
	if !o.Published || o.Calls != 0 || o.PublishPending || o.Source != SourcePull && o.Source != SourceConfirm {
		t.Fatalf("confirmation %+v", o)
	}
	if n := ev.calls(); n != 0 {
		t.Fatalf("the confirmation called MISP %d times: %v", n, ev.srv.CallsByRoute())
	}
}

// TestAPublishWhoseOutcomeIsUnknownIsNotRepeatedBlindly (defect 4, engine side): a write
// that committed and then answered 504 is returned once by the client; the engine reads
// the event again and plans from what it finds.
func TestAWriteThatCommittedThenFailedIsReadNotRepeated(t *testing.T) {
	t.Run("tag removal: the event it unpublished is published", func(t *testing.T) {
		// Client retries on, as in production; MISP publishes synchronously here.
		ev := newEnv(t, envConfig{clientRetries: true})
		// Only the first removal fails: a blind retry would get 404 ("not attached") and the
		// engine would conclude that nothing was unpublished.
		ev.srv.SetFault("/tags/removeTagFromObject", misptest.Fault{ErrorStatus: 504, AfterCommit: true, Times: 1})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(nil)
		o := ev.outcome()
		ev.idle()
		got, _ := ev.srv.Event(e.UUID)
		if o.Err != nil || !got.Published || len(got.Tags) != 3 {
			t.Fatalf("outcome %+v; event published %v tags %v: the removal unpublished it and nothing published it again", o, got.Published, tagState(got))
		}
		if n := ev.srv.Calls("/tags/removeTagFromObject"); n != 1 {
			t.Errorf("removal sent %d times, want once", n)
		}
	})
	t.Run("queued publish answered 504: sent once, confirmed by a read", func(t *testing.T) {
		ev := jobsEnv(t, nil, true)
		ev.srv.SetFault("/events/publish", misptest.Fault{ErrorStatus: 504, AfterCommit: true, Times: 1})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(noPublishHint)
		got := ev.outcomesUntil("the publish confirmed", func(all []Outcome) bool { return confirmed(all) == 1 })
		if n := ev.srv.Calls("/events/publish"); n != 1 {
			t.Fatalf("publish sent %d times, want once; outcomes %+v", n, got)
		}
		if j := jobsOf(ev.srv, e.UUID); j[misptest.JobCompleted] != 1 || len(j) != 1 {
			t.Fatalf("jobs %v", j)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAPublishWithoutAnAnswerIsSentAgainOnlyWhenNothingSaysWorkersAreStopped: a publish
// answered 502 (the proxy could not reach MISP) most likely queued nothing, and no later
// publish may come to prove it. Once it is PublishFailedAfter old and no publish MISP did
// queue before it still waits, the event (still unpublished) is published again; while an
// earlier queued publish waits (stopped workers), it is not.
func TestAPublishWithoutAnAnswerIsSentAgainOnlyWhenNothingSaysWorkersAreStopped(t *testing.T) {
	t.Run("nothing waits: sent again", func(t *testing.T) {
		ev := jobsEnv(t, nil, false)
		ev.srv.SetFault("/events/publish", misptest.Fault{ErrorStatus: 502})
		e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(noPublishHint)
		waitFor(t, "the failed publish", func() bool { return ev.srv.Calls("/events/publish") == 1 })
		ev.srv.SetFault("/events/publish", misptest.Fault{})
		got := ev.outcomesUntil("the publish confirmed", func(all []Outcome) bool { return confirmed(all) == 1 })
		if n := ev.srv.Calls("/events/publish"); n != 2 {
			t.Fatalf("%d publish calls, want 2; outcomes %+v", n, got)
		}
		if j := jobsOf(ev.srv, e.UUID); j[misptest.JobCompleted] != 1 || len(j) != 1 {
			t.Fatalf("jobs %v", j)
		}
	})
	t.Run("an earlier queued publish waits: not sent again", func(t *testing.T) {
		ev := jobsEnv(t, nil, false)
		ev.srv.SetWorkersDown(true)
		queued := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(nil)
		ev.outcome()
		ev.srv.SetFault("/events/publish", misptest.Fault{ErrorStatus: 504, AfterCommit: true})
		unknown := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
		ev.deliver(nil)
		waitFor(t, "the second publish", func() bool { return ev.srv.Calls("/events/publish") == 2 })
		ev.srv.SetFault("/events/publish", misptest.Fault{})
		time.Sleep(time.Second) // > PublishFailedAfter, several check rounds
		if n := ev.srv.Calls("/events/publish"); n != 2 {
			t.Fatalf("%d publish calls with the workers down, want 2", n)
		}
		ev.srv.SetWorkersDown(false)
		waitFor(t, "both published", func() bool {
			return jobsOf(ev.srv, queued.UUID)[misptest.JobCompleted] == 1 && jobsOf(ev.srv, unknown.UUID)[misptest.JobCompleted] == 1
		})
		waitFor(t, "both confirmed", func() bool { return ev.eng.Unconfirmed().Count == 0 })
		if n := ev.srv.Calls("/events/publish"); n != 2 {
			t.Fatalf("%d publish calls, want 2: each event published by one job", n)
		}
	})
}

// TestASearchReadBeforeOurChangeIsNotUsed: catch-up read the event between our removal
// (which unpublished it) and the job that published it, and hands it over after the
// publish was confirmed. Its metadata (unpublished, our tags) must not make the engine
// publish a second time.
func TestASearchReadBeforeOurChangeIsNotUsed(t *testing.T) {
	ev := jobsEnv(t, nil, false)
	e := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	ev.srv.SetWorkersDown(true)
	ev.deliver(nil)
	if o := ev.outcome(); !o.PublishPending {
		t.Fatalf("outcome %+v", o)
	}
	readAt := ev.eng.clock.Now()
	stale, err := ev.eng.opts.MISP.EventMeta(context.Background(), e.UUID) // unpublished, our tags
	if err != nil || stale.Published {
		t.Fatalf("meta %+v, %v", stale, err)
	}
	ev.srv.SetWorkersDown(false)
	waitFor(t, "the job", func() bool { return jobsOf(ev.srv, e.UUID)[misptest.JobCompleted] == 1 })
	ev.deliver(nil) // the job's misp_json confirms
	if o := ev.outcome(); !o.Published {
		t.Fatalf("confirmation %+v", o)
	}
	ev.idle()
	ev.eng.Enqueue(e.UUID, Hint{Meta: &stale, ReadAt: readAt})
	o := ev.outcome()
	ev.idle()
	if o.PublishQueued || o.Published || o.Err != nil {
		t.Fatalf("the stale search made the engine act: %+v", o)
	}
	if n := ev.srv.Calls("/events/publish"); n != 1 {
		t.Fatalf("%d publishes, want 1", n)
	}
}
