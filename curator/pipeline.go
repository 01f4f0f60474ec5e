package curator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/catchup"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/curator/sources"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// parts is what every pipeline of the process shares.
type parts struct {
	cfg     Config
	writer  *status.Writer
	log     logr.Logger
	misp    *misp.Metrics
	feed    *feed.Metrics
	engine  *engine.Metrics
	catchup *catchup.Metrics
}

// pipeline is the running curation of one MISPInstance.
type pipeline struct {
	key        types.NamespacedName
	configKey  string       // pipelineKey: a different one means restart
	generation atomic.Int64 // of the MISPInstance last synced (the condition's observedGeneration)
	idx        *index.Index
	eng        *engine.Engine
	runner     *catchup.Runner
	sub        *feed.Subscriber // nil without spec.zeroMQ
	// dryRun is the engine's dry-run switch as last set (only the supervisor's worker
	// touches it).
	dryRun bool
	// persisted is the catch-up watermark last handed to the status (or read from it).
	persistedMu sync.Mutex
	persisted   time.Time
	cancel      context.CancelFunc
	done        chan struct{}
}

// startPipeline builds the parts of one instance's pipeline and starts them under parent.
// A *configError means the instance cannot be curated as configured.
func startPipeline(parent context.Context, sh *parts, inst *v1alpha1.MISPInstance, creds credentials, snap *index.Snapshot) (*pipeline, error) {
	key := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
	name := key.String()
	log := sh.log.WithValues("mispinstance", name)
	p := &pipeline{key: key, configKey: pipelineKey(inst, creds), idx: &index.Index{},
		dryRun: inst.Spec.Curation != nil && inst.Spec.Curation.DryRun}
	p.generation.Store(inst.Generation)
	p.idx.Store(snap)

	mo := trust.ClientOptions(sh.cfg.MISP, inst)
	mo.APIKey, mo.CABundle = creds.apiKey, creds.caBundle
	mo.Metrics, mo.Logger = sh.misp, log.WithName("misp")
	client, err := misp.New(mo)
	if err != nil {
		// misp.New never quotes the key.
		return nil, &configError{fmt.Sprintf("cannot build a MISP client: %v", err)}
	}

	cur := inst.Spec.Curation
	if cur == nil {
		cur = &v1alpha1.CurationSpec{}
	}
	eo := sh.cfg.Engine
	eo.Instance, eo.Index, eo.MISP, eo.DryRun = name, p.idx, client, cur.DryRun
	if cur.Concurrency > 0 {
		eo.Concurrency = int(cur.Concurrency)
	}
	if cur.PushDebounce != nil {
		eo.PushDebounce = cur.PushDebounce.Duration
		if eo.PushDebounce == 0 {
			eo.PushDebounce = -1 // engine.Options: 0 means the default, negative none
		}
	}
	eo.Logger, eo.Metrics = log.WithName("engine"), sh.engine
	// The sharer of an event is found from the ids of the feed in this table; it is read
	// only while a policy names sharingOrganisations (at start, or at the first lookup).
	sharers := sources.New(sources.Options{Lister: client, Logger: log.WithName("sources")})
	eo.Sharers = sharers
	eo.OnOutcome = func(o engine.Outcome) { p.outcome(sh.writer, o) }
	p.eng = engine.New(eo)

	co := sh.cfg.CatchUp
	searcher := catchup.MISPSearcher{Client: client}
	co.Instance, co.Searcher, co.Fields, co.Index, co.Engine, co.Sharers = name, searcher, searcher.Fields(), p.idx, p.eng, sharers
	if c := cur.CatchUp; c != nil {
		if c.Interval != nil && c.Interval.Duration > 0 {
			co.Interval = c.Interval.Duration
		}
		if c.Lookback != nil && c.Lookback.Duration > 0 {
			co.Lookback = c.Lookback.Duration
		}
	}
	co.Watermark = func(ctx context.Context) (time.Time, error) {
		wm, err := sh.writer.Watermark(ctx, key)
		if err == nil {
			p.persistedMu.Lock()
			p.persisted = wm
			p.persistedMu.Unlock()
		}
		return wm, err
	}
	co.OnProgress = func(pr catchup.Progress) {
		p.persistedMu.Lock()
		if !p.eng.DryRun() {
			p.persisted = pr.Watermark
		}
		// In a dry run the persisted watermark stays where it was: the events of the dry
		// run were only logged, and a curator started later without dry run must find
		// them (in this process, Rescan does: supervisor.dryRunEnded).
		wm := p.persisted
		p.persistedMu.Unlock()
		sh.writer.SetCatchUp(key, status.CatchUp{Watermark: wm, LastRun: pr.LastRun, EventsScanned: pr.EventsScanned,
			SkippedRows: pr.SkippedRows})
	}
	co.Logger, co.Metrics = log.WithName("catchup"), sh.catchup
	if p.runner, err = catchup.New(co); err != nil {
		return nil, fmt.Errorf("build the catch-up of %s: %w", name, err)
	}

	if z := inst.Spec.ZeroMQ; z != nil {
		fo := sh.cfg.Feed
		fo.Instance, fo.Endpoint, fo.User, fo.Password = name, z.Endpoint, creds.zmqUser, creds.zmqPassword
		fo.Logger, fo.Metrics = log.WithName("feed"), sh.feed
		fo.OnConnect = func(st feed.State) {
			// What was published while disconnected is lost (PUB/SUB): catch up.
			p.runner.Trigger()
			sh.writer.SetFeed(key, p.generation.Load(), feedStatus(st))
		}
		fo.OnStateChange = func(st feed.State) { sh.writer.SetFeed(key, p.generation.Load(), feedStatus(st)) }
		if p.sub, err = feed.New(fo); err != nil {
			return nil, &configError{fmt.Sprintf("cannot subscribe to the ZeroMQ feed: %v", err)}
		}
	} else {
		sh.writer.SetFeed(key, p.generation.Load(), status.Feed{})
	}

	ctx, cancel := context.WithCancel(parent)
	p.cancel, p.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if snap.HasSharers() {
		run(func() {
			if _, err := sharers.Load(ctx); err != nil && ctx.Err() == nil {
				log.Error(err, "cannot read the organisations or connected servers: events are matched by sharer once they can be read")
			}
		})
	}
	run(func() { _ = p.eng.Run(ctx) })
	run(func() { _ = p.runner.Run(ctx) })
	run(func() { p.reportPublishing(ctx, sh.writer, eo.PublishStuckAfter) })
	if p.sub != nil {
		run(func() { _ = p.sub.Run(ctx) })
		run(func() {
			// Messages is closed when the subscriber stops.
			for m := range p.sub.Messages() {
				p.eng.HandleMessage(m)
			}
		})
		run(func() {
			t := time.NewTicker(feedStatusEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					sh.writer.SetFeed(key, p.generation.Load(), feedStatus(p.sub.State()))
				}
			}
		})
	}
	go func() { wg.Wait(); close(p.done) }()
	log.Info("curation pipeline started", "zeroMQ", p.sub != nil, "dryRun", cur.DryRun, "organisations", snap.Len())
	return p, nil
}

// stop ends the pipeline and waits for every part to return.
func (p *pipeline) stop() {
	p.cancel()
	<-p.done
}

// outcome forwards one finished curation to catch-up (which retries failures and holds
// its watermark for events whose publish is not confirmed yet) and to the policy status.
// Untrusted events change no counter; a dry run counts what it would have done
// (wouldTag, wouldPublish) from the plan it logged.
func (p *pipeline) outcome(w *status.Writer, o engine.Outcome) {
	if o.PublishPending && o.Err == nil {
		p.runner.Pending(o.EventUUID)
	} else {
		p.runner.Settled(o.EventUUID, o.Err)
	}
	if o.Policy == "" {
		return
	}
	ns, name, ok := strings.Cut(o.Policy, "/")
	if !ok {
		return
	}
	w.RecordOutcome(status.Outcome{
		Policy: types.NamespacedName{Namespace: ns, Name: name}, EventUUID: o.EventUUID, Time: o.At,
		Tagged: o.Tagged, Published: o.Published, Republished: o.Republished, AlreadyCurated: o.AlreadyCurated, Err: o.Err,
		DryRun:       o.DryRun,
		WouldTag:     o.DryRun && len(o.Plan.Attach) > 0,
		WouldPublish: o.DryRun && (o.Plan.Publish || o.Plan.PublishIfUnpublished),
	})
}

// reportPublishing copies the engine's unconfirmed publishes into the statuses (the
// instance's PublishesConfirmed condition, each policy's publishesUnconfirmed) until ctx
// ends, and zeroes the policies' counts then: the publishes this pipeline waited for are
// nobody's any more (their events hold catch-up's watermark).
func (p *pipeline) reportPublishing(ctx context.Context, w *status.Writer, stuckAfter time.Duration) {
	if stuckAfter <= 0 {
		stuckAfter = engine.DefaultPublishStuckAfter
	}
	reported := map[string]bool{}
	setPolicies := func(by map[string]int) {
		for key := range reported {
			if by[key] == 0 {
				if ns, name, ok := strings.Cut(key, "/"); ok {
					w.SetUnconfirmed(types.NamespacedName{Namespace: ns, Name: name}, 0)
				}
				delete(reported, key)
			}
		}
		for key, n := range by {
			if ns, name, ok := strings.Cut(key, "/"); ok {
				w.SetUnconfirmed(types.NamespacedName{Namespace: ns, Name: name}, n)
				reported[key] = true
			}
		}
	}
	t := time.NewTicker(feedStatusEvery)
	defer t.Stop()
	for {
		u := p.eng.Unconfirmed()
		w.SetPublishing(p.key, p.generation.Load(), status.Publishing{Unconfirmed: u.Count, Stuck: u.Stuck, Oldest: u.Oldest,
			StuckAfter: stuckAfter})
		setPolicies(u.ByPolicy)
		select {
		case <-ctx.Done():
			setPolicies(nil)
			return
		case <-t.C:
		}
	}
}

// feedStatus is the status writer's view of the subscriber.
func feedStatus(st feed.State) status.Feed {
	f := status.Feed{
		Configured:    true,
		Endpoint:      st.Endpoint,
		Connected:     st.Phase == feed.PhaseConnected,
		LastMessage:   st.LastMessage,
		LastHeartbeat: st.LastHeartbeat,
		Reconnects:    int64(st.Reconnects),
		LastError:     st.LastError,
	}
	if f.Connected {
		f.ConnectedSince = st.ConnectedSince
	}
	switch st.Failure {
	case feed.FailureConnect:
		f.Failure = status.FailureConnect
	case feed.FailureHandshake:
		f.Failure = status.FailureHandshake
	case feed.FailureSilence:
		f.Failure = status.FailureSilence
	case feed.FailureLost:
		f.Failure = status.FailureLost
	}
	return f
}
