// Package cli holds the read-only commands of the trust-list Git workflow: export,
// plan and explain. They run once and exit, on a person's machine or in a CI job, next
// to the two long-running components (controllers/, curator/) of the same binary, and
// they are also a kubectl plugin: the binary called as kubectl-misptrust (a symlink or a
// copy, the usual kubectl-<name> convention; `make build` makes bin/kubectl-misptrust)
// runs `kubectl misptrust <command>`.
//
//   - export reads a MISP's custom warninglists of organisation UUIDs (the original
//     script's org-confidence-level-high/-medium, or any list named by --list) and prints
//     OrgTrustPolicy YAML the controller adopts without writing to MISP;
//   - plan says what applying policy files would do: server-side dry-run validation,
//     organisations moving between policies and why, conflicts, the entry diff of every
//     warninglist, and the events already in MISP whose tags or publication would change
//     (exit code 0: no change, 2: changes, 1: error — for CI);
//   - explain tells, for one event, which policies list its creator organisation, which
//     one wins and why, the tags it has and should have, the MISP calls the curator would
//     make now and whether it is settled, pending or failed.
//
// None of them writes: the Kubernetes client is a dry-run client (every write is sent
// with dryRun=All, which plan uses for validation) and MISP is reached through mispReader,
// which has read methods only. Every rule comes from the package that owns it: trust
// (defaults, effective organisations, precedence), controllers (the warninglist the
// controller keeps), curator/index and curator/engine (who curates an event and how).
package cli
