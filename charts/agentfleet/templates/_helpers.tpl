{{/*
The chart's name, or nameOverride.
*/}}
{{- define "agentfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, or "<release>-<chart>", or just the release
name when it already contains the chart name. Kept to 63 characters (a DNS label).
*/}}
{{- define "agentfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "agentfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "agentfleet.labels" -}}
helm.sh/chart: {{ include "agentfleet.chart" . }}
{{ include "agentfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentfleet
{{- end }}

{{/*
Labels that select the operator's Pods; never changed on upgrade (Deployment selectors are
immutable).
*/}}
{{- define "agentfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "agentfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Who the operator's roles are bound to: its ServiceAccount.
*/}}
{{- define "agentfleet.rbacSubjects" -}}
- kind: ServiceAccount
  name: {{ include "agentfleet.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
"true" when the operator runs with kopf peering: more than one replica.
*/}}
{{- define "agentfleet.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
Hook annotations of the peering objects: created after the release's CRDs; recreated on each
upgrade (the replicas write their keep-alives again at their next beat); as hooks, not deleted
by `helm uninstall`.
*/}}
{{- define "agentfleet.peeringHook" -}}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}

{{/*
"true" when a watchNamespaces entry is a kopf pattern (glob or exclusion), not a plain name.
*/}}
{{- define "agentfleet.hasNamespacePatterns" -}}
{{- range .Values.watchNamespaces }}
{{- if regexMatch "[^a-z0-9-]" . }}true{{ end }}
{{- end }}
{{- end }}

{{/*
"true" when the operator's namespaced permissions must be cluster-wide: it serves every
namespace, or namespaces found by pattern, which no Role made at install time can cover.
*/}}
{{- define "agentfleet.clusterWide" -}}
{{- if or (not .Values.watchNamespaces) (include "agentfleet.hasNamespacePatterns" .) }}true{{ end }}
{{- end }}

{{/*
The operator image reference.
*/}}
{{- define "agentfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The runner image reference passed to the operator.
*/}}
{{- define "agentfleet.runnerImage" -}}
{{- printf "%s:%s" .Values.runner.image.repository (.Values.runner.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The operator's permissions on namespaced resources, one rule per need. Shared by the
ClusterRole (every namespace) and the per-namespace Roles.
*/}}
{{- define "agentfleet.namespacedRules" -}}
# The five agentfleet kinds: kopf lists and then watches each kind it serves; the operator
# reads the Project, AgentConfigs and Workflow a batch names when it builds the batch's snapshot.
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches", "agenttasks", "agentconfigs", "workflows", "projects"]
  verbs:
    - get    # read one named object (a batch's Project, Workflow, AgentConfigs)
    - list   # kopf's initial listing before each watch
    - watch  # kopf's event stream per kind
# Batches and tasks are what the operator reconciles.
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches"]
  verbs:
    - patch  # kopf keeps its handler progress and finalizers in the object's metadata
- apiGroups: ["agentfleet.dev"]
  resources: ["agenttasks"]
  verbs:
    - create # refinement turns a batch's tickets into AgentTasks
    - patch  # kopf's metadata, as above; and clearing one-shot annotations (approve, retry, skip)
# Status is a subresource: a separate permission, the only way the operator writes status.
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches/status", "agenttasks/status"]
  verbs:
    - patch  # phase, conditions, counts and every stage attempt
# Each run of a stage is a Pod.
- apiGroups: [""]
  resources: ["pods"]
  verbs:
    - get    # read a run's Pod back before acting on it
    - list   # initial listing of run Pods
    - watch  # Pod phases and termination messages (the run's result)
    - create # start a run
    - patch  # cancel a run: annotate why, shorten activeDeadlineSeconds (never delete)
# One workspace volume claim per batch, shared by its runs.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs:
    - create # the batch's workspace claim
    - get    # does the claim exist already
# One NetworkPolicy per batch that limits what its run Pods can reach.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs:
    - create # the batch's policy
    - get    # does the policy exist already
# Events on batches and tasks (kopf.info/warn and the operator's own), in both APIs kopf and
# the client may use.
- apiGroups: [""]
  resources: ["events"]
  verbs:
    - create # a new event
    - patch  # bump the count of a repeated event
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs:
    - create # a new event
    - patch  # bump the count of a repeated event
{{- if and (include "agentfleet.peering" .) .Values.watchNamespaces }}
# kopf peering of namespace-bound operators: one KopfPeering per served namespace.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs:
    - get    # read the peering object
    - list   # initial listing before the watch
    - watch  # see other replicas come and go
    - patch  # write this replica's keep-alive into its status
{{- end }}
{{- end }}

{{/*
The operator's permissions on cluster-scoped resources, whatever namespaces it serves.
*/}}
{{- define "agentfleet.clusterRules" -}}
# kopf watches CRDs to notice its resources appear, change or go.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs:
    - get    # read one CRD
    - list   # initial listing before the watch
    - watch  # CRDs added or removed while the operator runs
{{- if include "agentfleet.hasNamespacePatterns" . }}
# Only because watchNamespaces has a pattern: kopf lists and watches namespaces to find
# the ones that match (with plain names or all namespaces it does not need this).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs:
    - list   # namespaces that match the patterns at start
    - watch  # namespaces created or deleted later
{{- end }}
{{- if and (include "agentfleet.peering" .) (not .Values.watchNamespaces) }}
# kopf peering of a cluster-wide operator: one ClusterKopfPeering.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs:
    - get    # read the peering object
    - list   # initial listing before the watch
    - watch  # see other replicas come and go
    - patch  # write this replica's keep-alive into its status
{{- end }}
{{- end }}
