package curator

// What the curator does with the API (doc.go): it watches MISPInstance and OrgTrustPolicy
// objects; it watches Secrets and ConfigMaps as metadata only and reads the few an instance
// or policy references (get); it writes only the status of both kinds (server-side apply,
// field manager misp-trust-curator) and records Events (status/events.go) through the
// events.k8s.io API. `make manifests` generates config/rbac/curator_role.yaml from these
// markers; the Helm chart's curator ClusterRole must grant the same (charts/rbac_test.go).
// Leader election's Lease and its core Events are namespaced:
// config/rbac/curator_leader_election_role.yaml.

// +kubebuilder:rbac:groups=misptrust.io,resources=mispinstances;orgtrustpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=misptrust.io,resources=mispinstances/status;orgtrustpolicies/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
