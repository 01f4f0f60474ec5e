{{/*
One Deployment per component, from the same image: args start with the
subcommand ("controller" or "curator"). Call with
(dict "root" $ "component" "controller").
*/}}
{{- define "misp-trust-operator.deployment" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "misp-trust-operator.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "misp-trust-operator.componentLabels" . | nindent 4 }}
spec:
  replicas: {{ $c.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "misp-trust-operator.componentSelectorLabels" . | nindent 6 }}
  {{- if gt (int $c.replicas) 1 }}
  strategy:
    # Keep a leader candidate running while pods are replaced.
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  {{- end }}
  template:
    metadata:
      annotations:
        kubectl.kubernetes.io/default-container: manager
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "misp-trust-operator.componentSelectorLabels" . | nindent 8 }}
        {{- with $root.Values.commonLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "misp-trust-operator.serviceAccountName" . }}
      # The process talks to the kube-apiserver with this token.
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # On SIGTERM the process hands its Lease over at once and stops its work;
      # an interrupted curation is finished by the next leader (design.md).
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: manager
          image: {{ include "misp-trust-operator.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - {{ .component }}
            - --metrics-bind-address=:{{ $root.Values.ports.metrics }}
            - --health-probe-bind-address=:{{ $root.Values.ports.health }}
            {{- with $root.Values.security.watchNamespaces }}
            - --watch-namespaces={{ join "," . }}
            {{- end }}
            {{- with $root.Values.security.mispAllowedHosts }}
            - --misp-allowed-hosts={{ join "," . }}
            {{- end }}
            {{- range $c.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            # The process gives the Go runtime 90% of its memory limit as a soft
            # limit (GOMEMLIMIT, internal/memlimit): the collector works harder
            # before the kernel kills the container. An explicit GOMEMLIMIT in
            # extraEnv wins.
            - name: MISPTRUST_MEMORY_LIMIT
              valueFrom:
                resourceFieldRef:
                  resource: limits.memory
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: metrics
              containerPort: {{ $root.Values.ports.metrics }}
              protocol: TCP
            - name: health
              containerPort: {{ $root.Values.ports.health }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: health
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: health
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            # The root filesystem is read-only; give the Go runtime a /tmp.
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 16Mi
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.affinity }}
      affinity:
        {{- toYaml $c.affinity | nindent 8 }}
      {{- else if gt (int $c.replicas) 1 }}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "misp-trust-operator.componentSelectorLabels" . | nindent 20 }}
      {{- end }}
{{- end }}
