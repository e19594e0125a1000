{{/* Names ---------------------------------------------------------------------------------------- */}}

{{- define "floe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "floe.fullname" -}}
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
"<fullname>-<component>", e.g. floe-floe-platform-webserver. Call with (list $ "webserver").
Every name fits its kind's limit for any release name Helm accepts (53 characters): 63 for Services, Jobs
and label values, 52 for a StatefulSet (its pods' controller-revision-hash label is "<name>-<10-char
hash>", at most 63). A name that would be longer keeps a shortened fullname plus 5 hex digits of the whole
fullname's hash: whatever is cut off still changes the name, so two long releases in one namespace that
differ only at the end get different names. Names that fit are unchanged.
*/}}
{{- define "floe.componentName" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $fullname := include "floe.fullname" $root }}
{{- $limit := get (include "floe.nameLimits" . | fromJson) $component | default 63 | int }}
{{- $name := printf "%s-%s" $fullname $component }}
{{- if gt (len $name) $limit }}
{{- $keep := sub $limit (add (len $component) 7) | int }}
{{- $name = printf "%s-%s-%s" ($fullname | trunc $keep | trimSuffix "-") ($fullname | sha256sum | trunc 5) $component }}
{{- end }}
{{- $name }}
{{- end }}

{{/* A name cut to 63 characters where needed, ending in 5 hex digits of the whole name's hash. */}}
{{- define "floe.fitName" -}}
{{- if gt (len .) 63 }}
{{- printf "%s-%s" (. | trunc 57 | trimSuffix "-") (. | sha256sum | trunc 5) }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/*
Hash of a ConfigMap's data, for a pod annotation that restarts the pods when their configuration changes:
call with (list $ "instance-configmap"). Only the data: the ConfigMap's labels carry the chart version,
which alone must restart nothing.
*/}}
{{- define "floe.configChecksum" -}}
{{- $root := index . 0 }}
{{- (include (print $root.Template.BasePath "/" (index . 1) ".yaml") $root | fromYaml).data | toJson | sha256sum }}
{{- end }}

{{/* Components whose name is a StatefulSet's: at most 52 characters. */}}
{{- define "floe.nameLimits" -}}
{{- dict "postgresql" 52 | toJson }}
{{- end }}

{{/* Labels: call with (list $ "component"). ------------------------------------------------------- */}}

{{- define "floe.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "floe.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Labels of pod templates: the selector labels plus the ones that never change with a chart or app version,
so a chart bump alone restarts no pod (helm.sh/chart and app.kubernetes.io/version stay on the objects).
*/}}
{{- define "floe.podLabels" -}}
{{- $root := index . 0 -}}
{{ include "floe.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: floe-platform
{{- include "floe.commonLabels" $root }}
{{- end }}

{{- define "floe.labels" -}}
{{- $root := index . 0 -}}
{{ include "floe.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: floe-platform
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- include "floe.commonLabels" $root }}
{{- end }}

{{/* Images of this project: call with (list $ .Values.webserver.image). An empty tag means the appVersion. */}}

{{- define "floe.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/*
Images of other projects (postgres, LocalStack): call with (list "postgresql" .Values.postgresql.image). The
chart's version means nothing to them, so an empty tag is refused (the schema refuses it first).
*/}}
{{- define "floe.pinnedImage" -}}
{{- $key := index . 0 }}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (required (printf "%s.image.tag is required: pin the image's own tag (values.yaml has one)" $key) $image.tag) }}
{{- end }}

{{- define "floe.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Scheduling fields shared by every component: call with a component's values. */}}
{{- define "floe.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Service accounts ------------------------------------------------------------------------------- */}}

{{- define "floe.dagster.serviceAccountName" -}}
{{- $sa := .Values.dagster.serviceAccount }}
{{- if $sa.create }}{{ default (include "floe.componentName" (list . "dagster")) $sa.name }}
{{- else }}{{ default "default" $sa.name }}{{ end }}
{{- end }}

{{- define "floe.runWorker.serviceAccountName" -}}
{{- $sa := .Values.dagster.stepJobs.serviceAccount }}
{{- if $sa.create }}{{ default (include "floe.componentName" (list . "run-worker")) $sa.name }}
{{- else }}{{ default "default" $sa.name }}{{ end }}
{{- end }}

{{- /* Run pods: the run worker's identity when they launch step Jobs, else the dagster one (no token). */}}
{{- define "floe.runPod.serviceAccountName" -}}
{{- if .Values.dagster.stepJobs.enabled }}{{ include "floe.runWorker.serviceAccountName" . }}
{{- else }}{{ include "floe.dagster.serviceAccountName" . }}{{ end }}
{{- end }}

{{- define "floe.operator.serviceAccountName" -}}
{{- $sa := .Values.operator.serviceAccount }}
{{- if $sa.create }}{{ default (include "floe.componentName" (list . "operator")) $sa.name }}
{{- else }}{{ default "default" $sa.name }}{{ end }}
{{- end }}

{{/*
Run Jobs live in the release namespace: their ServiceAccount, the instance ConfigMap, the database and S3
Secrets and the FloePlatform's PodTemplates are all there.
*/}}
{{- define "floe.jobNamespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* PostgreSQL -------------------------------------------------------------------------------------- */}}

{{- define "floe.postgresql.host" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s.%s.svc" (include "floe.componentName" (list . "postgresql")) .Release.Namespace }}
{{- else }}
{{- required "externalPostgresql.host is required when postgresql.enabled is false" .Values.externalPostgresql.host }}
{{- end }}
{{- end }}

{{- define "floe.postgresql.secretName" -}}
{{- if .Values.postgresql.enabled }}
{{- default (include "floe.componentName" (list . "postgresql")) .Values.postgresql.auth.existingSecret }}
{{- else }}
{{- required "externalPostgresql.existingSecret is required when postgresql.enabled is false: a Secret with the key postgresql-password" .Values.externalPostgresql.existingSecret }}
{{- end }}
{{- end }}

{{- define "floe.postgresql.username" -}}
{{- if .Values.postgresql.enabled }}{{ .Values.postgresql.auth.username }}{{ else }}{{ .Values.externalPostgresql.username }}{{ end }}
{{- end }}

{{- define "floe.postgresql.database" -}}
{{- if .Values.postgresql.enabled }}{{ .Values.postgresql.auth.database }}{{ else }}{{ .Values.externalPostgresql.database }}{{ end }}
{{- end }}

{{- define "floe.postgresql.port" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.externalPostgresql.port }}{{ end }}
{{- end }}

{{/*
A generated secret value that survives `helm upgrade`: the value already stored in the cluster when
there is one (lookup), else a new random one. `helm template` has no cluster, so lookup returns nothing
there; the decision itself is "floe.keptOrNewSecretValue", which tests call with a simulated Secret.
Call with (list $ "secret-name" "key"); the result is base64, for a Secret's data.
*/}}
{{- define "floe.generatedSecretValue" -}}
{{- $root := index . 0 }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (index . 1) | default dict }}
{{- include "floe.keptOrNewSecretValue" (list $existing (index . 2)) }}
{{- end }}

{{/* Call with (list <Secret object or empty dict> "key"). */}}
{{- define "floe.keptOrNewSecretValue" -}}
{{- $data := (index . 0).data | default dict }}
{{- $key := index . 1 }}
{{- if hasKey $data $key }}{{ index $data $key }}{{ else }}{{ randAlphaNum 32 | b64enc }}{{ end }}
{{- end }}

{{/* The platform and its compute logs ------------------------------------------------------------ */}}

{{- define "floe.platformName" -}}
{{- $platform := .Values.platform | default dict }}
{{- default (dig "platform" "name" "floe" $platform) .Values.dagster.runLauncher.platformName }}
{{- end }}

{{- define "floe.defaultProfile" -}}
{{- $profiles := dig "infrastructure" "resource_profiles" dict (.Values.platform | default dict) }}
{{- if .Values.dagster.runLauncher.defaultProfile }}
{{- if and $profiles (not (hasKey $profiles .Values.dagster.runLauncher.defaultProfile)) }}
{{- fail (printf "dagster.runLauncher.defaultProfile: %q is not a profile of platform.infrastructure.resource_profiles (%s)" .Values.dagster.runLauncher.defaultProfile (keys $profiles | sortAlpha | join ", ")) }}
{{- end }}
{{- .Values.dagster.runLauncher.defaultProfile }}
{{- else if or (not $profiles) (hasKey $profiles "default") }}default
{{- else }}
{{- keys $profiles | sortAlpha | first }}
{{- end }}
{{- end }}

{{/*
platform.observability.compute_logs with platform.yaml's defaults, as JSON. The defaults come from
files/compute-log-defaults.json, which `make schemas` generates from the models.
*/}}
{{- define "floe.computeLogs" -}}
{{- $defaults := .Files.Get "files/compute-log-defaults.json" | fromJson }}
{{- $logs := deepCopy (dig "observability" "compute_logs" dict (.Values.platform | default dict)) }}
{{- /* not sprig's merge: it overwrites a given false with a default true */}}
{{- range $key, $value := $defaults }}
{{- if not (hasKey $logs $key) }}{{ $_ := set $logs $key $value }}{{ end }}
{{- end }}
{{- $logs | toJson }}
{{- end }}

{{/* "s3", "local" or "noop": what the compute log manager is. */}}
{{- define "floe.computeLogs.kind" -}}
{{- $logs := include "floe.computeLogs" . | fromJson }}
{{- if $logs.enabled }}{{ $logs.manager_type }}{{ else }}noop{{ end }}
{{- end }}

{{/*
The S3 storage of compute logs as JSON: endpoint, region, use_ssl, and the Secret with the credentials.
storage_ref names an entry of platform.storage, or "default" for the built-in LocalStack.
*/}}
{{- define "floe.computeLogs.storage" -}}
{{- $logs := include "floe.computeLogs" . | fromJson }}
{{- $storages := dig "storage" dict (.Values.platform | default dict) }}
{{- if hasKey $storages $logs.storage_ref }}
{{- $storage := index $storages $logs.storage_ref }}
{{- $credentials := $storage.credentials | default dict }}
{{- $endpoint := $storage.endpoint | default "" }}
{{- dict "endpoint" $endpoint "region" ($storage.region | default "us-east-1") "use_ssl" (not (hasPrefix "http://" $endpoint)) "builtin" false "secret" ($credentials.secret_name | default "") "access_key_id_key" ($credentials.access_key_id_key | default "AWS_ACCESS_KEY_ID") "secret_access_key_key" ($credentials.secret_access_key_key | default "AWS_SECRET_ACCESS_KEY") | toJson }}
{{- else if ne $logs.storage_ref "default" }}
{{- fail (printf "platform.observability.compute_logs.storage_ref: %q is not a storage defined under storage (defined: %s); add it there or use 'default' for the built-in S3" $logs.storage_ref (keys $storages | sortAlpha | join ", " | default "none")) }}
{{- else }}
{{- if not .Values.localstack.enabled }}
{{- fail (printf "platform.observability.compute_logs.storage_ref: %q is the built-in S3, but localstack.enabled is false; define the storage under platform.storage or enable localstack" $logs.storage_ref) }}
{{- end }}
{{- $endpoint := printf "http://%s.%s.svc:4566" (include "floe.componentName" (list . "localstack")) .Release.Namespace }}
{{- dict "endpoint" $endpoint "region" .Values.localstack.region "use_ssl" false "builtin" true "secret" (include "floe.componentName" (list . "s3")) "access_key_id_key" "AWS_ACCESS_KEY_ID" "secret_access_key_key" "AWS_SECRET_ACCESS_KEY" | toJson }}
{{- end }}
{{- end }}

{{/*
The compute-log bucket the built-in LocalStack creates on each start, as JSON (bucket, prefix,
retention_days); empty when compute logs do not go to the built-in S3.
*/}}
{{- define "floe.localstack.bucket" -}}
{{- if and .Values.localstack.enabled (eq (include "floe.computeLogs.kind" .) "s3") }}
{{- if (include "floe.computeLogs.storage" . | fromJson).builtin }}
{{- pick (include "floe.computeLogs" . | fromJson) "bucket" "prefix" "retention_days" | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The shared catalog's bucket when the catalog's data files go to the built-in LocalStack, which then
creates it on each start; empty otherwise. This holds when the chart writes the FloePlatform (platform
is set), the catalog is on, its storage_ref is "default" and platform.storage does not define "default":
floeplatform.yaml then adds the built-in S3 as that storage. Independent of where compute logs go.
*/}}
{{- define "floe.localstack.catalogBucket" -}}
{{- with .Values.platform }}
{{- $catalog := .catalog | default dict }}
{{- $enabled := ternary $catalog.enabled true (hasKey $catalog "enabled") }}
{{- $onDefault := and (eq ($catalog.storage_ref | default "default") "default") (not (hasKey (.storage | default dict) "default")) }}
{{- if and $.Values.localstack.enabled $enabled $onDefault }}
{{- $catalog.bucket | default "floe-lake" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Containers ------------------------------------------------------------------------------------ */}}

{{- define "floe.dagsterHome" -}}/opt/dagster/dagster_home{{- end }}
{{- define "floe.workspaceDir" -}}/opt/dagster/workspace{{- end }}

{{/*
Env of every container that opens the Dagster instance (webserver, daemon, code server): the Postgres
password and, for S3 compute logs, the S3 credentials, both from Secrets.
*/}}
{{- define "floe.dagsterEnv" -}}
- name: DAGSTER_HOME
  value: {{ include "floe.dagsterHome" . }}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: DAGSTER_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "floe.postgresql.secretName" . }}
      key: postgresql-password
{{- include "floe.s3Env" . }}
{{- end }}

{{- define "floe.s3Env" -}}
{{- if eq (include "floe.computeLogs.kind" .) "s3" }}
{{- include "floe.s3CredentialEnv" (include "floe.computeLogs.storage" . | fromJson) }}
{{- end }}
{{- end }}

{{/* The AWS key pair from a storage's Secret: call with a dict of secret, access_key_id_key and
secret_access_key_key (a storage without a Secret gets none). */}}
{{- define "floe.s3CredentialEnv" -}}
{{- if .secret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .access_key_id_key }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .secret_access_key_key }}
{{- end }}
{{- end }}

{{/* Volumes of a container that opens the instance: dagster.yaml in a writable DAGSTER_HOME, and /tmp. */}}
{{- define "floe.dagsterVolumeMounts" -}}
- name: dagster-home
  mountPath: {{ include "floe.dagsterHome" . }}
- name: instance
  mountPath: {{ include "floe.dagsterHome" . }}/dagster.yaml
  subPath: dagster.yaml
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "floe.dagsterVolumes" -}}
- name: dagster-home
  emptyDir:
    sizeLimit: 1Gi
- name: instance
  configMap:
    name: {{ include "floe.componentName" (list . "instance") }}
- name: tmp
  emptyDir:
    sizeLimit: 2Gi
{{- end }}

{{/* RBAC ------------------------------------------------------------------------------------------- */}}

{{/*
The operator's rules: least privilege for kopf in standalone mode with namespace scanning off, i.e. the
FloePlatforms and their status, the children it owns, and Events.
*/}}
{{- /*
What the operator's calls need (tests/chart/test_chart_rbac_derived.py records them): watch and list
FloePlatforms, patch them (to remove an earlier version's finalizer) and their status; list, watch, create,
patch and delete their children (PodTemplates, and the LimitRange and ResourceQuota of namespace_limits),
and read one back when a create finds it already there; post Events.
*/}}
{{- define "floe.operator.rules" -}}
- apiGroups: [floe.dev]
  resources: [floeplatforms]
  verbs: [list, watch, patch]
- apiGroups: [floe.dev]
  resources: [floeplatforms/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [podtemplates, limitranges, resourcequotas]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Name of the operator's ClusterRole(Binding): cluster-scoped, so the namespace keeps releases apart. */}}
{{- define "floe.operator.clusterRoleName" -}}
{{- include "floe.fitName" (printf "%s-%s" .Release.Namespace (include "floe.componentName" (list . "operator"))) }}
{{- end }}

{{- define "floe.operator.namespaces" -}}
{{- .Values.operator.watchNamespaces | default (list .Release.Namespace) | toJson }}
{{- end }}

{{/*
platform.infrastructure.namespace_limits from namespaceLimits, as JSON: the numbers stay as written (the
operator derives the LimitRange and ResourceQuota; the chart holds no quantity arithmetic), plus the
components' resources.limits verbatim, so that the LimitRange maximum never locks them out.
*/}}
{{- define "floe.namespaceLimits" -}}
{{- $values := .Values.namespaceLimits }}
{{- if not (dig "infrastructure" "resource_profiles" dict (.Values.platform | default dict)) }}
{{- fail "namespaceLimits.enabled: the limits are derived from the profiles, so set platform (platform.yaml content) too" }}
{{- end }}
{{- $runs := $values.concurrentRuns | default .Values.dagster.runCoordinator.maxConcurrentRuns | int64 }}
{{- if lt $runs 1 }}
{{- fail "namespaceLimits.concurrentRuns: dagster.runCoordinator.maxConcurrentRuns is unlimited, so set the number of runs the quota must fit" }}
{{- end }}
{{- $services := list }}
{{- range $component := list .Values.webserver .Values.daemon .Values.userCode .Values.postgresql .Values.localstack .Values.computeLogBucketJob .Values.dagster.migrate .Values.uninstallHook .Values.operator .Values.tests }}
{{- with pick (dig "resources" "limits" dict $component) "cpu" "memory" }}
{{- $services = append $services . }}
{{- end }}
{{- end }}
{{- /* Code locations with resources of their own (userCode.locations[].resources). */}}
{{- range $location := .Values.userCode.locations }}
{{- with pick (dig "resources" "limits" dict $location) "cpu" "memory" }}
{{- $services = append $services . }}
{{- end }}
{{- end }}
{{- dict "enabled" true "concurrent_runs" $runs "services_headroom" $values.servicesHeadroom "service_container_limits" $services | toJson }}
{{- end }}

{{/* Startup ----------------------------------------------------------------------------------------- */}}

{{/*
The init container that waits until PostgreSQL accepts Dagster's login (files/wait-for-postgres.py, inlined
so it needs no volume). Call with (list $ <component values>): it runs the component's image.
*/}}
{{- define "floe.waitForPostgres" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- $params := ternary dict $root.Values.externalPostgresql.params $root.Values.postgresql.enabled }}
initContainers:
  - name: wait-for-postgres
    image: {{ include "floe.image" (list $root $values.image) }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    command:
      - python
      - -c
      - {{ $root.Files.Get "files/wait-for-postgres.py" | quote }}
    env:
      - name: PYTHONDONTWRITEBYTECODE
        value: "1"
      - name: PGHOST
        value: {{ include "floe.postgresql.host" $root | quote }}
      - name: PGPORT
        value: {{ include "floe.postgresql.port" $root | quote }}
      - name: PGUSER
        value: {{ include "floe.postgresql.username" $root | quote }}
      - name: PGDATABASE
        value: {{ include "floe.postgresql.database" $root | quote }}
      - name: PG_PARAMS
        value: {{ $params | toJson | quote }}
      - name: DAGSTER_PG_PASSWORD
        valueFrom:
          secretKeyRef:
            name: {{ include "floe.postgresql.secretName" $root }}
            key: postgresql-password
    resources:
      {{- toYaml $values.resources | nindent 6 }}
    securityContext:
      {{- toYaml $values.securityContext | nindent 6 }}
{{- end }}

{{/*
startupProbe: the other probes wait until this one passes, so a slow first start (a database still
initialising, a large code location loading) is given up to periodSeconds x failureThreshold = 5 minutes
instead of being killed by the liveness probe. Call with the probe's handler as a dict.
*/}}
{{- define "floe.startupProbe" -}}
startupProbe:
  {{- toYaml . | nindent 2 }}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 60
{{- end }}

{{/* "true" when the release owns a FloePlatform (platform set) and the pre-delete hook is on; else empty. */}}
{{- define "floe.uninstallHook.enabled" -}}
{{- if and .Values.platform .Values.uninstallHook.enabled }}true{{ end }}
{{- end }}

{{/*
"true" when the chart renders against a cluster (helm install/upgrade), empty under `helm template`, `helm
lint` and GitOps tools that render without one. Listing the release namespace's Secrets works wherever Helm
itself does: its release records are Secrets there. A namespace not created yet lists as empty, not as
nothing.
*/}}
{{- define "floe.clusterReachable" -}}
{{- if lookup "v1" "Secret" .Release.Namespace "" }}true{{ end }}
{{- end }}
