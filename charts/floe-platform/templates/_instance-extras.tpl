{{/* dagster.yaml beyond storage and the launcher: run_k8s_config, tick retention, additional sections. */}}

{{/*
The launcher's run_k8s_config (layer 1 of its four) as JSON: dagster.runLauncher.runK8sConfig verbatim,
with the compute-log S3 credentials put first in the run container's env (so a later entry of the same
name, given in the values, wins).
*/}}
{{- define "floe.runK8sConfig" -}}
{{- $given := .Values.dagster.runLauncher.runK8sConfig }}
{{- $config := dict }}
{{- range $key, $section := dict "container_config" $given.containerConfig "pod_template_spec_metadata" $given.podTemplateSpecMetadata "pod_spec_config" $given.podSpecConfig "job_metadata" $given.jobMetadata "job_spec_config" $given.jobSpecConfig }}
{{- with $section }}{{ $_ := set $config $key (deepCopy .) }}{{ end }}
{{- end }}
{{- $s3Env := include "floe.s3Env" . | trim }}
{{- if $s3Env }}
{{- $container := get $config "container_config" | default dict }}
{{- $_ := set $container "env" (concat ($s3Env | fromYamlArray) ($container.env | default list)) }}
{{- $_ := set $config "container_config" $container }}
{{- end }}
{{- $config | toJson }}
{{- end }}

{{/* dagster.yaml sections the chart writes itself: additionalInstanceConfig may not repeat them. */}}
{{- define "floe.instanceSectionsOfTheChart" -}}
{{- list "run_storage" "event_log_storage" "schedule_storage" "run_launcher" "run_coordinator" "run_monitoring" "run_retries" "retention" "compute_logs" "telemetry" | toJson }}
{{- end }}

{{/* dagster.additionalInstanceConfig as YAML, refused when it names a section of the chart's own. */}}
{{- define "floe.additionalInstanceConfig" -}}
{{- $own := include "floe.instanceSectionsOfTheChart" . | fromJsonArray }}
{{- $given := .Values.dagster.additionalInstanceConfig }}
{{- range $key := keys $given | sortAlpha }}
{{- if has $key $own }}
{{- fail (printf "dagster.additionalInstanceConfig.%s: the chart writes this dagster.yaml section itself; set it through its own value under dagster (see the chart README) instead" $key) }}
{{- end }}
{{- end }}
{{- with $given }}{{ toYaml . }}{{ end }}
{{- end }}

{{/* The retention section: purge_after_days of schedule, sensor and auto-materialize ticks. */}}
{{- define "floe.tickRetention" -}}
{{- $retention := .Values.dagster.retention }}
{{- if $retention.enabled }}
retention:
  schedule:
    purge_after_days: {{ toJson $retention.schedule.purgeAfterDays }}
  sensor:
    purge_after_days: {{ toJson $retention.sensor.purgeAfterDays }}
  auto_materialize:
    purge_after_days: {{ toJson $retention.autoMaterialize.purgeAfterDays }}
{{- end }}
{{- end }}
