package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
)

// PluginName is the file name kubectl looks for to run `kubectl misptrust`.
const PluginName = "kubectl-misptrust"

// Exit codes (terraform plan -detailed-exitcode): a CI job tells "nothing to review"
// from "changes to review" from "broken".
const (
	ExitOK      = 0
	ExitError   = 1
	ExitChanges = 2
)

// Commands are the subcommands this package runs.
var Commands = []string{"export", "plan", "explain"}

// IsPlugin reports whether the program was started as the kubectl plugin (argv[0]).
func IsPlugin(argv0 string) bool {
	return strings.TrimSuffix(filepath.Base(argv0), ".exe") == PluginName
}

// IO are the streams and identity of one run.
type IO struct {
	Out, Err io.Writer
	// Prog is how the user called us: "kubectl misptrust" or "misp-trust-operator".
	Prog    string
	Version string
}

// Main runs one command, args[0] being its name, and returns the exit code.
func Main(ctx context.Context, args []string, io IO) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io)
		if len(args) == 0 {
			return ExitError
		}
		return ExitOK
	}
	var run func(context.Context, []string, IO) (int, error)
	switch args[0] {
	case "export":
		run = runExport
	case "plan":
		run = runPlan
	case "explain":
		run = runExplain
	case "version":
		fmt.Fprintln(io.Out, io.Version)
		return ExitOK
	default:
		fmt.Fprintf(io.Err, "unknown command %q\n\n", args[0])
		usage(io)
		return ExitError
	}
	code, err := run(ctx, args[1:], io)
	if errors.Is(err, pflag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(io.Err, "%s %s: %v\n", io.Prog, args[0], err)
		return ExitError
	}
	return code
}

func usage(io IO) {
	fmt.Fprintf(io.Err, `Usage: %[1]s <command> [flags]

Read-only commands for trust lists kept in Git (they never write to MISP or the cluster):
  export    print OrgTrustPolicy YAML for a MISP's organisation-UUID warninglists
  plan      what applying policy files would change (exit code 0 none, 2 changes, 1 error)
  explain   why one event is (not) tagged and published, and what the curator would do now

Run '%[1]s <command> -h' for the flags of a command.
`, io.Prog)
}

// newFlags is a kubectl-style flag set (flags and arguments in any order, -n/-o/-f
// shorthands).
func newFlags(name string, io IO, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Err)
	fs.Usage = func() {
		fmt.Fprintf(io.Err, "Usage: %s %s\n\nFlags:\n", io.Prog, synopsis)
		fs.PrintDefaults()
	}
	return fs
}
