package curator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// TestDryRunSwitchedOffCuratesWhatArrivedDuringIt (defect 5): events that arrived during a
// dry run were only logged, catch-up's watermark moved past them, and switching the dry
// run off curated none of them. Now it re-curates the look-back window once.
func TestDryRunSwitchedOffCuratesWhatArrivedDuringIt(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", func(s *v1alpha1.MISPInstanceSpec) { s.Curation.DryRun = true })
	e.policy("high", "a", true, highOrg)
	c := e.config()
	// Frequent passes with a short margin: the watermark soon moves past the event.
	c.CatchUp.Interval, c.CatchUp.SafetyMargin = time.Second, time.Second
	e.start(c)
	e.waitSubscribed(1)
	during := e.misp.SimulatePull(pulledEvent(highOrg, true, "tlp:green", trust.TagWorkflowIncomplete))
	arrived := time.Now()
	eventually(t, "the dry-run plan logged", func() (bool, string) { return e.logs.line("dry run", during.UUID), "" })
	eventually(t, "catch-up passes past the event", func() (bool, string) {
		cu := e.mispInstance().Status.CatchUp
		return cu != nil && cu.LastRunTime != nil && cu.LastRunTime.After(arrived.Add(4*time.Second)), fmt.Sprintf("%+v", cu)
	})
	if n := e.misp.WriteCalls(); n != 0 {
		t.Fatalf("the dry run wrote %d times", n)
	}

	inst := e.mispInstance()
	inst.Spec.Curation.DryRun = false
	if err := k8sClient.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event of the dry run curated", func() (bool, string) {
		return e.curated(during.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	if n := countRoute(e.requestsAbout(during.UUID), "/events/publish"); n != 1 {
		t.Errorf("published %d times, want once", n)
	}
}

// TestQueuedPublishesAreCountedOnceConfirmedAndStuckOnesReported: with MISP's workers
// down, the publishes the curator sent are not counted, the policy shows them as
// unconfirmed, the MISPInstance's PublishesConfirmed condition turns False, and catch-up's
// watermark stays before them; once the workers are back every publish is confirmed and
// counted, each event published by one job.
func TestQueuedPublishesAreCountedOnceConfirmedAndStuckOnesReported(t *testing.T) {
	e := newEnv(t, misptest.Options{BackgroundJobs: true, JobDelay: 10 * time.Millisecond})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	c := e.config()
	c.CatchUp.Interval, c.CatchUp.SafetyMargin = time.Second, time.Second
	c.Engine.ConfirmAfter, c.Engine.ConfirmMaxDelay = 100*time.Millisecond, 500*time.Millisecond
	c.Engine.PublishStuckAfter, c.Engine.PublishFailedAfter = time.Second, time.Second
	e.start(c)
	e.waitSubscribed(1)
	e.waitFirstPass()
	e.misp.SetWorkersDown(true)
	arrived := time.Now()
	a := e.misp.SimulatePull(pulledEvent(highOrg, true, "tlp:green", trust.TagWorkflowIncomplete))
	b := e.misp.SimulatePull(pulledEvent(highOrg, false, "tlp:green"))

	eventually(t, "the publishes reported unconfirmed", func() (bool, string) {
		cur := e.curation("high")
		cond := meta.FindStatusCondition(e.mispInstance().Status.Conditions, status.ConditionPublishesConfirmed)
		ok := cur != nil && cur.Tagged == 2 && cur.Published == 0 && cur.PublishesUnconfirmed == 2 &&
			cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == status.ReasonUnconfirmed
		return ok, fmt.Sprintf("curation %+v, condition %+v", cur, cond)
	})
	// Several passes later the watermark still waits for them.
	time.Sleep(3 * time.Second)
	if wm := e.mispInstance().Status.CatchUp.Watermark; wm == nil || wm.After(arrived) {
		t.Fatalf("watermark %v moved past events whose publish is not confirmed (they arrived at %s)", wm, arrived)
	}
	if n := e.misp.Calls("/events/publish"); n != 2 {
		t.Fatalf("%d publishes with the workers down, want 2", n)
	}

	e.misp.SetWorkersDown(false)
	eventually(t, "the publishes confirmed and counted", func() (bool, string) {
		cur := e.curation("high")
		cond := meta.FindStatusCondition(e.mispInstance().Status.Conditions, status.ConditionPublishesConfirmed)
		ok := cur != nil && cur.Published == 2 && cur.PublishesUnconfirmed == 0 &&
			cond != nil && cond.Status == metav1.ConditionTrue
		return ok, fmt.Sprintf("curation %+v, condition %+v", cur, cond)
	})
	for _, ev := range []misptest.Event{a, b} {
		if ok, seen := e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete); !ok {
			t.Errorf("%s: %s", ev.UUID, seen)
		}
	}
	jobs := map[string]int{}
	for _, j := range e.misp.PublishJobs() {
		if j.Status == misptest.JobCompleted {
			jobs[j.EventUUID]++
		}
	}
	if jobs[a.UUID] != 1 || jobs[b.UUID] != 1 || e.misp.Calls("/events/publish") != 2 {
		t.Fatalf("completed jobs %v, publish calls %d: want one each", jobs, e.misp.Calls("/events/publish"))
	}
	eventually(t, "the watermark released", func() (bool, string) {
		wm := e.mispInstance().Status.CatchUp.Watermark
		return wm != nil && wm.After(arrived.Add(time.Second)), fmt.Sprint(wm)
	})
}
