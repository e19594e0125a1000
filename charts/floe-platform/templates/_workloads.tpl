{{/* Workloads that come in several copies: webserver variants and code locations. */}}

{{/*
The webserver Deployments as a JSON list: the webserver itself, and the read-only one when enabled. Each
entry: component (its name suffix and component label), replicas, readOnly.
*/}}
{{- define "floe.webserverVariants" -}}
{{- $variants := list (dict "component" "webserver" "replicas" .Values.webserver.replicas "readOnly" false) }}
{{- if .Values.webserver.readOnly.enabled }}
{{- $variants = append $variants (dict "component" "webserver-read-only" "replicas" .Values.webserver.readOnly.replicas "readOnly" true) }}
{{- end }}
{{- $variants | toJson }}
{{- end }}

{{/*
The code locations as a JSON list, each complete: name, component label, object name, args of `dagster
code-server start` after host and port, image, replicas, resources, env, serviceAccountName. Without
userCode.locations: the single location of userCode (locationName, module), named as it always was.
*/}}
{{- define "floe.codeLocations" -}}
{{- $userCode := .Values.userCode }}
{{- $locations := list }}
{{- if not $userCode.locations }}
{{- $locations = append $locations (dict "name" $userCode.locationName "component" "user-code" "objectName" (include "floe.componentName" (list . "user-code")) "args" (list "-m" $userCode.module) "image" $userCode.image "replicas" $userCode.replicas "resources" $userCode.resources "env" list "serviceAccountName" "" "selectByName" false) }}
{{- else }}
{{- $seen := dict }}
{{- range $index, $location := $userCode.locations }}
{{- if hasKey $seen $location.name }}
{{- fail (printf "userCode.locations[%d].name: %q is used twice; give each code location its own name" $index $location.name) }}
{{- end }}
{{- $_ := set $seen $location.name true }}
{{- $args := list }}
{{- if and $location.module $location.args }}
{{- fail (printf "userCode.locations[%d]: set module or args, not both" $index) }}
{{- else if $location.module }}{{ $args = list "-m" $location.module }}
{{- else if $location.args }}{{ $args = $location.args }}
{{- else }}
{{- fail (printf "userCode.locations[%d] (%s): set module (e.g. acme.definitions) or args (e.g. [--package-name, acme])" $index $location.name) }}
{{- end }}
{{- $suffix := printf "code-%s" $location.name }}
{{- $objectName := include "floe.componentName" (list $ $suffix) }}
{{- $replicas := $userCode.replicas }}
{{- if not (kindIs "invalid" $location.replicas) }}{{ $replicas = $location.replicas }}{{ end }}
{{- $account := dig "serviceAccount" "name" "" $location }}
{{- $locations = append $locations (dict "name" $location.name "component" "user-code" "objectName" $objectName "args" $args "image" ($location.image | default $userCode.image) "replicas" $replicas "resources" ($location.resources | default $userCode.resources) "env" ($location.env | default list) "serviceAccountName" $account "selectByName" true) }}
{{- end }}
{{- end }}
{{- $locations | toJson }}
{{- end }}

{{/* Selector labels of one code location: call with (list $ $location). */}}
{{- define "floe.codeLocationSelectorLabels" -}}
{{- $root := index . 0 }}
{{- $location := index . 1 }}
{{- include "floe.selectorLabels" (list $root "user-code") }}
{{- /* The single default location keeps the selector it always had (a Deployment's selector is fixed). */}}
{{- if $location.selectByName }}
floe.dev/code-location: {{ $location.name }}
{{- end }}
{{- end }}

{{/*
A NetworkPolicy podSelector for one kind of pod of the release: call with (list $ "component"). Run pods
are the ones dagster-k8s labels with dagster/run-id, launched by this chart's launcher (part-of).
*/}}
{{- define "floe.networkPeerSelector" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- if eq $component "runs" }}
matchLabels:
  app.kubernetes.io/part-of: floe-platform
  app.kubernetes.io/instance: {{ $root.Release.Name }}
matchExpressions:
  - {key: dagster/run-id, operator: Exists}
{{- else }}
matchLabels:
  {{- include "floe.selectorLabels" (list $root $component) | nindent 2 }}
{{- end }}
{{- end }}

{{/* The TCP port of an S3 endpoint URL: its explicit port, else 80 for http and 443 otherwise. */}}
{{- define "floe.endpointPort" -}}
{{- $url := urlParse (. | default "https://s3.amazonaws.com") }}
{{- $hostPort := splitList ":" $url.host }}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}
