// Package controllers holds the misp-trust-operator's Kubernetes controllers:
//
//   - the MISPInstance reconciler checks what the instance's API key can do
//     (reachable and recent enough for custom warninglists, key accepted, host
//     organisation, site admin, perm_warninglist) and reports it in
//     conditions; it owns no MISP object;
//   - the OrgTrustPolicy reconciler keeps one MISP custom warninglist per
//     policy equal to the organisations the policy wins (trust.Partition,
//     computed once per instance), repairs drift made in MISP's UI on a
//     resync interval and deletes the list only when spec.deletionPolicy is
//     Delete. The list's description records its owner; a list another object
//     owns is never written (claims.go reports the clash to the owner).
//
// Both write status with server-side apply under the field manager
// "misp-trust-controller", own only their fields and condition types (the
// curator writes its own with "misp-trust-curator", design.md §Status
// ownership), and write only when something changed.
//
// MISP is an external API with a modest ceiling (~30 calls/s on a real MISP
// 2.5.1, design.md §Scale): a policy that is in sync costs no MISP call until
// its resync (then one index lookup, unless MISP's version of the list
// changed), a change costs one edit, and failures back off per object (1s→5m)
// under a global token bucket; a MISP that does not answer backs off per
// instance (backoff.go), its checks and syncs under deadlines.
//
// Security (README §Security model): Secrets and ConfigMaps are read only
// with the label misptrust.io/allow: "true", keys go only to allow-listed
// hosts over https (trust.CheckEndpoints), and the cache holds their metadata
// without annotations (internal/kubecache).
package controllers
