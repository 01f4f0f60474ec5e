// Package curator is the curator process (the `curator` subcommand, RunCurator): it keeps
// one pipeline per MISPInstance — a MISP client, a ZeroMQ subscription (package feed), the
// instance's trust index (package index), the curation engine (package engine), the REST
// catch-up (package catchup) — and writes what it does back into the CR statuses
// (package status).
//
// Two replicas run; one acts. Everything that talks to MISP or writes a status runs in one
// controller-runtime Runnable that needs leader election on the Lease misp-trust-curator,
// so a standby replica only keeps its informers warm and takes over within about one
// lease duration when the leader dies (at once when the leader hands the Lease over on a
// clean shutdown).
//
// Pipelines follow the objects level-triggered: a MISPInstance that appears starts one, a
// change of its connection or curation settings or of a referenced Secret restarts it, a
// deletion stops it. An OrgTrustPolicy or ConfigMap change rebuilds the instance's trust
// index and swaps it in atomically (the engine reads the index at every curation); the
// organisations whose curation changed (index.Diff) are re-curated within the look-back.
// dryRun is switched in place.
//
// Secrets and ConfigMaps are watched as metadata only (a curator never holds every Secret
// of the cluster in memory); the few that are referenced, and labelled
// misptrust.io/allow: "true", are read from the API server when a pipeline or an index
// is built (of a ConfigMap only the parsed organisations are kept, per resourceVersion:
// trust.ConfigMapOrgs). Credentials go only to allow-listed hosts
// (trust.CheckEndpoints) and never appear in logs, errors, metrics or statuses.
package curator
