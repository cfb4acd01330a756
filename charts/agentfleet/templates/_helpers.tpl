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
"true" when the replicas elect a leader through a coordination.k8s.io Lease
(`--leader-election`): always above one replica (two writers would undo each other's work),
and with one replica when leaderElection.enabled asks for it.
*/}}
{{- define "agentfleet.leaderElection" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.leaderElection.enabled }}true{{ end }}
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
The operator's permissions on namespaced resources in every namespace it serves, one rule per
need. Shared by the ClusterRole (every namespace, or a pattern) and the per-namespace Roles.
tests/chart/test_operator_rbac.py runs the operator and checks each request it makes against
these rules; test_rbac.py checks that nothing else is granted.
*/}}
{{- define "agentfleet.namespacedRules" -}}
# The five agentfleet kinds. The operator never GETs one by name: it works from what it
# listed and watched.
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches", "agenttasks", "agentconfigs", "workflows", "projects"]
  verbs:
    - list   # kopf's listing before each watch; the reconciler's own, at start and every 5 min
    - watch  # kopf's event stream per kind, which feeds the reconciler
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches"]
  verbs:
    - patch  # remove a handled abort annotation (a JSON patch tested against its value)
- apiGroups: ["agentfleet.dev"]
  resources: ["agenttasks"]
  verbs:
    - create # refinement turns each ticket of a batch into an AgentTask
    - patch  # remove a handled one-shot annotation (approve, retry, skip)
# Status is a subresource, a permission of its own: the only way the operator writes status.
- apiGroups: ["agentfleet.dev"]
  resources:
    - ticketbatches/status
    - agenttasks/status
    - agentconfigs/status
    - workflows/status
    - projects/status
  verbs:
    - patch  # phase, conditions, counts, stage attempts; InvalidSpec for a refused spec
# Where the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, some
# hardened clusters), setting blockOwnerDeletion on a child needs update on its owner's
# finalizers: AgentTasks are owned by their batch; run Pods and NetworkPolicies by their task
# (or batch); workspace claims by their batch. Nothing else writes finalizers.
- apiGroups: ["agentfleet.dev"]
  resources: ["ticketbatches/finalizers", "agenttasks/finalizers"]
  verbs:
    - update # lets the API server accept blockOwnerDeletion: true on the owned objects
# Each run of a stage is a Pod. Runs are never deleted: garbage collection follows owners.
- apiGroups: [""]
  resources: ["pods"]
  verbs:
    - list   # kopf's listing before its watch; the reconciler's own, at start and every 5 min
    - watch  # Pod phases and termination messages: each run's result
    - create # start a run
    - patch  # stop a run: annotate why and shorten its activeDeadlineSeconds
# One workspace claim per batch, shared by its runs.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs:
    - create # the batch's workspace claim, made before its first run
    - get    # on 409 AlreadyExists: read the existing claim's owner (is it this batch's?)
# One NetworkPolicy per run of an agent with network isolation.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs:
    - create # the run's egress policy, made before its Pod (409 counts as done)
# core/v1 Events on batches and tasks: the operator's own and kopf's warnings. Each is a new
# Event with a unique name, never a patched one; nothing uses events.k8s.io.
- apiGroups: [""]
  resources: ["events"]
  verbs:
    - create # post an Event
{{- end }}

{{/*
The operator's permissions on cluster-scoped resources, whatever namespaces it serves.
*/}}
{{- define "agentfleet.clusterRules" -}}
# kopf's resource discovery: after reading the API's discovery documents (which every
# client may), it watches CRDs to notice its resources appear, change or go. It never GETs
# one CRD by name.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs:
    - list   # kopf's listing before its watch
    - watch  # CRDs added, changed or removed while the operator runs
{{- if .Values.watchNamespaces }}
# Only when watchNamespaces is set: kopf lists and watches namespaces to find the ones it
# serves (for plain names too, to notice one created after the operator started). Names of
# namespaces only; serving every namespace does not need it.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs:
    - list   # the namespaces that match, at start
    - watch  # namespaces created or deleted later
{{- end }}
{{- end }}

{{/*
Leader election's permissions, in the release namespace where its Lease lives. Reads and
writes only the one Lease named after the release; create cannot be limited by name (the
object does not exist yet), so it has a rule of its own. No update: every write is a PATCH
(src/agentfleet/operator/leader.py).
*/}}
{{- define "agentfleet.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs:
    - create # the first replica up creates the Lease (a 409 means another one was first)
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "agentfleet.fullname" . | quote }}]
  verbs:
    - get    # read the Lease each round: who holds it, and until when
    - patch  # renew, take over an expired Lease, release it on a clean stop; each patch
             # carries the resourceVersion read as its precondition: of two, one gets 409
{{- end }}
