{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "misp-trust-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix. Components append "-controller" / "-curator" (11 characters),
so the prefix is cut at 52.
*/}}
{{- define "misp-trust-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "misp-trust-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "misp-trust-operator.labels" -}}
helm.sh/chart: {{ include "misp-trust-operator.chart" . }}
{{ include "misp-trust-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: misp-trust-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "misp-trust-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "misp-trust-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component helpers take a dict: (dict "root" $ "component" "controller").
*/}}
{{- define "misp-trust-operator.componentLabels" -}}
{{ include "misp-trust-operator.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "misp-trust-operator.componentSelectorLabels" -}}
{{ include "misp-trust-operator.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "misp-trust-operator.componentName" -}}
{{- printf "%s-%s" (include "misp-trust-operator.fullname" .root) .component }}
{{- end }}

{{- define "misp-trust-operator.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "misp-trust-operator.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* The image reference: digest wins over tag; tag defaults to appVersion. */}}
{{- define "misp-trust-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Lease each component's leader election uses (fixed in the binary). */}}
{{- define "misp-trust-operator.leaseName" -}}
{{- printf "misp-trust-%s" .component }}
{{- end }}
