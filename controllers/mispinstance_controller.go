package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups=misptrust.io,resources=mispinstances,verbs=get;list;watch
// +kubebuilder:rbac:groups=misptrust.io,resources=mispinstances/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// MISPInstanceReconciler checks what a MISPInstance's API key can do and
// reports it in conditions. It owns no MISP object and only reads from MISP.
type MISPInstanceReconciler struct {
	client  client.Client
	clients *mispClients
	backoff *instanceBackoff
	metrics *metrics
	opts    Options
}

// instanceStatus is the part of MISPInstanceStatus the controller owns.
type instanceStatus struct {
	ObservedGeneration int64                  `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition     `json:"conditions,omitempty"`
	MISPVersion        string                 `json:"mispVersion,omitempty"`
	Identity           *v1alpha1.MISPIdentity `json:"identity,omitempty"`
}

// instanceConditionTypes are the condition types the controller owns.
var instanceConditionTypes = []string{
	v1alpha1.ConditionReachable, v1alpha1.ConditionAuthenticated, v1alpha1.ConditionHostOrg,
	v1alpha1.ConditionSiteAdmin, v1alpha1.ConditionWarninglistPermission, v1alpha1.ConditionReady,
}

// Reconcile checks the instance: reads its Secrets, builds (or reuses) its
// MISP client and asks MISP three read-only questions. A MISP that cannot be
// reached makes the work queue back off (1s → 5m); otherwise the next check
// comes after the jittered resync interval, or at once when a referenced
// Secret or the spec changes.
func (r *MISPInstanceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var inst v1alpha1.MISPInstance
	if err := r.client.Get(ctx, req.NamespacedName, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			r.clients.Forget(req.NamespacedName)
			r.metrics.forgetInstance(req.String())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get MISPInstance %s: %w", req.NamespacedName, err)
	}
	if !inst.DeletionTimestamp.IsZero() {
		r.clients.Forget(req.NamespacedName)
		r.metrics.forgetInstance(req.String())
		return ctrl.Result{}, nil
	}

	if wait, _ := r.backoff.wait(req.NamespacedName, inst.Spec.URL); wait > 0 && inst.Status.ObservedGeneration == inst.Generation {
		// Its MISP failed to answer a moment ago: no call before the backoff ends
		// (a changed spec is checked at once).
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var ck instanceCheck
	c, err := r.clients.Get(ctx, &inst)
	var ce *credentialError
	switch {
	case errors.As(err, &ce):
		ck = credentialCheck(ce)
	case err != nil:
		return ctrl.Result{}, err
	default:
		if inst.Spec.TLS != nil && inst.Spec.TLS.InsecureSkipVerify {
			logger.Info("TLS certificate verification of MISP is disabled (spec.tls.insecureSkipVerify)")
		}
		// A deadline for the three reads: a black-holed MISP holds a worker for
		// this long, then backs off.
		cctx, cancel := context.WithTimeout(ctx, r.opts.CheckTimeout)
		ck = checkInstance(cctx, c, inst.Spec.URL)
		cancel()
	}

	st := instanceStatus{ObservedGeneration: inst.Generation, MISPVersion: ck.Version, Identity: ck.Identity}
	if ck.Version == "" && ck.Transient != nil {
		// Keep what was known while MISP is briefly away.
		st.MISPVersion = inst.Status.MISPVersion
		st.Identity = inst.Status.Identity
	}
	conds, changed := mergeConditions(inst.Status.Conditions, ck.Conditions, inst.Generation, metav1.NewTime(r.opts.Clock.Now()))
	st.Conditions = conds
	r.metrics.setReady(req.String(), meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady))
	if changed || inst.Status.ObservedGeneration != st.ObservedGeneration || inst.Status.MISPVersion != st.MISPVersion ||
		!identityEqual(inst.Status.Identity, st.Identity) {
		if err := applyStatus(ctx, r.client, "MISPInstance", &inst, &st); err != nil {
			return ctrl.Result{}, err
		}
		ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
		logger.Info("MISPInstance status changed", "ready", ready.Status, "reason", ready.Reason, "version", st.MISPVersion)
	}
	if ck.Transient != nil {
		// Back off per instance (its policies too) instead of hammering MISP.
		wait := r.backoff.failed(req.NamespacedName, inst.Spec.URL, ck.Transient)
		logger.Info("MISP did not answer; backing off", "error", trimDot(ck.Transient), "retryIn", wait.Round(time.Second).String())
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.backoff.ok(req.NamespacedName)
	return ctrl.Result{RequeueAfter: jittered(r.opts.ResyncInterval)}, nil
}

// instanceKey is how metrics and the curator name a MISPInstance.
func instanceKey(inst *v1alpha1.MISPInstance) string { return inst.Namespace + "/" + inst.Name }

func identityEqual(a, b *v1alpha1.MISPIdentity) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Field indexes.
const (
	// indexInstanceSecrets: MISPInstance → names of the Secrets it reads.
	indexInstanceSecrets = "misptrust.io/secrets"
	// indexPolicyInstance: OrgTrustPolicy → spec.instanceRef.name.
	indexPolicyInstance = "misptrust.io/instance"
	// indexPolicyConfigMaps: OrgTrustPolicy → organisationsFrom ConfigMap names.
	indexPolicyConfigMaps = "misptrust.io/configmaps"
)

func (r *MISPInstanceReconciler) setupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.MISPInstance{}, indexInstanceSecrets,
		func(o client.Object) []string { return secretNames(o.(*v1alpha1.MISPInstance)) }); err != nil {
		return fmt.Errorf("index MISPInstances by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("mispinstance").
		// Status writes (ours and the curator's feed updates) do not trigger a check.
		For(&v1alpha1.MISPInstance{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A rotated key or CA is checked at once. Metadata only: the controller
		// does not keep every Secret of the cluster in memory.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.instancesForSecret), builder.OnlyMetadata).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.opts.MaxConcurrentReconciles,
			RateLimiter:             BuildRateLimiter(r.opts),
			SkipNameValidation:      &r.opts.SkipNameValidation,
		}).
		Complete(r)
}

func (r *MISPInstanceReconciler) instancesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.MISPInstanceList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexInstanceSecrets: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list MISPInstances referencing a Secret", "secret", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: i.Namespace, Name: i.Name}})
	}
	return out
}
