package engine

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Organisations of the captures (misp/real/sync/README.md).
const (
	orgHigh      = "1521ae8b-48de-4766-8b2a-fdecef763fa8" // PARTNER-HIGH: high policy, publish
	orgMedium    = "ae01a99a-c08b-4ac3-9e55-69166dad84e9" // PARTNER-SUB: medium policy, tag only
	orgUntrusted = "0b5e4cbd-3f2c-4e4a-9d59-1f7a1c0de001" // in no policy
)

// generous bound for "eventually" on a loaded 2-core machine.
const eventually = 30 * time.Second

func testPolicy(name string, prio int32, grade string, publish bool, orgs ...string) *v1alpha1.OrgTrustPolicy {
	p := &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: name},
		Spec:       v1alpha1.OrgTrustPolicySpec{SourceReliability: grade, Publish: publish, Priority: &prio},
	}
	for _, o := range orgs {
		p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o})
	}
	return p
}

func inlineOrgs(p *v1alpha1.OrgTrustPolicy) []trust.Org {
	orgs, _, _ := trust.EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return "", false, nil })
	return orgs
}

// defaultSnapshot: PARTNER-HIGH in high (grade a, publish), PARTNER-SUB in medium (grade c).
func defaultSnapshot() *index.Snapshot {
	return index.Build([]*v1alpha1.OrgTrustPolicy{
		testPolicy("high", 100, "a", true, orgHigh),
		testPolicy("medium", 50, "c", false, orgMedium),
	}, inlineOrgs)
}

// env is an engine curating against a misptest double through the real MISP client.
type env struct {
	t        *testing.T
	srv      *misptest.Server
	eng      *Engine
	idx      *index.Index
	clock    *fakeClock // nil with the real clock
	outcomes chan Outcome
	cursor   int // messages of srv.Published() already delivered
}

type envConfig struct {
	server    misptest.Options
	apiKey    func(*misptest.Server) string // default the site admin's key
	fakeClock bool
	opts      func(*Options)
	// clientRetries turns the MISP client's own retries on (production settings, short
	// delays); off by default so that the engine's retries are under test.
	clientRetries bool
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	srv := misptest.NewServer(cfg.server)
	t.Cleanup(srv.Close)
	key := srv.AdminKey()
	if cfg.apiKey != nil {
		key = cfg.apiKey(srv)
	}
	// No HTTP retries in the client unless asked: the engine's own retries are under test.
	mo := misp.Options{URL: srv.URL(), APIKey: key, QPS: -1, MaxRetries: -1, Timeout: 10 * time.Second}
	if cfg.clientRetries {
		mo.MaxRetries, mo.RetryBaseDelay, mo.RetryMaxDelay = misp.DefaultMaxRetries, time.Millisecond, 10*time.Millisecond
	}
	client, err := misp.New(mo)
	if err != nil {
		t.Fatal(err)
	}
	ev := &env{t: t, srv: srv, idx: &index.Index{}, outcomes: make(chan Outcome, 1000)}
	ev.idx.Store(defaultSnapshot())
	opts := Options{
		Instance:       "sec/misp",
		Index:          ev.idx,
		MISP:           client,
		Concurrency:    2,
		PushDebounce:   5 * time.Second,
		CoalesceWindow: time.Second,
		RetryBaseDelay: 20 * time.Millisecond,
		RetryMaxDelay:  100 * time.Millisecond,
		Logger:         testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		OnOutcome:      func(o Outcome) { ev.outcomes <- o },
	}
	if cfg.fakeClock {
		ev.clock = newFakeClock()
		opts.Clock = ev.clock
	}
	if cfg.opts != nil {
		cfg.opts(&opts)
	}
	ev.eng = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ev.eng.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ev
}

// deliver parses the double's new ZeroMQ messages with the feed parser and hands those
// that keep returns true for to the engine, as the subscriber does.
func (ev *env) deliver(keep func(feed.Message) bool) []feed.Message {
	ev.t.Helper()
	msgs := ev.srv.Published()
	var out []feed.Message
	for _, m := range msgs[ev.cursor:] {
		pm, err := feed.Parse(m.Frame())
		if err != nil {
			ev.t.Fatalf("parse %s: %v", m.Topic, err)
		}
		if keep == nil || keep(pm) {
			ev.eng.HandleMessage(pm)
			out = append(out, pm)
		}
	}
	ev.cursor = len(msgs)
	return out
}

// skip drops the double's new messages without delivering them (lost on ZeroMQ).
func (ev *env) skip() { ev.cursor = len(ev.srv.Published()) }

func (ev *env) outcome() Outcome {
	ev.t.Helper()
	select {
	case o := <-ev.outcomes:
		return o
	case <-time.After(eventually):
		ev.t.Fatalf("no outcome after %s (pending %d)", eventually, ev.eng.Pending())
	}
	return Outcome{}
}

// noOutcome checks that nothing finishes for a short while: only used where the clock is
// fake, so nothing CAN finish unless the engine is wrong.
func (ev *env) noOutcome(d time.Duration) {
	ev.t.Helper()
	select {
	case o := <-ev.outcomes:
		ev.t.Fatalf("unexpected outcome %+v", o)
	case <-time.After(d):
	}
}

// advance moves the fake clock and wakes the scheduler.
func (ev *env) advance(d time.Duration) {
	ev.clock.Advance(d)
	ev.eng.poke()
}

// idle waits until the engine has nothing pending.
func (ev *env) idle() {
	ev.t.Helper()
	deadline := time.Now().Add(eventually)
	for ev.eng.Pending() > 0 {
		if time.Now().After(deadline) {
			ev.t.Fatalf("engine still has %d events pending", ev.eng.Pending())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// calls is the number of MISP requests since the last ResetStats, all routes.
func (ev *env) calls() int {
	n := 0
	for _, c := range ev.srv.CallsByRoute() {
		n += c
	}
	return n
}

func tagState(e misptest.Event) []string {
	var out []string
	for _, t := range e.Tags {
		kind := "global"
		if t.Local {
			kind = "local"
		}
		out = append(out, t.Name+" "+kind)
	}
	sort.Strings(out)
	return out
}

// fakeClock is a Clock that only moves when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	ch   chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.when.After(c.now) {
			t.ch <- c.now
			continue
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
