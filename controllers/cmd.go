package controllers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/internal/kubecache"
	"github.com/misptrust/misp-trust-operator/internal/memlimit"
	"github.com/misptrust/misp-trust-operator/trust"
)

// LeaderElectionID is the Lease the controller replicas compete for.
const LeaderElectionID = "misp-trust-controller"

// NewManagerOptions are the manager options the reconcilers rely on
// (internal/kubecache): Secrets and ConfigMaps are never cached as full objects
// (the reconcilers watch their metadata, stripped of annotations, and read the
// few they reference from the API server), no managedFields are cached, and
// every watch is restricted to the given namespaces (none: all).
func NewManagerOptions(scheme *runtime.Scheme, namespaces ...string) manager.Options {
	return manager.Options{
		Scheme: scheme,
		Client: kubecache.ClientOptions(),
		Cache:  kubecache.Options(namespaces),
	}
}

// RunController runs the controller subcommand until ctx ends: a
// controller-runtime manager with leader election on the Lease
// misp-trust-controller, Prometheus metrics, health probes and structured
// logs, running the MISPInstance and OrgTrustPolicy reconcilers.
func RunController(ctx context.Context, args []string, version string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	var (
		metricsAddr    = fs.String("metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to (\"0\" disables it).")
		probeAddr      = fs.String("health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
		leaderElect    = fs.Bool("leader-elect", true, "Elect a leader on the Lease "+LeaderElectionID+" so only one replica reconciles.")
		leaderNS       = fs.String("leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
		resync         = fs.Duration("resync-interval", DefaultResyncInterval, "How often warninglists are read back from MISP to repair drift and instance keys re-checked (jittered +0-20%).")
		watchNS        = fs.String("watch-namespaces", "", "Comma-separated namespaces to watch (default: all). The recommended install watches only the namespaces that hold MISPInstances, with Roles there instead of ClusterRoles (the chart's rbac.scope: Namespaces).")
		namespace      = fs.String("namespace", "", "One namespace to watch; same as --watch-namespaces with one namespace.")
		concurrency    = fs.Int("max-concurrent-reconciles", DefaultMaxConcurrentReconciles, "Reconciles run in parallel per controller.")
		kubeconfig     = fs.String("kubeconfig", "", "Path to a kubeconfig; only needed outside a cluster (KUBECONFIG is honoured too).")
		mispTimeout    = fs.Duration("misp-timeout", 30*time.Second, "Timeout of one MISP HTTP request (a MISPInstance's spec.api.timeout wins).")
		mispMaxRetries = fs.Int("misp-max-retries", DefaultMISPRetries, "Retries of a MISP request after a network error, 5xx or 429 (a failed reconcile is retried with a per-instance backoff anyway).")
		reconcileTO    = fs.Duration("reconcile-timeout", DefaultReconcileTimeout, "Deadline of the MISP calls of one OrgTrustPolicy reconcile.")
		checkTO        = fs.Duration("check-timeout", DefaultCheckTimeout, "Deadline of the checks of one MISPInstance (version, key, host organisation).")
		allowedHosts   = fs.String("misp-allowed-hosts", "", "Comma-separated MISP hosts (names or IPs, *.domain for its subdomains) the operator may send API keys and ZeroMQ credentials to; empty: any host. A MISPInstance naming another host gets Ready False (HostNotAllowed) and no key is sent.")
	)
	zopts := zap.Options{}
	zopts.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s controller [flags]\n\nReconciles MISPInstance and OrgTrustPolicy objects into MISP warninglists.\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("controller: unexpected arguments %q", fs.Args())
	}
	namespaces, err := kubecache.Namespaces(*watchNS, *namespace)
	if err != nil {
		return fmt.Errorf("controller: --watch-namespaces: %w", err)
	}
	hosts, err := trust.ParseHostAllowList(*allowedHosts)
	if err != nil {
		return fmt.Errorf("controller: --misp-allowed-hosts: %w", err)
	}
	if *resync < time.Second {
		return fmt.Errorf("controller: --resync-interval must be at least 1s, got %s", *resync)
	}

	logger := zap.New(zap.UseFlagOptions(&zopts))
	ctrl.SetLogger(logger)
	memLimit, err := memlimit.Apply(os.Getenv)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	logger.Info("starting misp-trust-operator controller", "version", version, "namespaces", namespaces, "resyncInterval", resync.String(),
		"goMemoryLimit", memLimit, "mispAllowedHosts", hosts.String())

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		return fmt.Errorf("controller: build scheme: %w", err)
	}
	mo := NewManagerOptions(scheme, namespaces...)
	mo.Metrics = metricsserver.Options{BindAddress: *metricsAddr}
	mo.HealthProbeBindAddress = *probeAddr
	mo.LeaderElection = *leaderElect
	mo.LeaderElectionID = LeaderElectionID
	mo.LeaderElectionNamespace = *leaderNS
	// Hand the Lease over at once on a clean shutdown (rolling updates).
	mo.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return fmt.Errorf("controller: create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("controller: add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("controller: add readiness check: %w", err)
	}
	opts := Options{
		ResyncInterval:          *resync,
		MaxConcurrentReconciles: *concurrency,
		ReconcileTimeout:        *reconcileTO,
		CheckTimeout:            *checkTO,
		// controller-runtime's registry is served on the manager's metrics
		// endpoint: the one global registry the process uses.
		Registerer: crmetrics.Registry,
	}
	opts.AllowedHosts = hosts
	opts.MISP.Timeout = *mispTimeout
	opts.MISP.MaxRetries = *mispMaxRetries
	if *mispMaxRetries == 0 {
		opts.MISP.MaxRetries = -1 // misp.Options: 0 means the default, <0 none
	}
	opts.MISP.UserAgent = "misp-trust-operator/" + version
	if err := SetupWithManager(mgr, opts); err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("controller: load kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("controller: find the Kubernetes API (in-cluster, KUBECONFIG or --kubeconfig): %w", err)
	}
	return cfg, nil
}
