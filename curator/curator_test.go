package curator

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

func pulledEvent(org string, published bool, tags ...string) misptest.Event {
	e := misptest.Event{Orgc: misptest.Org{UUID: org}, Published: published, Attributes: 2}
	for _, t := range tags {
		e.Tags = append(e.Tags, misptest.EventTag{Name: t})
	}
	return e
}

func TestPulledEventsAreCuratedAndCountedInTheStatus(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	e.policy("medium", "c", false, mediumOrg)
	e.start(e.config())
	e.waitSubscribed(1)
	eventually(t, "FeedConnected=True", func() (bool, string) {
		c := e.feedCondition()
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == status.ReasonConnected, fmt.Sprint(c)
	})

	// As captured on a real MISP (sync/README): the partner's event arrives published, with
	// its global tlp and workflow:state="incomplete" tags.
	hi := e.misp.SimulatePull(pulledEvent(highOrg, true, "tlp:green", trust.TagWorkflowIncomplete))
	med := e.misp.SimulatePull(pulledEvent(mediumOrg, true, "tlp:green"))
	eventually(t, "the high event tagged, incomplete removed, published", func() (bool, string) {
		return e.curated(hi.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	eventually(t, "the medium event tagged", func() (bool, string) { return e.curated(med.UUID, false, tagC) })
	if ev, _ := e.misp.Event(med.UUID); len(ev.Tags) != 2 {
		t.Errorf("medium event tags %v, want tlp:green and the local grade only", ev.Tags)
	}
	if n := countRoute(e.requestsAbout(hi.UUID), "/events/publish"); n != 1 {
		t.Errorf("publish called %d times for the high event, want 1", n)
	}
	if n := countRoute(e.requestsAbout(med.UUID), "/events/publish"); n != 0 {
		t.Errorf("publish called %d times for a tag-only event", n)
	}

	eventually(t, "status.curation of both policies", func() (bool, string) {
		h, m := e.curation("high"), e.curation("medium")
		ok := h != nil && m != nil && h.Tagged == 1 && h.Published == 1 && h.LastEventUUID == hi.UUID &&
			h.LastEventTime != nil && m.Tagged == 1 && m.Published == 0 && m.LastEventUUID == med.UUID
		return ok, fmt.Sprintf("high %+v, medium %+v", h, m)
	})
	inst := e.mispInstance()
	if f := inst.Status.Feed; f == nil || f.State != status.FeedStateConnected {
		t.Errorf("status.feed = %+v, want Connected", f)
	}
	eventually(t, "a persisted catch-up watermark", func() (bool, string) {
		c := e.mispInstance().Status.CatchUp
		return c != nil && c.Watermark != nil && c.LastRunTime != nil, fmt.Sprintf("%+v", c)
	})
	// The curator's fields are owned by its field manager only.
	for _, mf := range inst.ManagedFields {
		if mf.Subresource == "status" && mf.Manager != status.FieldManager {
			t.Errorf("status field manager %q, want only %q", mf.Manager, status.FieldManager)
		}
	}
	if e.logs.contains(e.misp.AdminKey()) {
		t.Error("the API key appears in the curator's logs")
	}
}

func TestPushedEventWaitsForTheDebounceAndIsCuratedOnce(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", func(s *v1alpha1.MISPInstanceSpec) {
		s.Curation.PushDebounce = &metav1.Duration{Duration: 2 * time.Second}
	})
	e.policy("medium", "c", false, mediumOrg)
	e.start(e.quietCatchUp())
	e.waitSubscribed(1)
	e.waitFirstPass()

	// An unpublished push: no misp_json ends it, so only the debounce does. A second
	// version 500 ms later restarts the debounce and is coalesced into one curation.
	pushed := time.Now()
	ev := e.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: mediumOrg}, Attributes: 1})
	time.Sleep(500 * time.Millisecond)
	e.misp.SimulatePushEdit(ev.UUID, func(x *misptest.Event) { x.Attributes = 2 })
	eventually(t, "the pushed event tagged", func() (bool, string) { return e.curated(ev.UUID, false, tagC) })

	reqs := e.requestsAbout(ev.UUID)
	if len(reqs) == 0 {
		t.Fatal("no request about the pushed event")
	}
	if wait := reqs[0].Time.Sub(pushed); wait < 2*time.Second {
		t.Errorf("first MISP call %s after the push, want at least the 2s debounce (+500ms for the second version)", wait)
	}
	if n := countRoute(reqs, "/tags/attachTagToObject"); n != 1 {
		t.Errorf("%d attach calls for two versions pushed within the debounce, want 1", n)
	}
}

func TestDuplicateMessagesCostOneCuration(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	e.start(e.quietCatchUp())
	e.waitSubscribed(1)
	e.waitFirstPass()

	ev := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	frame := []byte(`{"Event":"` + ev.UUID + `","Server":"1","action":"add_from_connected_server"}`)
	for range 5 {
		e.misp.Publish("misp_json_event", frame)
	}
	eventually(t, "the event curated", func() (bool, string) {
		return e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	// A later event is the sync point: once it is curated, the duplicates were handled.
	later := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the later event curated", func() (bool, string) {
		return e.curated(later.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	reqs := e.requestsAbout(ev.UUID)
	if n := countRoute(reqs, "/tags/attachTagToObject"); n != 1 {
		t.Errorf("%d attach calls for one event announced 6 times, want 1", n)
	}
	if n := countRoute(reqs, "/events/publish"); n != 1 {
		t.Errorf("%d publish calls for one event announced 6 times, want 1", n)
	}
	if n := countRoute(reqs, "/tags/removeTagFromObject"); n != 1 {
		t.Errorf("%d remove calls, want 1", n)
	}
}

func TestUntrustedEventsCostNoCall(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	e.start(e.config())
	e.waitSubscribed(1)

	pulled := e.misp.SimulatePull(pulledEvent(untrustedOrg, true, "tlp:green"))
	pushed := e.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: untrustedOrg}, Published: true, Attributes: 1})
	sync := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the trusted event curated", func() (bool, string) {
		return e.curated(sync.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	// The push debounce (1s) of the untrusted push has passed by then too.
	time.Sleep(1500 * time.Millisecond)
	for _, uuid := range []string{pulled.UUID, pushed.UUID} {
		if reqs := e.requestsAbout(uuid); len(reqs) != 0 {
			t.Errorf("untrusted event %s cost %d MISP calls (first %s %s), want 0", uuid, len(reqs), reqs[0].Method, reqs[0].Route)
		}
		ev, _ := e.misp.Event(uuid)
		for _, tag := range ev.Tags {
			if tag.Local {
				t.Errorf("untrusted event %s was changed: tags %v", uuid, ev.Tags)
			}
		}
	}
}

func TestTrustChangeReCuratesTheOrgsEvents(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("medium", "c", false, mediumOrg)
	e.start(e.config())
	e.waitSubscribed(1)

	ev := e.misp.SimulatePull(pulledEvent(laterOrg, true))
	sync := e.misp.SimulatePull(pulledEvent(mediumOrg, true))
	eventually(t, "the trusted event curated", func() (bool, string) { return e.curated(sync.UUID, false, tagC) })
	if ok, _ := e.curated(ev.UUID, false, tagC); ok {
		t.Fatal("an event of an org no policy names was tagged")
	}

	// The org is added to a new publishing policy: its earlier event is re-curated.
	e.policy("high", "a", true, laterOrg)
	eventually(t, "the earlier event of the newly trusted org curated", func() (bool, string) {
		return e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete)
	})
	eventually(t, "the re-curation counted in the new policy's status", func() (bool, string) {
		c := e.curation("high")
		return c != nil && c.Tagged == 1 && c.LastEventUUID == ev.UUID, fmt.Sprintf("%+v", c)
	})
}

func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", func(s *v1alpha1.MISPInstanceSpec) { s.Curation.DryRun = true })
	e.policy("high", "a", true, highOrg)
	e.start(e.config())
	e.waitSubscribed(1)

	a := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	b := e.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: highOrg}, Published: true, Attributes: 1})
	eventually(t, "both plans logged", func() (bool, string) {
		return e.logs.line("dry run", a.UUID) && e.logs.line("dry run", b.UUID), ""
	})
	if n := e.misp.WriteCalls(); n != 0 {
		t.Fatalf("dry run made %d writes", n)
	}
	// The status says what switching dry run off would do: a (pulled, published, with the
	// partner's incomplete tag) would be tagged and published again after the removal; b
	// (pushed, published, no incomplete tag) only tagged. Catch-up passes and the push's
	// duplicate row messages plan them again: each still counts once.
	eventually(t, "the dry-run counters", func() (bool, string) {
		c := e.curation("high")
		return c != nil && c.WouldTag == 2 && c.WouldPublish == 1, fmt.Sprintf("%+v", c)
	})
	planned := e.logs.countLines("dry run", a.UUID)
	e.misp.SimulatePullEdit(a.UUID, func(ev *misptest.Event) { ev.Attributes++ })
	eventually(t, "the edit planned", func() (bool, string) { return e.logs.countLines("dry run", a.UUID) > planned, "" })
	time.Sleep(500 * time.Millisecond) // a status flush (200 ms) after it
	if c := e.curation("high"); c.WouldTag != 2 || c.WouldPublish != 1 || c.Tagged != 0 || c.Published != 0 {
		t.Errorf("dry run counted %+v, want wouldTag 2, wouldPublish 1 and nothing done", c)
	}
	if n := e.misp.WriteCalls(); n != 0 {
		t.Fatalf("dry run made %d writes", n)
	}
}

// indexSince returns the timestamp filter of every /events/index search in the log.
func indexSince(t *testing.T, reqs []misptest.RequestRecord) []int64 {
	var out []int64
	for _, r := range reqs {
		if r.Route != "/events/index" {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatalf("index body %q: %v", r.Body, err)
		}
		if s, ok := body["timestamp"].(string); ok && body["eventid"] == nil {
			n, _ := strconv.ParseInt(s, 10, 64)
			out = append(out, n)
		}
	}
	return out
}

func TestRestartCatchesUpFromThePersistedWatermark(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	e.policy("medium", "c", false, mediumOrg)
	// Quiet catch-up: exact counters need each event curated once, and a pass overlapping
	// a feed curation hands the engine metadata read before that curation finished, which
	// makes it curate (and count) the event a second time (reported to the engine).
	first := e.start(e.quietCatchUp())
	e.waitSubscribed(1)
	e.waitFirstPass()
	before := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "an event curated before the restart", func() (bool, string) { return e.curated(before.UUID, true, tagA) })
	eventually(t, "a persisted watermark", func() (bool, string) {
		c := e.mispInstance().Status.CatchUp
		return c != nil && c.Watermark != nil, fmt.Sprintf("%+v", c)
	})
	first.stop()
	// The stopping curator wrote its last counts and watermark.
	wm := e.mispInstance().Status.CatchUp.Watermark.Time
	if c := e.curation("high"); c == nil || c.Tagged != 1 {
		t.Fatalf("status.curation of high after the stop = %+v, want tagged 1", c)
	}

	// Synchronised while no curator runs: their ZeroMQ messages are lost.
	var missed []misptest.Event
	for range 3 {
		missed = append(missed, e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete)))
	}
	missed = append(missed, e.misp.SimulatePush(misptest.Event{Orgc: misptest.Org{UUID: mediumOrg}, Attributes: 1}))
	e.misp.ResetStats()

	e.start(e.quietCatchUp())
	for i, ev := range missed {
		publish := i < 3
		want := []string{tagC}
		if publish {
			want = []string{tagA, trust.TagWorkflowComplete}
		}
		eventually(t, "an event synchronised while the curator was down curated", func() (bool, string) {
			return e.curated(ev.UUID, publish, want...)
		})
	}
	// The counters continue from the status the first curator left.
	eventually(t, "counters continued across the restart", func() (bool, string) {
		h, m := e.curation("high"), e.curation("medium")
		return h != nil && m != nil && h.Tagged == 4 && h.Published == 3 && m.Tagged == 1, fmt.Sprintf("high %+v, medium %+v", h, m)
	})
	since := indexSince(t, e.misp.Requests())
	if len(since) == 0 || since[0] != wm.Add(-2*time.Minute).Unix() {
		t.Errorf("first search after the restart filtered on timestamp %v, want the persisted watermark - 2m = %d",
			since, wm.Add(-2*time.Minute).Unix())
	}
}

func leaseHolder(t *testing.T, ns string) string {
	var l coordinationv1.Lease
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: LeaderElectionID}, &l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func TestLeaderFailover(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	cfg := func(release bool) Config {
		c := e.config()
		c.LeaderElect = true
		c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 3*time.Second, 2*time.Second, 500*time.Millisecond
		c.ReleaseOnCancel = release
		return c
	}
	leader := e.start(cfg(true))
	eventually(t, "a leader", func() (bool, string) { return leaseHolder(t, e.ns) != "", "" })
	first := leaseHolder(t, e.ns)
	standby := e.start(cfg(false))
	e.waitSubscribed(1)
	ev := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the leader curates", func() (bool, string) { return e.curated(ev.UUID, true, tagA) })
	time.Sleep(time.Second)
	if n := e.misp.ZMQStats().Subscribers; n != 1 {
		t.Fatalf("%d ZeroMQ subscribers with a leader and a standby, want 1 (the standby must not act)", n)
	}

	// A clean shutdown hands the Lease over at once.
	stopped := time.Now()
	leader.stop()
	eventually(t, "the standby takes the Lease", func() (bool, string) {
		h := leaseHolder(t, e.ns)
		return h != "" && h != first, h
	})
	graceful := time.Since(stopped)
	e.waitSubscribed(1)
	curating := time.Since(stopped)
	ev2 := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the new leader curates", func() (bool, string) { return e.curated(ev2.UUID, true, tagA) })
	t.Logf("failover after a clean shutdown: Lease taken %s after the leader stopped, feed subscribed after %s",
		graceful.Round(time.Millisecond), curating.Round(time.Millisecond))

	// A crash keeps the Lease until it expires: a third replica waits for LeaseDuration.
	second := leaseHolder(t, e.ns)
	third := e.start(cfg(true))
	_ = third
	time.Sleep(time.Second)
	crashed := time.Now()
	standby.stop() // ReleaseOnCancel false: like a killed process, the Lease stays held
	// Synchronised while no replica leads: its messages reach nobody; catch-up finds it.
	gap := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the third replica takes the expired Lease", func() (bool, string) {
		h := leaseHolder(t, e.ns)
		return h != "" && h != second, h
	})
	crash := time.Since(crashed)
	e.waitSubscribed(1)
	ev3 := e.misp.SimulatePull(pulledEvent(highOrg, true))
	eventually(t, "the third leader curates", func() (bool, string) { return e.curated(ev3.UUID, true, tagA) })
	eventually(t, "the event synchronised without a leader curated", func() (bool, string) { return e.curated(gap.UUID, true, tagA) })
	t.Logf("failover after a crash (Lease not released, duration 3s, retry 500ms): Lease taken %s after the leader died",
		crash.Round(time.Millisecond))
	if crash < 1500*time.Millisecond { // a released Lease is taken within a retry period or two
		t.Errorf("the Lease of a crashed leader was taken after %s, before it could expire", crash)
	}
}
