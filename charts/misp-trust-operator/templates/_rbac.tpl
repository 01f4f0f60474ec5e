{{/*
The rules a component needs on the objects of the namespaces it watches:
granted by a ClusterRole (every namespace) or, with security.watchNamespaces,
by a Role in each watched namespace (rbac-namespaced.yaml). Call with
(dict "root" $ "component" "controller").
*/}}
{{- define "misp-trust-operator.namespacedRules" -}}
- apiGroups: ["misptrust.io"]
  resources: ["mispinstances"]
  verbs: ["get", "list", "watch"]
{{- if eq .component "controller" }}
# patch: the controller adds and removes its finalizer on policies with
# deletionPolicy: Delete (it deletes their MISP warninglist first).
- apiGroups: ["misptrust.io"]
  resources: ["orgtrustpolicies"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["misptrust.io"]
  resources: ["orgtrustpolicies/finalizers"]
  verbs: ["update"]
{{- else }}
- apiGroups: ["misptrust.io"]
  resources: ["orgtrustpolicies"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["misptrust.io"]
  resources: ["mispinstances/status", "orgtrustpolicies/status"]
  verbs: ["patch"]
# Metadata of every Secret and ConfigMap (watches); the data only of those
# a MISPInstance or OrgTrustPolicy names and that carry the label
# misptrust.io/allow: "true" (checked by the process: RBAC cannot filter by label).
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The controller reads the OrgTrustPolicy CRD (and only that one): while it is
being deleted (operator uninstall) warninglists are kept. */}}
{{- define "misp-trust-operator.crdRule" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames: ["orgtrustpolicies.misptrust.io"]
  verbs: ["get"]
{{- end }}
