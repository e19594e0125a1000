{{/* commonLabels and commonAnnotations: added to every object; the chart's own keys stay the chart's. */}}

{{- define "floe.commonLabels" -}}
{{- range $key, $value := .Values.commonLabels }}
{{- if or (hasPrefix "app.kubernetes.io/" $key) (hasPrefix "helm.sh/" $key) (hasPrefix "floe.dev/" $key) }}
{{- fail (printf "commonLabels.%s: app.kubernetes.io/*, helm.sh/* and floe.dev/* labels are the chart's own; use another key" $key) }}
{{- end }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* commonAnnotations, checked: helm.sh/* annotations steer Helm itself (hooks, keep), so they stay the chart's. */}}
{{- define "floe.commonAnnotations" -}}
{{- range $key, $value := .Values.commonAnnotations }}
{{- if hasPrefix "helm.sh/" $key }}
{{- fail (printf "commonAnnotations.%s: helm.sh/* annotations steer Helm (hooks, resource policy) and are the chart's own; use another key" $key) }}
{{- end }}
{{- end }}
{{- .Values.commonAnnotations | default dict | toJson }}
{{- end }}

{{/* commonAnnotations as lines, for an object whose annotations block the template writes itself. */}}
{{- define "floe.commonAnnotationLines" -}}
{{- with include "floe.commonAnnotations" . | fromJson }}{{ toYaml . }}{{ end }}
{{- end }}

{{/* The metadata.annotations block of an object: call with (list $ <the object's own annotations>). */}}
{{- define "floe.annotations" -}}
{{- $root := index . 0 }}
{{- $all := merge (deepCopy (index . 1 | default dict)) (include "floe.commonAnnotations" $root | fromJson) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
