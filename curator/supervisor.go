package curator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/trust"
)

// finalFlushTimeout bounds the status write when the curation stops.
const finalFlushTimeout = 3 * time.Second

// supervisor is the leader-only Runnable: it keeps one pipeline per MISPInstance in line
// with the objects and runs the status writer. Its informer event handlers only enqueue
// instance keys; one worker syncs them, so pipelines are never started or stopped
// concurrently.
type supervisor struct {
	sh    *parts
	cache cache.Cache
	// reader reads MISPInstances and OrgTrustPolicies from the cache; live reads the few
	// Secrets and ConfigMaps an instance references from the API server.
	reader client.Reader
	live   client.Reader
	// sources parses each organisationsFrom ConfigMap key once per resourceVersion
	// (a policy change does not re-read and re-parse every list of the instance).
	sources *trust.ConfigMapOrgs
	log     logr.Logger
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName]

	// Only the worker goroutine touches these.
	pipelines map[types.NamespacedName]*pipeline
	// snapshots keeps each instance's last trust index across pipeline restarts, so a
	// restart (new key, new endpoint) still re-curates what a policy change meanwhile
	// changed.
	snapshots map[types.NamespacedName]*index.Snapshot
	// configErrors remembers the last configuration problem logged per instance.
	configErrors map[types.NamespacedName]string
}

func newSupervisor(sh *parts, c cache.Cache, reader, live client.Reader) *supervisor {
	return &supervisor{
		sh: sh, cache: c, reader: reader, live: live, log: sh.log, sources: trust.NewConfigMapOrgs(c, live),
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](time.Second, 5*time.Minute)),
		pipelines:    map[types.NamespacedName]*pipeline{},
		snapshots:    map[types.NamespacedName]*index.Snapshot{},
		configErrors: map[types.NamespacedName]string{},
	}
}

// NeedLeaderElection: only the leader curates.
func (s *supervisor) NeedLeaderElection() bool { return true }

// Start runs until ctx ends (leadership lost or shutdown), then stops every pipeline.
func (s *supervisor) Start(ctx context.Context) error {
	s.log.Info("elected leader: starting curation")
	remove, err := s.watch(ctx)
	if err != nil {
		return err
	}
	defer remove()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); _ = s.sh.writer.Run(ctx) }()
	go func() { <-ctx.Done(); s.queue.ShutDown() }()

	for s.next(ctx) {
	}
	for key, p := range s.pipelines {
		p.stop()
		delete(s.pipelines, key)
	}
	<-writerDone
	// One last write of what the stopped pipelines counted. A successor reads its
	// baseline lazily, at its first flush after its first outcome (seconds after taking
	// over), so this write is normally in its cache by then; a write that loses that race
	// costs only counts, which are informational.
	fctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
	s.sh.writer.Flush(fctx)
	cancel()
	s.log.Info("curation stopped")
	return nil
}

func (s *supervisor) next(ctx context.Context) bool {
	key, shutdown := s.queue.Get()
	if shutdown {
		return false
	}
	defer s.queue.Done(key)
	if err := s.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			s.log.Error(err, "sync curation pipeline; retrying", "mispinstance", key.String())
		}
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

// sync brings the pipeline of one instance in line with its object, policies and Secrets.
func (s *supervisor) sync(ctx context.Context, key types.NamespacedName) error {
	var inst v1alpha1.MISPInstance
	if err := s.reader.Get(ctx, key, &inst); err != nil || inst.DeletionTimestamp != nil {
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("read MISPInstance %s: %w", key, err)
		}
		s.stop(key, "the MISPInstance is deleted")
		delete(s.snapshots, key)
		delete(s.configErrors, key)
		s.sh.catchup.Forget(key.String())
		s.sh.engine.Forget(key.String())
		s.sh.feed.Forget(key.String())
		s.sh.misp.Forget(key.String())
		return nil
	}
	var ee *trust.EndpointError
	if err := trust.CheckEndpoints(&inst, s.sh.cfg.AllowedHosts); errors.As(err, &ee) {
		// Before any Secret is read: no key goes to a host off the allow-list.
		return s.configProblem(key, &inst, &configError{ee.Message})
	}
	snap, err := s.buildIndex(ctx, &inst)
	if err != nil {
		return err
	}
	creds, err := readCredentials(ctx, s.live, &inst)
	if err != nil {
		return s.configProblem(key, &inst, err)
	}
	p := s.pipelines[key]
	if p != nil && p.configKey == pipelineKey(&inst, creds) {
		// Same connection and settings: swap the index and the dry-run switch in place.
		old := p.idx.Swap(snap)
		s.snapshots[key] = snap
		if orgs := index.Diff(old, snap); len(orgs) > 0 {
			s.log.Info("trust changed: re-curating the organisations concerned", "mispinstance", key.String(), "orgs", len(orgs))
			p.runner.Recurate(orgs)
		}
		dryRun := inst.Spec.Curation != nil && inst.Spec.Curation.DryRun
		p.eng.SetDryRun(dryRun)
		if p.dryRun && !dryRun {
			s.dryRunEnded(key, p)
		}
		p.dryRun = dryRun
		p.generation.Store(inst.Generation)
		return nil
	}
	wasDryRun := false
	if p != nil {
		wasDryRun = p.dryRun
		s.stop(key, "its connection or curation settings changed")
	}
	p, err = startPipeline(ctx, s.sh, &inst, creds, snap)
	if err != nil {
		return s.configProblem(key, &inst, err)
	}
	if wasDryRun && !p.dryRun {
		s.dryRunEnded(key, p)
	}
	delete(s.configErrors, key)
	s.pipelines[key] = p
	if prev := s.snapshots[key]; prev != nil {
		if orgs := index.Diff(prev, snap); len(orgs) > 0 {
			p.runner.Recurate(orgs)
		}
	}
	s.snapshots[key] = snap
	return nil
}

// dryRunEnded makes catch-up curate the look-back window once: what arrived during the
// dry run was only logged, and catch-up's watermark moved past it.
func (s *supervisor) dryRunEnded(key types.NamespacedName, p *pipeline) {
	s.log.Info("dry run switched off: curating the events of the look-back window", "mispinstance", key.String())
	p.runner.Rescan()
}

// configProblem stops the instance's pipeline when a person must fix its configuration
// (reported in FeedConnected; the Secret and MISPInstance watches retry when they change)
// and returns other errors for a retry.
func (s *supervisor) configProblem(key types.NamespacedName, inst *v1alpha1.MISPInstance, err error) error {
	var ce *configError
	if !errors.As(err, &ce) {
		return err
	}
	s.stop(key, "its configuration is unusable")
	if s.configErrors[key] != ce.msg {
		s.configErrors[key] = ce.msg
		s.log.Info("cannot curate this MISPInstance until its configuration is fixed", "mispinstance", key.String(), "problem", ce.msg)
	}
	s.sh.writer.SetFeed(key, inst.Generation, status.Feed{Configured: inst.Spec.ZeroMQ != nil, ConfigError: ce.msg})
	return nil
}

func (s *supervisor) stop(key types.NamespacedName, why string) {
	if p := s.pipelines[key]; p != nil {
		p.stop()
		delete(s.pipelines, key)
		s.log.Info("curation pipeline stopped", "mispinstance", key.String(), "reason", why)
	}
}

// buildIndex builds the instance's trust index from its policies. A ConfigMap that cannot
// be read (API error) fails the build, so the running index stays as it is rather than
// losing organisations; a missing ConfigMap or key, or one without the opt-in label
// (trust.AllowLabel), is a problem the controller reports, and its organisations are
// simply absent.
func (s *supervisor) buildIndex(ctx context.Context, inst *v1alpha1.MISPInstance) (*index.Snapshot, error) {
	var list v1alpha1.OrgTrustPolicyList
	if err := s.reader.List(ctx, &list, client.InNamespace(inst.Namespace)); err != nil {
		return nil, fmt.Errorf("list OrgTrustPolicies in %s: %w", inst.Namespace, err)
	}
	var policies []*v1alpha1.OrgTrustPolicy
	for i := range list.Items {
		if list.Items[i].Spec.InstanceRef.Name == inst.Name {
			policies = append(policies, &list.Items[i])
		}
	}
	read := s.sources.Reader(ctx, inst.Namespace)
	var readErr error
	snap := index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org {
		orgs, _, err := trust.EffectiveOrgsFrom(p, read)
		if err != nil && readErr == nil {
			readErr = fmt.Errorf("organisations of OrgTrustPolicy %s: %w", trust.Key(p), err)
		}
		return orgs
	})
	if readErr != nil {
		return nil, readErr
	}
	return snap, nil
}

// ---- watches ----

// watch registers the event handlers that enqueue instance keys and returns a function
// that removes them. The informers replay every existing object on registration, so each
// instance is synced once at start.
func (s *supervisor) watch(ctx context.Context) (func(), error) {
	type reg struct {
		inf cache.Informer
		r   toolscache.ResourceEventHandlerRegistration
	}
	var regs []reg
	remove := func() {
		for _, x := range regs {
			_ = x.inf.RemoveEventHandler(x.r)
		}
	}
	add := func(obj client.Object, h toolscache.ResourceEventHandler) error {
		inf, err := s.cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		r, err := inf.AddEventHandler(h)
		if err != nil {
			return fmt.Errorf("event handler for %T: %w", obj, err)
		}
		regs = append(regs, reg{inf, r})
		return nil
	}
	err := errors.Join(
		add(&v1alpha1.MISPInstance{}, handler(func(o client.Object) { s.enqueue(client.ObjectKeyFromObject(o)) },
			specChanged)),
		add(&v1alpha1.OrgTrustPolicy{}, handler(s.policyChanged, specChanged)),
		add(metadataOf("Secret"), handler(s.secretChanged, versionChanged)),
		add(metadataOf("ConfigMap"), handler(s.configMapChanged, versionChanged)),
	)
	if err != nil {
		remove()
		return nil, err
	}
	return remove, nil
}

func metadataOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return m
}

func (s *supervisor) enqueue(key types.NamespacedName) { s.queue.Add(key) }

// handler calls f for added and deleted objects, and for both versions of an updated one
// when changed says it matters.
func handler(f func(client.Object), changed func(old, new client.Object) bool) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(client.Object); ok {
				f(o)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if ok1 && ok2 && changed(o, n) {
				f(o)
				f(n)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if o, ok := obj.(client.Object); ok {
				f(o)
			}
		},
	}
}

// specChanged ignores status-only updates (the curator's own status writes among them).
// Setting a deletionTimestamp bumps the generation of custom resources, but the check
// does not rely on it.
func specChanged(o, n client.Object) bool {
	return o.GetGeneration() != n.GetGeneration() || (o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
}

func versionChanged(o, n client.Object) bool { return o.GetResourceVersion() != n.GetResourceVersion() }

func (s *supervisor) policyChanged(o client.Object) {
	if p, ok := o.(*v1alpha1.OrgTrustPolicy); ok && p.Spec.InstanceRef.Name != "" {
		s.enqueue(types.NamespacedName{Namespace: p.Namespace, Name: p.Spec.InstanceRef.Name})
	}
}

// secretChanged enqueues the instances of the namespace that reference the Secret.
func (s *supervisor) secretChanged(o client.Object) {
	var list v1alpha1.MISPInstanceList
	if err := s.reader.List(context.Background(), &list, client.InNamespace(o.GetNamespace())); err != nil {
		s.log.Error(err, "list MISPInstances for a Secret change", "namespace", o.GetNamespace())
		return
	}
	for i := range list.Items {
		for _, n := range secretNames(&list.Items[i]) {
			if n == o.GetName() {
				s.enqueue(client.ObjectKeyFromObject(&list.Items[i]))
				break
			}
		}
	}
}

// configMapChanged enqueues the instances of the policies that read the ConfigMap.
func (s *supervisor) configMapChanged(o client.Object) {
	var list v1alpha1.OrgTrustPolicyList
	if err := s.reader.List(context.Background(), &list, client.InNamespace(o.GetNamespace())); err != nil {
		s.log.Error(err, "list OrgTrustPolicies for a ConfigMap change", "namespace", o.GetNamespace())
		return
	}
	for i := range list.Items {
		for _, ref := range list.Items[i].Spec.OrganisationsFrom {
			if ref.Name == o.GetName() {
				s.policyChanged(&list.Items[i])
				break
			}
		}
	}
}
