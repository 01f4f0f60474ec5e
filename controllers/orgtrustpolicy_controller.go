package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// +kubebuilder:rbac:groups=misptrust.io,resources=orgtrustpolicies,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=misptrust.io,resources=orgtrustpolicies/status,verbs=patch
// +kubebuilder:rbac:groups=misptrust.io,resources=orgtrustpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get,resourceNames=orgtrustpolicies.misptrust.io

// policyCRD is the OrgTrustPolicy CRD: while it is being deleted (operator
// uninstall) finalizers keep warninglists instead of deleting them.
const policyCRD = "orgtrustpolicies.misptrust.io"

// OrgTrustPolicyReconciler keeps one MISP custom warninglist per
// OrgTrustPolicy equal to the organisations the policy wins.
type OrgTrustPolicyReconciler struct {
	client     client.Client
	apiReader  client.Reader
	clients    *mispClients
	precedence *precedence
	claims     *claims
	backoff    *instanceBackoff
	mem        *listMemory
	recorder   events.EventRecorder
	metrics    *metrics
	opts       Options
}

// Reconcile reads the policy top to bottom: deletion, finalizer, organisations
// and precedence (no MISP), the instance gate, then the warninglist.
func (r *OrgTrustPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.OrgTrustPolicy
	if err := r.client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.mem.forget(req.NamespacedName)
			r.precedence.forgetPolicy(req.NamespacedName)
			r.claims.release(req.String())
			r.metrics.forgetPolicy(req.String())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get OrgTrustPolicy %s: %w", req.NamespacedName, err)
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("policy", req.String(), "instance", p.Spec.InstanceRef.Name))
	if !p.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &p)
	}
	if err := r.ensureFinalizer(ctx, &p); err != nil {
		return ctrl.Result{}, err
	}

	b := newPolicyStatus(&p)
	res, err := r.resolve(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	b.setResolution(res)

	result, syncErr := r.syncWarninglist(ctx, &p, res, b)
	b.setClaims(r.claims.of(trust.Key(&p)))
	if _, err := b.apply(ctx, r.client, metav1.NewTime(r.opts.Clock.Now())); err != nil {
		return ctrl.Result{}, err
	}
	if syncErr != nil {
		// Back off through the work queue (1s → 5m) rather than retrying at once.
		return ctrl.Result{}, syncErr
	}
	return result, nil
}

// syncWarninglist gates on the instance and brings the list in line.
func (r *OrgTrustPolicyReconciler) syncWarninglist(ctx context.Context, p *v1alpha1.OrgTrustPolicy, res resolution, b *policyStatusBuilder) (ctrl.Result, error) {
	inst, gate, err := r.instanceFor(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if gate != nil {
		// No MISP call: the instance watch brings the policy back when it is Ready.
		b.setGate(gate)
		return ctrl.Result{}, nil
	}
	b.setCuration(inst)
	owner := ownerOf(p, inst)
	want := buildDesiredList(p, owner, res.Won, res.WonSharers)
	self := trust.Key(p)
	switch {
	case res.NameOwner != "":
		msg := fmt.Sprintf("OrgTrustPolicy %s already manages warninglist %q on this instance; set spec.warninglistName to another name.", res.NameOwner, want.Name)
		b.setSynced(metav1.ConditionFalse, ReasonWarninglistNameTaken, msg)
		b.setNameConflict(ReasonWarninglistNameTaken, msg)
		r.claims.claim(res.NameOwner, self, fmt.Sprintf("same warninglistName %q on MISPInstance %s", want.Name, owner.Instance))
		r.warnOnChange(p, b, "SyncRefused")
		return ctrl.Result{}, nil
	case res.Unusable != nil && res.Unusable.Kind == trust.ProblemNotAllowed:
		// Same as a missing source: the list is left as it is.
		b.setSynced(metav1.ConditionFalse, ReasonOrganisationsSourceNotAllowed, fmt.Sprintf(
			"%s; the warninglist is left unchanged until it does (see OrganisationsValid).", res.Unusable.Reason))
		r.warnOnChange(p, b, "SyncRefused")
		return ctrl.Result{}, nil
	case res.Unusable != nil:
		// Leave the list as it is: writing it without a missing ConfigMap's
		// organisations would drop them all at once (e.g. while a GitOps tool
		// applies the policy before its ConfigMap).
		b.setSynced(metav1.ConditionFalse, ReasonOrganisationsSourceMissing,
			"An organisationsFrom ConfigMap or key does not exist (see OrganisationsValid); the warninglist is left unchanged until it does.")
		r.warnOnChange(p, b, "SyncRefused")
		return ctrl.Result{}, nil
	}

	instKey := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
	if wait, last := r.backoff.wait(instKey, inst.Spec.URL); wait > 0 {
		b.setSynced(metav1.ConditionFalse, ReasonMISPUnavailable, fmt.Sprintf(
			"MISP of MISPInstance %q did not answer (%s); the warninglist is synced again in %s.", inst.Name, last, wait.Round(time.Second)))
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	api, err := r.clients.Get(ctx, inst)
	var ce *credentialError
	switch {
	case errors.As(err, &ce):
		b.setGate(&refusal{Reason: ReasonInstanceNotReady, Message: fmt.Sprintf("MISPInstance %q cannot be used: %s", inst.Name, ce.Message)})
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	s := &syncer{
		api: api, mem: r.mem, metrics: r.metrics, name: client.ObjectKeyFromObject(p), uid: p.UID,
		instance: string(inst.UID) + "|" + inst.Spec.URL, metricsInstance: instanceKey(inst), owner: owner, foreign: r.foreignOwner,
		now: r.opts.Clock.Now(), interval: r.opts.ResyncInterval,
	}
	r.metrics.initPolicy(s.metricsInstance, s.name.String())
	// The MISP calls of a reconcile have a deadline: a MISP that stops answering
	// holds a worker for at most this long (then its instance backs off); the
	// status is still written with the reconcile's own context.
	mctx, cancel := context.WithTimeout(ctx, r.opts.ReconcileTimeout)
	out, syncErr := s.sync(mctx, want, statusRecord(p, want.Description))
	cancel()
	if syncErr == nil {
		r.backoff.ok(instKey)
	}
	r.report(ctx, p, want, out)
	if out.Refused != nil && out.Refused.Owner != "" {
		b.setNameConflict(out.Refused.Reason, out.Refused.Message)
		r.claims.claim(out.Refused.Owner, self, fmt.Sprintf("warninglist %q of MISPInstance %s", truncateMISP(want.Name), owner.Instance))
	} else if syncErr == nil {
		r.claims.release(self)
	}
	switch {
	case syncErr != nil && syncErrorReason(syncErr) == ReasonMISPUnavailable:
		// This MISP is not called again, by this policy or its siblings, before
		// the instance's backoff ends.
		wait := r.backoff.failed(instKey, inst.Spec.URL, syncErr)
		b.setSynced(metav1.ConditionFalse, ReasonMISPUnavailable, fmt.Sprintf("Cannot sync warninglist %q: %s; next attempt in %s.",
			want.Name, trimDot(syncErr), wait.Round(time.Second)))
		if out.Created {
			b.setWarninglist(out.ID, out.Version, want)
		}
		r.warnOnChange(p, b, "SyncFailed")
		return ctrl.Result{RequeueAfter: wait}, nil
	case syncErr != nil:
		reason := syncErrorReason(syncErr)
		b.setSynced(metav1.ConditionFalse, reason, fmt.Sprintf("Cannot sync warninglist %q: %s.", want.Name, trimDot(syncErr)))
		if out.Created {
			b.setWarninglist(out.ID, out.Version, want) // the entries are in MISP; only enabling failed
		}
		r.warnOnChange(p, b, "SyncFailed")
		return ctrl.Result{}, syncErr
	case out.Refused != nil:
		b.setSynced(metav1.ConditionFalse, out.Refused.Reason, out.Refused.Message)
		r.warnOnChange(p, b, "SyncRefused")
		return ctrl.Result{RequeueAfter: jittered(r.opts.ResyncInterval)}, nil
	}
	b.setWarninglist(out.ID, out.Version, want)
	held := plural(want.Orgs, "organisation")
	if want.Orgs == 0 {
		held = "no organisation (one placeholder entry: MISP refuses an empty list)"
	}
	b.setSynced(metav1.ConditionTrue, ReasonSynced, fmt.Sprintf("Warninglist %q (id %s) is enabled and holds %s.", truncateMISP(want.Name), out.ID, held))
	next := r.opts.ResyncInterval
	if st, ok := r.mem.get(s.name, s.uid, s.instance); ok && !st.nextCheck.IsZero() {
		next = st.nextCheck.Sub(r.opts.Clock.Now())
	}
	// A floor, so a resync that is already due cannot spin.
	return ctrl.Result{RequeueAfter: max(next, min(time.Second, r.opts.ResyncInterval))}, nil
}

// instanceFor returns the policy's MISPInstance, or why MISP must not be
// called: missing, being deleted, not Ready, or not checked since its spec
// changed.
func (r *OrgTrustPolicyReconciler) instanceFor(ctx context.Context, p *v1alpha1.OrgTrustPolicy) (*v1alpha1.MISPInstance, *refusal, error) {
	var inst v1alpha1.MISPInstance
	name := p.Spec.InstanceRef.Name
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &refusal{Reason: ReasonInstanceNotFound, Message: fmt.Sprintf("MISPInstance %q does not exist in namespace %s; MISP is not called until it does.", name, p.Namespace)}, nil
		}
		return nil, nil, fmt.Errorf("get MISPInstance %s/%s: %w", p.Namespace, name, err)
	}
	if !inst.DeletionTimestamp.IsZero() {
		return nil, &refusal{Reason: ReasonInstanceNotFound, Message: fmt.Sprintf("MISPInstance %q is being deleted; MISP is not called.", name)}, nil
	}
	ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return nil, &refusal{Reason: ReasonInstanceNotReady, Message: fmt.Sprintf("MISPInstance %q has not been checked yet; MISP is not called until it is Ready.", name)}, nil
	case ready.Status != metav1.ConditionTrue:
		return nil, &refusal{Reason: ReasonInstanceNotReady, Message: fmt.Sprintf("MISPInstance %q is not Ready (%s); MISP is not called until it is.", name, ready.Reason)}, nil
	case ready.ObservedGeneration != inst.Generation:
		return nil, &refusal{Reason: ReasonInstanceNotReady, Message: fmt.Sprintf("MISPInstance %q has not been checked since its spec changed; MISP is not called until it is.", name)}, nil
	}
	return &inst, nil, nil
}

// ensureFinalizer keeps the finalizer exactly when deletionPolicy is Delete:
// with Retain (the default) there is nothing to clean up, so a policy never
// blocks its own deletion.
func (r *OrgTrustPolicyReconciler) ensureFinalizer(ctx context.Context, p *v1alpha1.OrgTrustPolicy) error {
	want := trust.DeletionPolicy(p) == v1alpha1.DeletionPolicyDelete
	if want == controllerutil.ContainsFinalizer(p, Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want {
		controllerutil.AddFinalizer(p, Finalizer)
	} else {
		controllerutil.RemoveFinalizer(p, Finalizer)
	}
	if err := r.client.Patch(ctx, p, patch); err != nil {
		return fmt.Errorf("update finalizer of OrgTrustPolicy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// finalize runs when a policy is being deleted.
func (r *OrgTrustPolicyReconciler) finalize(ctx context.Context, p *v1alpha1.OrgTrustPolicy) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(p)
	if !controllerutil.ContainsFinalizer(p, Finalizer) {
		r.mem.forget(key)
		return ctrl.Result{}, nil
	}
	want := buildDesiredList(p, listOwner{}, nil, nil) // its name is all that is needed
	release := func() (ctrl.Result, error) {
		patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.RemoveFinalizer(p, Finalizer)
		if err := r.client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("remove finalizer of OrgTrustPolicy %s: %w", key, err)
		}
		return ctrl.Result{}, nil
	}
	retain := func(why string) (ctrl.Result, error) {
		r.recorder.Eventf(p, nil, corev1.EventTypeWarning, "WarninglistRetained", "Delete", "Warninglist %q is left in MISP: %s.", want.Name, why)
		return release()
	}

	if trust.DeletionPolicy(p) != v1alpha1.DeletionPolicyDelete || r.mem.deleted(key, p.UID) {
		return release()
	}
	// Uninstalling the operator deletes the CRD, which deletes every policy:
	// that must never delete lists.
	uninstall, err := r.crdBeingDeleted(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if uninstall {
		return retain("the OrgTrustPolicy CRD is being deleted (operator uninstall)")
	}
	inst, gate, err := r.instanceFor(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if gate != nil && gate.Reason == ReasonInstanceNotFound {
		// Nothing can reach that MISP any more; holding the policy forever would
		// block namespace deletion.
		return retain(gate.Message)
	}
	b := newPolicyStatus(p)
	if gate != nil {
		b.setGate(&refusal{Reason: gate.Reason, Message: gate.Message + " The warninglist is deleted once it is."})
		_, err := b.apply(ctx, r.client, metav1.NewTime(r.opts.Clock.Now()))
		return ctrl.Result{}, err
	}
	api, err := r.clients.Get(ctx, inst)
	if err != nil {
		return ctrl.Result{}, err
	}
	prev := statusRecord(p, "")
	if st, ok := r.mem.get(key, p.UID, string(inst.UID)+"|"+inst.Spec.URL); ok {
		prev = st.listRecord
	}
	dctx, cancel := context.WithTimeout(ctx, r.opts.ReconcileTimeout)
	id, kept, err := deleteList(dctx, api, want, prev, ownerOf(p, inst))
	cancel()
	if kept != "" {
		// Another object's list, or one the operator never wrote: never deleted.
		return retain(kept)
	}
	if err != nil {
		b.setSynced(metav1.ConditionFalse, syncErrorReason(err), fmt.Sprintf("Cannot delete warninglist %q: %s.", want.Name, trimDot(err)))
		r.warnOnChange(p, b, "DeleteFailed")
		if _, aerr := b.apply(ctx, r.client, metav1.NewTime(r.opts.Clock.Now())); aerr != nil {
			log.FromContext(ctx).Error(aerr, "write status")
		}
		return ctrl.Result{}, err
	}
	r.mem.markDeleted(key, p.UID)
	if id != "" {
		r.metrics.wrote(p.Namespace+"/"+p.Spec.InstanceRef.Name, key.String(), "delete")
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "WarninglistDeleted", "Delete", "Deleted warninglist %q (id %s) from MISP (deletionPolicy: Delete).", want.Name, id)
		log.FromContext(ctx).Info("deleted warninglist", "warninglist", want.Name, "id", id)
	}
	return release()
}

func (r *OrgTrustPolicyReconciler) crdBeingDeleted(ctx context.Context) (bool, error) {
	var crd metav1.PartialObjectMetadata
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := r.apiReader.Get(ctx, types.NamespacedName{Name: policyCRD}, &crd); err != nil {
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("read CRD %s: %w", policyCRD, err)
	}
	return !crd.DeletionTimestamp.IsZero(), nil
}

// report emits Events, metrics and logs for what syncList did.
func (r *OrgTrustPolicyReconciler) report(ctx context.Context, p *v1alpha1.OrgTrustPolicy, want desiredList, out syncOutcome) {
	logger := log.FromContext(ctx)
	switch {
	case out.Created:
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "WarninglistCreated", "Create", "Created warninglist %q (id %s) with %s.", want.Name, out.ID, plural(want.Orgs, "organisation"))
		logger.Info("created warninglist", "warninglist", want.Name, "id", out.ID, "organisations", want.Orgs)
	case out.Adopted:
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "WarninglistAdopted", "Adopt", "Adopted existing custom warninglist %q (id %s); it now holds %s.", want.Name, out.ID, plural(want.Orgs, "organisation"))
		logger.Info("adopted warninglist", "warninglist", want.Name, "id", out.ID, "organisations", want.Orgs)
	case out.Updated:
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "WarninglistUpdated", "Update", "Updated warninglist %q (id %s); it now holds %s.", want.Name, out.ID, plural(want.Orgs, "organisation"))
		logger.Info("updated warninglist", "warninglist", want.Name, "id", out.ID, "organisations", want.Orgs)
	}
	if len(out.Drift) > 0 {
		for _, k := range out.Drift {
			r.metrics.repaired(p.Namespace+"/"+p.Spec.InstanceRef.Name, client.ObjectKeyFromObject(p).String(), k)
		}
		// The action differs per kind: the events API folds Events with the same
		// regarding, reason and action into one series that keeps the first note.
		r.recorder.Eventf(p, nil, corev1.EventTypeWarning, "WarninglistDriftRepaired", driftAction[out.Drift[0]], "Warninglist %q (id %s) was changed in MISP (%s); repaired.", want.Name, out.ID, out.DriftDetail)
		logger.Info("repaired warninglist drift", "warninglist", want.Name, "id", out.ID, "drift", out.DriftDetail)
	}
}

// driftAction is the Event action of each drift repair.
var driftAction = map[string]string{
	driftEntries:  "RewriteEntries",
	driftMetadata: "RewriteMetadata",
	driftDisabled: "Enable",
	driftDeleted:  "Recreate",
}

// warnOnChange emits a Warning Event when Synced turns to a new failure, not
// on every retry.
func (r *OrgTrustPolicyReconciler) warnOnChange(p *v1alpha1.OrgTrustPolicy, b *policyStatusBuilder, reason string) {
	old := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionSynced)
	if old != nil && old.Status == b.sync.Status && old.Reason == b.sync.Reason {
		return
	}
	r.recorder.Eventf(p, nil, corev1.EventTypeWarning, reason, "Sync", "%s", truncateNote(b.sync.Message))
}

// maxNote keeps Event notes under the events.k8s.io limit (1 kB), which
// MISP's error text could otherwise exceed.
const maxNote = 1000

func truncateNote(s string) string {
	if len(s) <= maxNote {
		return s
	}
	cut := maxNote - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// syncErrorReason maps a MISP failure to the Synced reason.
func syncErrorReason(err error) string {
	switch {
	case errors.Is(err, misp.ErrForbidden), errors.Is(err, misp.ErrUnauthorized):
		return ReasonPermissionDenied
	case errors.Is(err, misp.ErrValidation), errors.Is(err, misp.ErrNotAllowed), errors.Is(err, misp.ErrUnexpectedResponse),
		errors.Is(err, misp.ErrInvalidArgument), errors.Is(err, misp.ErrNotFound):
		return ReasonMISPRejected
	}
	return ReasonMISPUnavailable
}

func (r *OrgTrustPolicyReconciler) setupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &v1alpha1.OrgTrustPolicy{}, indexPolicyInstance, func(o client.Object) []string {
		return []string{o.(*v1alpha1.OrgTrustPolicy).Spec.InstanceRef.Name}
	}); err != nil {
		return fmt.Errorf("index OrgTrustPolicies by instance: %w", err)
	}
	if err := idx.IndexField(context.Background(), &v1alpha1.OrgTrustPolicy{}, indexPolicyConfigMaps, func(o client.Object) []string {
		var names []string
		for _, ref := range o.(*v1alpha1.OrgTrustPolicy).Spec.OrganisationsFrom {
			if !slices.Contains(names, ref.Name) {
				names = append(names, ref.Name)
			}
		}
		return names
	}); err != nil {
		return fmt.Errorf("index OrgTrustPolicies by ConfigMap: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("orgtrustpolicy").
		// Status writes (ours, the curator's counters) do not trigger a reconcile.
		For(&v1alpha1.OrgTrustPolicy{}, builder.WithPredicates(policyChanged)).
		// A change of one policy can move organisations between its siblings.
		Watches(&v1alpha1.OrgTrustPolicy{}, handler.EnqueueRequestsFromMapFunc(r.siblingsOf), builder.WithPredicates(policyChanged)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.policiesForConfigMap), builder.OnlyMetadata).
		Watches(&v1alpha1.MISPInstance{}, handler.EnqueueRequestsFromMapFunc(r.policiesForInstance), builder.WithPredicates(instanceStateChanged)).
		// The owner of a warninglist another policy was refused reports the clash.
		WatchesRawSource(source.Channel(r.claims.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles,
			RateLimiter:             BuildRateLimiter(r.opts),
			SkipNameValidation:      &r.opts.SkipNameValidation,
		}).
		Complete(r)
}

// policyChanged passes spec changes, deletion and finalizer changes; status
// updates are filtered out.
var policyChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()) ||
			!slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers())
	},
}

// instanceStateChanged passes instance changes that matter to its policies:
// Ready (status and the generation it was computed for), HostOrg and
// SiteAdmin (CurationPermitted), the spec and deletion. The curator's feed
// status updates are filtered out.
var instanceStateChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		a, okA := e.ObjectOld.(*v1alpha1.MISPInstance)
		b, okB := e.ObjectNew.(*v1alpha1.MISPInstance)
		if !okA || !okB {
			return true
		}
		return a.Generation != b.Generation || !a.DeletionTimestamp.Equal(b.DeletionTimestamp) ||
			instanceSignature(a) != instanceSignature(b)
	},
}

func instanceSignature(i *v1alpha1.MISPInstance) string {
	sig := ""
	for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionHostOrg, v1alpha1.ConditionSiteAdmin} {
		if c := meta.FindStatusCondition(i.Status.Conditions, t); c != nil {
			sig += fmt.Sprintf("%s=%s/%s/%d;", t, c.Status, c.Reason, c.ObservedGeneration)
		}
	}
	return sig
}

func (r *OrgTrustPolicyReconciler) siblingsOf(ctx context.Context, o client.Object) []reconcile.Request {
	p, ok := o.(*v1alpha1.OrgTrustPolicy)
	if !ok {
		return nil
	}
	return r.policiesOfInstances(ctx, p.Namespace, []string{p.Spec.InstanceRef.Name})
}

func (r *OrgTrustPolicyReconciler) policiesForInstance(ctx context.Context, o client.Object) []reconcile.Request {
	return r.policiesOfInstances(ctx, o.GetNamespace(), []string{o.GetName()})
}

// policiesForConfigMap enqueues the policies reading the ConfigMap and all
// their siblings (their precedence depends on it too).
func (r *OrgTrustPolicyReconciler) policiesForConfigMap(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.OrgTrustPolicyList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexPolicyConfigMaps: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list OrgTrustPolicies reading a ConfigMap", "configmap", o.GetName())
		return nil
	}
	var instances []string
	for _, p := range list.Items {
		if !slices.Contains(instances, p.Spec.InstanceRef.Name) {
			instances = append(instances, p.Spec.InstanceRef.Name)
		}
	}
	return r.policiesOfInstances(ctx, o.GetNamespace(), instances)
}

func (r *OrgTrustPolicyReconciler) policiesOfInstances(ctx context.Context, ns string, instances []string) []reconcile.Request {
	var out []reconcile.Request
	for _, name := range instances {
		var list v1alpha1.OrgTrustPolicyList
		if err := r.client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexPolicyInstance: name}); err != nil {
			log.FromContext(ctx).Error(err, "list OrgTrustPolicies of an instance", "instance", name)
			continue
		}
		for _, p := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
	}
	return out
}

// foreignOwner decides whether p may take over a list whose description names
// another owner o: never while o is a live policy that still uses that
// MISPInstance (the clash is reported on both sides); yes when o is gone and
// was one of this cluster's (its MISPInstance, by uid, is here), or when the
// description predates instance uids; otherwise (o unknown here: another
// cluster's operator) the list is left alone.
func (r *OrgTrustPolicyReconciler) foreignOwner(ctx context.Context, wl *misp.Warninglist, o listOwner) (*refusal, error) {
	refuse := ownedElsewhere(wl, o)
	ns, name, ok := strings.Cut(o.Policy, "/")
	if !ok {
		return refuse, nil
	}
	var owner v1alpha1.OrgTrustPolicy
	err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &owner)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		// Typically a namespace this controller does not watch: the owner
		// cannot be shown gone, so it is not.
		log.FromContext(ctx).V(1).Info("cannot read the owner of a warninglist", "owner", o.Policy, "error", err.Error())
		return refuse, nil
	case owner.DeletionTimestamp.IsZero() && (o.Instance == "" || o.Instance == owner.Namespace+"/"+owner.Spec.InstanceRef.Name):
		return refuse, nil
	}
	if o.InstanceUID == "" {
		return nil, nil
	}
	var insts v1alpha1.MISPInstanceList
	if err := r.client.List(ctx, &insts); err != nil {
		return nil, fmt.Errorf("list MISPInstances: %w", err)
	}
	for i := range insts.Items {
		if insts.Items[i].UID == o.InstanceUID {
			return nil, nil
		}
	}
	refuse.Message += " (Its MISPInstance is not in this cluster: another installation of the operator may manage it.)"
	return refuse, nil
}
