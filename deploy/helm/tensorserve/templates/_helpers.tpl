{{/* Names and labels shared by every object of the chart. */}}
{{- define "tensorserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tensorserve.fullname" -}}
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

{{- define "tensorserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tensorserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tensorserve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tensorserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tensorserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* models.config: the ModelServerConfig text proto. */}}
{{- define "tensorserve.modelConfig" -}}
{{- if .Values.modelConfigText -}}
{{ .Values.modelConfigText }}
{{- else -}}
model_config_list {
{{- range .Values.models }}
  config {
    name: {{ .name | quote }}
    base_path: {{ .basePath | quote }}
    model_platform: "tensorflow"
    {{- with .config }}
    {{ . | nindent 4 | trim }}
    {{- end }}
  }
{{- end }}
}
{{- end -}}
{{- end -}}
