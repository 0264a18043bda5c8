{{/*
Names, labels and the small decisions shared by the templates.
*/}}

{{- define "llmops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, suffixed with the chart name unless it already contains it. */}}
{{- define "llmops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llmops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. The CRD generator (llmops.packaging.chart_crds) drops these keys
from the CRD's own labels, so keep its CHART_LABEL_KEYS in step with this list. */}}
{{- define "llmops.labels" -}}
helm.sh/chart: {{ include "llmops.chart" . }}
{{ include "llmops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmops
{{- end -}}

{{- define "llmops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llmops.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Peering is on when asked for or when more than one replica runs: without it, every
replica would handle every event. Renders "true" or nothing, for use with `if include`. */}}
{{- define "llmops.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{- define "llmops.peeringName" -}}
{{- default (include "llmops.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* Annotations of the CRDs: kept on uninstall, applied first and server-side by Argo CD
(wave -1: CRDs, wave 0: the operator, wave 1 and later: LLMDeployments). */}}
{{- define "llmops.crdAnnotations" -}}
{{ if .Values.crds.keep -}}
helm.sh/resource-policy: keep
{{ end -}}
argocd.argoproj.io/sync-wave: "-1"
argocd.argoproj.io/sync-options: ServerSideApply=true
{{- end -}}

{{/* The arguments of `llmops run`. */}}
{{- define "llmops.args" -}}
- run
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness-port={{ .Values.healthPort }}
- --metrics-port={{ .Values.metrics.port }}
- --log-format={{ .Values.logFormat }}
{{- with .Values.prometheusUrl }}
- --prometheus-url={{ . }}
{{- end }}
{{- if include "llmops.peering" . }}
- --peering={{ include "llmops.peeringName" . }}
{{- else }}
- --standalone
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Refuse contradictory values before anything reaches the cluster. */}}
{{- define "llmops.validate" -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the metrics Service" -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) .Values.rbac.create -}}
{{- fail "rbac.create with serviceAccount.create=false needs serviceAccount.name: the bindings must name the operator's ServiceAccount" -}}
{{- end -}}
{{- end -}}

{{/* One operator per namespace. A second release in the same namespace would run a second
operator over the same objects (both reconciling, both writing status) and fight the first
one's Helm ownership of the cluster-scoped objects, so it fails here, at render time, with a
message that says what to do. `lookup` is empty under `helm template` and Argo CD, where
there is no release to collide with. */}}
{{- define "llmops.assertSingleInstall" -}}
{{- $deployments := lookup "apps/v1" "Deployment" .Release.Namespace "" -}}
{{- range $d := (dig "items" list $deployments) -}}
{{- $labels := $d.metadata.labels | default dict -}}
{{- if and (eq (get $labels "app.kubernetes.io/name") (include "llmops.name" $)) (eq (get $labels "app.kubernetes.io/part-of") "llmops") (ne (get $labels "app.kubernetes.io/instance") $.Release.Name) -}}
{{- fail (printf "llmops-operator is already installed in namespace %q by release %q (Deployment %s). Only one operator may run per namespace: upgrade that release (helm upgrade %s ...) or uninstall it first. To run a second, namespaced operator, install it into another namespace with watchNamespaces set to namespaces the first one does not watch and crds.enabled=false." $.Release.Namespace (get $labels "app.kubernetes.io/instance") $d.metadata.name (get $labels "app.kubernetes.io/instance")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
