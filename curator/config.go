package curator

import (
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/misptrust/misp-trust-operator/curator/catchup"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// LeaderElectionID is the Lease the curator replicas compete for.
const LeaderElectionID = "misp-trust-curator"

// Defaults of Config.
const (
	DefaultLeaseDuration       = 10 * time.Second
	DefaultRenewDeadline       = 7 * time.Second
	DefaultRetryPeriod         = 2 * time.Second
	DefaultStatusFlushInterval = 5 * time.Second
	// feedStatusEvery is how often the pipeline copies the subscriber's counters and times
	// into the status writer (which writes them coarsely).
	feedStatusEvery = time.Second
)

// Config is everything Run needs besides the Kubernetes connection. RunCurator fills it
// from flags; tests fill it directly. Zero values take the defaults.
type Config struct {
	// MetricsAddr and ProbeAddr are the manager's bind addresses; "0" disables them.
	MetricsAddr, ProbeAddr string
	// LeaderElect enables leader election on the Lease LeaderElectionID (in
	// LeaderElectionNamespace; in a pod, the pod's namespace by default).
	LeaderElect             bool
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline, RetryPeriod of the election (defaults 10s, 7s, 2s:
	// a dead leader is replaced after about LeaseDuration + RetryPeriod).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ReleaseOnCancel hands the Lease over at once when ctx ends (a clean shutdown).
	ReleaseOnCancel bool
	// Namespaces restrict every watch to these namespaces (none: all); Namespace adds
	// one more.
	Namespaces []string
	Namespace  string
	// StatusFlushInterval: a status is written at most once per interval (default 5s).
	StatusFlushInterval time.Duration
	// AllowedHosts are the MISP hosts the curator may send keys and ZeroMQ credentials
	// to; the zero value allows any host.
	AllowedHosts trust.HostAllowList

	// Templates of the per-instance parts. Fields that come from the MISPInstance and its
	// Secrets (URL, key, CA, endpoint, credentials, concurrency, debounce, dry run,
	// catch-up interval and look-back) and the wiring (index, callbacks, metrics, logger)
	// are filled in by the pipeline; the rest (timeouts, retries, backoffs, queue sizes)
	// is taken as given.
	MISP    misp.Options
	Feed    feed.Options
	Engine  engine.Options
	CatchUp catchup.Options

	// Registerer receives every metric of the process (RunCurator passes
	// controller-runtime's registry, served on the metrics endpoint).
	Registerer prometheus.Registerer
	Logger     logr.Logger
}

// watched is every namespace to watch (nil: all).
func (c Config) watched() []string {
	ns := slices.Clone(c.Namespaces)
	if c.Namespace != "" && !slices.Contains(ns, c.Namespace) {
		ns = append(ns, c.Namespace)
	}
	return ns
}

func (c Config) withDefaults() Config {
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline <= 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod <= 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.StatusFlushInterval <= 0 {
		c.StatusFlushInterval = DefaultStatusFlushInterval
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = "0"
	}
	if c.ProbeAddr == "" {
		c.ProbeAddr = "0"
	}
	if c.Logger.GetSink() == nil {
		c.Logger = logr.Discard()
	}
	return c
}
