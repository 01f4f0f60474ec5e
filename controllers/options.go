package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// FieldManager is the server-side-apply field manager of everything the
// controller writes (design.md §Status ownership).
const FieldManager = "misp-trust-controller"

// Finalizer is added to OrgTrustPolicies with deletionPolicy Delete so the
// warninglist is deleted before the policy goes away.
const Finalizer = "misptrust.io/warninglist"

// Defaults of Options.
const (
	DefaultResyncInterval          = 10 * time.Minute
	DefaultBackoffBase             = time.Second
	DefaultBackoffMax              = 5 * time.Minute
	DefaultReconcileQPS            = 10
	DefaultReconcileBurst          = 100
	DefaultMaxConcurrentReconciles = 8
	DefaultReconcileTimeout        = 2 * time.Minute
	DefaultCheckTimeout            = 15 * time.Second
	DefaultInstanceBackoffBase     = 5 * time.Second
	DefaultInstanceBackoffMax      = 5 * time.Minute
	// DefaultMISPRetries: retries inside one call. The work queue and the
	// per-instance backoff retry a failed reconcile anyway; retrying inside it
	// only holds a worker longer on a dead MISP.
	DefaultMISPRetries = 1
	// resyncJitter spreads resyncs of many objects so they do not hit MISP at
	// the same moment after a restart: +0..20 % of the interval.
	resyncJitter = 0.2
)

// Options tune both reconcilers. The zero value gives the production defaults.
type Options struct {
	// ResyncInterval is how often a warninglist is read back from MISP to
	// detect drift made in the UI, and how often a MISPInstance's key is
	// re-checked (jittered by +0..20 %). Default 10m.
	ResyncInterval time.Duration

	// BackoffBase and BackoffMax bound the per-object exponential backoff
	// after a failed reconcile (default 1s → 5m): controller-runtime's own
	// default starts at 5ms, far too eager for an external API.
	BackoffBase, BackoffMax time.Duration
	// ReconcileQPS and ReconcileBurst size the global token bucket shared by
	// retries of one controller (default 10/s, burst 100).
	ReconcileQPS   float64
	ReconcileBurst int

	// MaxConcurrentReconciles per controller (default 8). Each MISP's load is
	// bounded by its own client's rate limit; the workers are shared by every
	// instance, so a few dead MISPs must not take them all.
	MaxConcurrentReconciles int

	// ReconcileTimeout bounds one OrgTrustPolicy reconcile, MISP calls
	// included (default 2m: writing a 500,000-organisation list takes
	// seconds); CheckTimeout bounds the checks of one MISPInstance (default
	// 15s: three small reads).
	ReconcileTimeout, CheckTimeout time.Duration

	// InstanceBackoffBase and InstanceBackoffMax bound the per-instance
	// backoff after its MISP failed to answer (default 5s → 5m): until it
	// ends, neither the instance nor its policies call that MISP.
	InstanceBackoffBase, InstanceBackoffMax time.Duration

	// MISP is the template of every MISP client: timeouts, retries, rate
	// limit. URL, APIKey, CABundle, InsecureSkipVerify, QPS and Timeout are
	// taken from the MISPInstance and its Secrets; Metrics and Logger are
	// filled in when empty.
	MISP misp.Options

	// AllowedHosts are the MISP hosts the operator may send keys to (REST URL and
	// ZeroMQ endpoint of every MISPInstance); the zero value allows any host.
	AllowedHosts trust.HostAllowList

	// Registerer receives the controller's metrics and the MISP client's.
	// RunController passes controller-runtime's metrics.Registry (served on
	// the manager's metrics endpoint); tests pass their own registry.
	Registerer prometheus.Registerer

	// SkipNameValidation lets tests start several managers in one process
	// (controller names must otherwise be unique per process).
	SkipNameValidation bool

	// Clock is the time source; default the real clock.
	Clock clock.PassiveClock
}

func (o Options) withDefaults() Options {
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.ReconcileQPS <= 0 {
		o.ReconcileQPS = DefaultReconcileQPS
	}
	if o.ReconcileBurst <= 0 {
		o.ReconcileBurst = DefaultReconcileBurst
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.ReconcileTimeout <= 0 {
		o.ReconcileTimeout = DefaultReconcileTimeout
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.InstanceBackoffBase <= 0 {
		o.InstanceBackoffBase = DefaultInstanceBackoffBase
	}
	if o.InstanceBackoffMax < o.InstanceBackoffBase {
		o.InstanceBackoffMax = max(DefaultInstanceBackoffMax, o.InstanceBackoffBase)
	}
	if o.MISP.MaxRetries == 0 {
		o.MISP.MaxRetries = DefaultMISPRetries
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}
