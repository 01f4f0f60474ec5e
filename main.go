// Command misp-trust-operator runs one of the operator's processes, chosen by
// its first argument.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/misptrust/misp-trust-operator/cli"
	"github.com/misptrust/misp-trust-operator/controllers"
	"github.com/misptrust/misp-trust-operator/curator"
)

// version is set at build time (-ldflags "-X main.version=...", see Makefile).
var version = "dev"

func usage() {
	fmt.Fprintf(os.Stderr, `Usage: %s <command> [flags]

Commands:
  controller   reconcile MISPInstance and OrgTrustPolicy objects into MISP warninglists
  curator      tag and publish synchronised events of trusted organisations (ZeroMQ feed + REST catch-up)
  export       print OrgTrustPolicy YAML for a MISP's organisation-UUID warninglists (read-only)
  plan         what applying policy files would change; exit code 0 none, 2 changes, 1 error (read-only)
  explain      why one event is (not) tagged and published, and what the curator would do now (read-only)
  version      print the version

Called as %s (a symlink or copy on PATH), it is the kubectl plugin
'kubectl misptrust export|plan|explain'.

Run '%s <command> -h' for the flags of a command.
`, os.Args[0], cli.PluginName, os.Args[0])
}

func main() {
	if cli.IsPlugin(os.Args[0]) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, os.Args[1:], cli.IO{Out: os.Stdout, Err: os.Stderr, Prog: "kubectl misptrust", Version: version})
		stop()
		os.Exit(code)
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "controller":
		err = controllers.RunController(ctx, os.Args[2:], version)
	case "curator":
		err = curator.RunCurator(ctx, os.Args[2:], version)
	case "export", "plan", "explain":
		code := cli.Main(ctx, os.Args[1:], cli.IO{Out: os.Stdout, Err: os.Stderr, Prog: os.Args[0], Version: version})
		stop()
		os.Exit(code)
	case "version":
		fmt.Println(version)
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
