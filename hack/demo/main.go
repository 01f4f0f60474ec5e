// Command demo runs misp-trust-operator end to end on one machine, with no
// cluster and no MISP: a real kube-apiserver and etcd (the envtest binaries
// built by hack/envtest-assets.sh), the MISP double (hack/mispsim) with a few
// partner organisations, and the operator's two processes (controller and
// curator) as separate OS processes, exactly as they run in a cluster.
//
// It applies config/samples/, simulates a realistic synchronisation (pulled
// and pushed events from a high-trust, a medium-trust and an untrusted
// organisation, a duplicate message, an event created while the curator is
// stopped), checks every event reached the right state, prints what happened
// and `kubectl get mispi,otp`, and cleans up. With -serve it keeps everything
// running for you to explore.
//
// Run it with `make demo` or `make demo-serve` (they build the binaries and set
// KUBEBUILDER_ASSETS).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.BoolVar(&o.serve, "serve", false, "keep everything running after the scenario and print how to reach it (Ctrl-C stops)")
	flag.StringVar(&o.bin, "bin", "bin", "folder holding the misp-trust-operator and mispsim binaries")
	flag.StringVar(&o.root, "root", ".", "repository root (config/ is read from there)")
	flag.DurationVar(&o.timeout, "timeout", 90*time.Second, "how long the scenario may wait for the operator")
	flag.BoolVar(&o.verbose, "v", false, "stream the processes' logs")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	serve   bool
	bin     string
	root    string
	timeout time.Duration
	verbose bool
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make demo`, which builds kube-apiserver and etcd and sets it")
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	bin := o.bin
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	work, err := os.MkdirTemp("", "misp-trust-demo-")
	if err != nil {
		return err
	}
	d := &demo{root: root, bin: bin, work: work, out: out, verbose: o.verbose, started: time.Now()}
	defer func() {
		d.cleanup()
		if err == nil && !o.serve {
			_ = os.RemoveAll(work)
		} else {
			fmt.Fprintf(out, "logs kept in %s\n", work)
		}
	}()

	d.step("starting kube-apiserver and etcd (envtest)")
	if err := d.startCluster(); err != nil {
		return err
	}
	d.step("starting the MISP double (hack/mispsim) with 4 partner organisations")
	if err := d.startMISP(ctx); err != nil {
		return err
	}
	d.step("applying config/samples/ (one MISPInstance, policies high and medium) and their Secrets")
	if err := d.applySamples(ctx); err != nil {
		return err
	}
	d.step("starting the controller and the curator")
	if err := d.startOperator(ctx, "controller"); err != nil {
		return err
	}
	if err := d.startOperator(ctx, "curator"); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := d.waitReady(sctx); err != nil {
		return err
	}
	results, err := d.scenario(sctx)
	if err != nil {
		return err
	}
	d.report(ctx, results)
	if bad := failures(results); len(bad) > 0 {
		return fmt.Errorf("%d event(s) did not reach the expected state: %v", len(bad), bad)
	}
	fmt.Fprintf(out, "\ndemo finished in %s\n", time.Since(d.started).Round(100*time.Millisecond))
	if o.serve {
		d.serve(ctx)
	}
	return nil
}
