{{/* Chart name. */}}
{{- define "skein.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: RELEASE-skein, or RELEASE when it already contains the chart name.
Truncated to leave room for "-headless" and pod ordinals within 63 characters.
*/}}
{{- define "skein.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the headless service the pods gossip through. */}}
{{- define "skein.headless" -}}
{{- printf "%s-headless" (include "skein.fullname" .) }}
{{- end }}

{{- define "skein.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "skein.labels" -}}
helm.sh/chart: {{ include "skein.chart" . }}
{{ include "skein.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: broker
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the broker pods. */}}
{{- define "skein.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skein.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "skein.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skein.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "skein.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The gossip address the pods join: the headless service's DNS name, whose A
records are every pod (ready or not).
*/}}
{{- define "skein.joinAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "skein.headless" .) .Release.Namespace .Values.clusterDomain (int .Values.cluster.gossipPort) }}
{{- end }}

{{/* --bootstrap-expect: cluster.bootstrapExpect, or replicaCount. */}}
{{- define "skein.bootstrapExpect" -}}
{{- $n := int .Values.cluster.bootstrapExpect }}
{{- if le $n 0 }}{{ $n = int .Values.replicaCount }}{{ end }}
{{- $n }}
{{- end }}

{{/* --max-voters, checked. */}}
{{- define "skein.maxVoters" -}}
{{- $v := int .Values.cluster.maxVoters }}
{{- if not (has $v (list 1 3 5)) }}
{{- fail (printf "cluster.maxVoters must be 1, 3 or 5, not %d" $v) }}
{{- end }}
{{- $v }}
{{- end }}
