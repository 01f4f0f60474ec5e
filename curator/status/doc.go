// Package status writes the curator's part of the CR statuses: status.curation of each
// OrgTrustPolicy (what the curator did for the policy, publishes still unconfirmed) and
// status.feed, status.catchUp and the FeedConnected and PublishesConfirmed conditions of
// each MISPInstance.
//
// Two processes write these statuses (design.md "Status ownership"): the controller owns its
// fields and condition types under the field manager misp-trust-controller, the curator owns
// the fields above under FieldManager. Every write is a server-side apply of exactly the
// curator's fields, so the apiserver merges both writers and neither can overwrite the other;
// the curator never reads, modifies and writes back a whole status.
//
// Writes are batched: outcomes and feed/catch-up changes only update memory, and a flush loop
// applies an object at most once per flush interval and only when what it would write
// differs from what it last wrote (no status churn for GitOps tools, style.md). Times that
// move constantly (the last message, the last heartbeat) are written coarsely.
package status
