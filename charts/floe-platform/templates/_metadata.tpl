{{/* commonLabels and commonAnnotations: added to every object; the chart's own keys stay the chart's. */}}

{{- define "floe.commonLabels" -}}
{{- range $key, $value := .Values.commonLabels }}
{{- if or (hasPrefix "app.kubernetes.io/" $key) (hasPrefix "helm.sh/" $key) (hasPrefix "floe.dev/" $key) }}
{{- fail (printf "commonLabels.%s: app.kubernetes.io/*, helm.sh/* and floe.dev/* labels are the chart's own; use another key" $key) }}
{{- end }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The metadata.annotations block of an object: commonAnnotations, then the object's own (dict). */}}
{{- define "floe.annotations" -}}
{{- $root := index . 0 }}
{{- $all := merge (deepCopy (index . 1)) ($root.Values.commonAnnotations | default dict) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
