{{/*
The operator's permissions, least privilege. One list for the namespaced resources, used by the
ClusterRole (all namespaces) or by a Role per watched namespace, so the two modes never differ.

Deliberately absent: reading Secrets (the operator never reads them: a missing Secret shows up in
Pod status as CreateContainerConfigError; it only creates one, the gateway's signing key), any
write to llmdeployments except their status subresource (the operator never writes spec, and
its kopf handlers are raw event handlers that write no finalizer and no annotation), and
anything cluster-scoped beyond reads.
*/}}

{{/* Verbs on the children the operator creates and owns (server-side apply is `patch`). */}}
{{- define "llmops.rbac.ownedVerbs" -}}
["create", "get", "list", "watch", "patch", "update", "delete"]
{{- end -}}

{{- define "llmops.rbac.namespacedRules" -}}
# The custom resource: read only; the operator writes its status, never its spec or metadata.
- apiGroups: ["llmops.io"]
  resources: ["llmdeployments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["llmops.io"]
  resources: ["llmdeployments/status"]
  verbs: ["get", "patch", "update"]
# Children it renders and owns (ownerReferences to the LLMDeployment).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors", "prometheusrules"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
# The autoscaler of spec.autoscaling: a HorizontalPodAutoscaler, or a KEDA ScaledObject when
# KEDA's CRDs are installed.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: {{ include "llmops.rbac.ownedVerbs" . }}
# Routes belong to the user; the operator only moves the canary weights.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "patch"]
# The gateway's signing-key Secret: created once with a random key, never updated. Read (get by
# name, never list or watch) for its capture-token only, to ask the capture store for the
# prompts' term histograms (spec.drift.prompts).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "get"]
# Evaluation datasets (user-provided) and the pods behind its Deployments and Jobs: read only.
- apiGroups: [""]
  resources: ["configmaps", "pods"]
  verbs: ["get", "list", "watch"]
# The canary's readiness gate (llmops.io/smoke-evaluation): a pod condition, opened after the
# smoke evaluation passed. Status only; pods themselves stay read-only.
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# Events on transitions; listed (by the Job's uid) only for a Job that has made no pod, whose
# FailedCreate Events hold the apiserver's refusal.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if and (include "llmops.peering" .) .Values.watchNamespaces }}
# kopf peering in each watched namespace (KopfPeering).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}

{{- define "llmops.rbac.clusterRules" -}}
# Detect the Prometheus Operator, Gateway API and KEDA CRDs (and kopf's resource discovery).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
# kopf's namespace tracking.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# GPU capacity of the nodes, to say how many GPUs are free when pods wait for them.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
{{- if and (include "llmops.peering" .) (not .Values.watchNamespaces) }}
# kopf peering for a cluster-wide operator (ClusterKopfPeering).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}
