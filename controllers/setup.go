package controllers

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// EventRecorderName is the reporting controller of the Events the controller emits.
const EventRecorderName = "misp-trust-controller"

// SetupWithManager registers both reconcilers (and their field indexes and
// metrics) with mgr. The manager's client must not cache Secrets or
// ConfigMaps as full objects: the reconcilers watch them as metadata and
// read the few they need from the API server (see NewManagerOptions).
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	opts = opts.withDefaults()
	if opts.MISP.Metrics == nil {
		opts.MISP.Metrics = misp.NewMetrics(opts.Registerer)
	}
	if opts.MISP.Logger.GetSink() == nil {
		opts.MISP.Logger = mgr.GetLogger().WithName("misp")
	}
	// Metadata of Secrets and ConfigMaps comes from the cache itself: the
	// manager's client bypasses the cache for those kinds (NewManagerOptions).
	clients := newMISPClients(mgr.GetCache(), mgr.GetAPIReader(), opts.MISP, opts.AllowedHosts)
	backoff := newInstanceBackoff(opts.InstanceBackoffBase, opts.InstanceBackoffMax, opts.Clock)
	m := newMetrics(opts.Registerer)
	inst := &MISPInstanceReconciler{client: mgr.GetClient(), clients: clients, backoff: backoff, metrics: m, opts: opts}
	if err := inst.setupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the MISPInstance controller: %w", err)
	}
	pol := &OrgTrustPolicyReconciler{
		client:     mgr.GetClient(),
		apiReader:  mgr.GetAPIReader(),
		clients:    clients,
		backoff:    backoff,
		claims:     newClaims(),
		precedence: newPrecedence(trust.NewConfigMapOrgs(mgr.GetCache(), mgr.GetAPIReader())),
		mem:        newListMemory(),
		recorder:   mgr.GetEventRecorder(EventRecorderName),
		metrics:    m,
		opts:       opts,
	}
	if err := pol.setupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the OrgTrustPolicy controller: %w", err)
	}
	return nil
}
