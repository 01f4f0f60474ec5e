package curator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/catchup"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/internal/kubecache"
	"github.com/misptrust/misp-trust-operator/internal/memlimit"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// RunCurator runs the curator subcommand until ctx ends: a controller-runtime manager with
// leader election on the Lease misp-trust-curator, Prometheus metrics, health probes and
// structured logs, curating the synchronised events of every MISPInstance.
func RunCurator(ctx context.Context, args []string, version string) error {
	fs := flag.NewFlagSet("curator", flag.ContinueOnError)
	var (
		metricsAddr   = fs.String("metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to (\"0\" disables it).")
		probeAddr     = fs.String("health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to (\"0\" disables them).")
		leaderElect   = fs.Bool("leader-elect", true, "Elect a leader on the Lease "+LeaderElectionID+" so only one replica curates.")
		leaderNS      = fs.String("leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
		leaseDuration = fs.Duration("leader-election-lease-duration", DefaultLeaseDuration, "How long a standby waits before taking over a Lease that was not renewed (a dead leader is replaced after about this plus the retry period).")
		renewDeadline = fs.Duration("leader-election-renew-deadline", DefaultRenewDeadline, "How long the leader keeps trying to renew before it gives up leading (less than the lease duration).")
		retryPeriod   = fs.Duration("leader-election-retry-period", DefaultRetryPeriod, "How often candidates try to acquire or renew the Lease.")
		flush         = fs.Duration("status-flush-interval", DefaultStatusFlushInterval, "A status is written at most once per interval, and only when it changed.")
		watchNS       = fs.String("watch-namespaces", "", "Comma-separated namespaces to watch (default: all); see the controller's flag of the same name.")
		namespace     = fs.String("namespace", "", "One namespace to watch; same as --watch-namespaces with one namespace.")
		kubeconfig    = fs.String("kubeconfig", "", "Path to a kubeconfig; only needed outside a cluster (KUBECONFIG is honoured too).")
		mispTimeout   = fs.Duration("misp-timeout", 30*time.Second, "Timeout of one MISP HTTP request (a MISPInstance's spec.api.timeout wins).")
		mispRetries   = fs.Int("misp-max-retries", 4, "Retries of a MISP request after a network error, 5xx or 429.")
		silence       = fs.Duration("feed-silence-timeout", feed.DefaultSilenceTimeout, "Redial the ZeroMQ feed after this long without any message (MISP sends a heartbeat after 10 s idle).")
		allowedHosts  = fs.String("misp-allowed-hosts", "", "Comma-separated MISP hosts (names or IPs, *.domain for its subdomains) the curator may send API keys and ZeroMQ credentials to; empty: any host.")
		margin        = fs.Duration("catchup-safety-margin", catchup.DefaultSafetyMargin, "Catch-up searches look this much before their watermark (clock skew between the curator and MISP, events committed during a pass).")
	)
	zopts := zap.Options{}
	zopts.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s curator [flags]\n\nCurates synchronised MISP events of trusted organisations (tags, publishes) from MISP's ZeroMQ feed and REST catch-up.\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("curator: unexpected arguments %q", fs.Args())
	}
	if *renewDeadline >= *leaseDuration || *retryPeriod >= *renewDeadline {
		return fmt.Errorf("curator: want --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration, got %s, %s, %s",
			*retryPeriod, *renewDeadline, *leaseDuration)
	}
	namespaces, err := kubecache.Namespaces(*watchNS, *namespace)
	if err != nil {
		return fmt.Errorf("curator: --watch-namespaces: %w", err)
	}
	hosts, err := trust.ParseHostAllowList(*allowedHosts)
	if err != nil {
		return fmt.Errorf("curator: --misp-allowed-hosts: %w", err)
	}
	if *flush < 100*time.Millisecond {
		return fmt.Errorf("curator: --status-flush-interval must be at least 100ms, got %s", *flush)
	}

	logger := zap.New(zap.UseFlagOptions(&zopts))
	ctrl.SetLogger(logger)
	memLimit, err := memlimit.Apply(os.Getenv)
	if err != nil {
		return fmt.Errorf("curator: %w", err)
	}
	logger.Info("starting misp-trust-operator curator", "version", version, "namespaces", namespaces, "goMemoryLimit", memLimit,
		"mispAllowedHosts", hosts.String())

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	c := Config{
		MetricsAddr: *metricsAddr, ProbeAddr: *probeAddr,
		LeaderElect: *leaderElect, LeaderElectionNamespace: *leaderNS,
		LeaseDuration: *leaseDuration, RenewDeadline: *renewDeadline, RetryPeriod: *retryPeriod,
		// Hand the Lease over at once on a clean shutdown (rolling updates).
		ReleaseOnCancel:     true,
		Namespaces:          namespaces,
		AllowedHosts:        hosts,
		StatusFlushInterval: *flush,
		// controller-runtime's registry is served on the manager's metrics endpoint.
		Registerer: crmetrics.Registry,
		Logger:     logger,
	}
	c.MISP.Timeout = *mispTimeout
	c.MISP.MaxRetries = *mispRetries
	if *mispRetries == 0 {
		c.MISP.MaxRetries = -1 // misp.Options: 0 means the default, <0 none
	}
	c.MISP.UserAgent = "misp-trust-operator/" + version
	c.Feed.SilenceTimeout = *silence
	c.CatchUp.SafetyMargin = *margin
	return Run(ctx, cfg, c)
}

// Run runs the curator's manager until ctx ends.
func Run(ctx context.Context, restCfg *rest.Config, c Config) error {
	mgr, err := NewManager(restCfg, c)
	if err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("curator: %w", err)
	}
	return nil
}

// NewManager builds the curator's manager: the caches, the health checks and the
// leader-elected curation Runnable.
func NewManager(restCfg *rest.Config, c Config) (manager.Manager, error) {
	c = c.withDefaults()
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		return nil, fmt.Errorf("curator: build scheme: %w", err)
	}
	leaseDuration, renewDeadline, retryPeriod := c.LeaseDuration, c.RenewDeadline, c.RetryPeriod
	mo := manager.Options{
		Scheme: scheme,
		// Secrets and ConfigMaps are watched as metadata only (without annotations); the
		// manager's client reads the referenced ones from the API server.
		Client:                        kubecache.ClientOptions(),
		Cache:                         kubecache.Options(c.watched()),
		Metrics:                       metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:        c.ProbeAddr,
		LeaderElection:                c.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       c.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: c.ReleaseOnCancel,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		Logger:                        c.Logger,
	}
	mgr, err := ctrl.NewManager(restCfg, mo)
	if err != nil {
		return nil, fmt.Errorf("curator: create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("curator: add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("curator: add readiness check: %w", err)
	}

	log := c.Logger.WithName("curator")
	if c.MISP.UserAgent == "" {
		c.MISP.UserAgent = "misp-trust-operator-curator"
	}
	sh := &parts{
		cfg: c,
		log: log,
		writer: status.NewWriter(status.Options{
			Applier:       status.ClientApplier{Client: mgr.GetClient()},
			Reader:        mgr.GetClient(),
			FlushInterval: c.StatusFlushInterval,
			Logger:        log.WithName("status"),
			Metrics:       status.NewMetrics(c.Registerer),
			Recorder:      mgr.GetEventRecorder(status.EventRecorderName),
		}),
		misp:    misp.NewMetrics(c.Registerer),
		feed:    feed.NewMetrics(c.Registerer),
		engine:  engine.NewMetrics(c.Registerer),
		catchup: catchup.NewMetrics(c.Registerer),
	}
	if err := mgr.Add(newSupervisor(sh, mgr.GetCache(), mgr.GetClient(), mgr.GetAPIReader())); err != nil {
		return nil, fmt.Errorf("curator: add the curation runnable: %w", err)
	}
	return mgr, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("curator: load kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("curator: find the Kubernetes API (in-cluster, KUBECONFIG or --kubeconfig): %w", err)
	}
	return cfg, nil
}
