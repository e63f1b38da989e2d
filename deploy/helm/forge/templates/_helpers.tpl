{{/*
Names, labels and the pieces every Forge pod shares.
*/}}

{{- define "forge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "forge.fullname" -}}
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

{{- define "forge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "forge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: forge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "forge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "forge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "forge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "forge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A worker type's image: workers.<type>.image when set (a toolchain built FROM Forge's image), else image. */}}
{{- define "forge.workerImage" -}}
{{- $root := index . 0 -}}
{{- $image := (index . 1).image -}}
{{- if $image.repository -}}
{{- printf "%s:%s" $image.repository (default (default $root.Chart.AppVersion $root.Values.image.tag) $image.tag) -}}
{{- else -}}
{{- include "forge.image" $root -}}
{{- end -}}
{{- end -}}

{{- define "forge.apiName" -}}
{{- printf "%s-api" (include "forge.fullname" .) -}}
{{- end -}}

{{/* The Secret holding the settings in secrets.values (or the user's own). */}}
{{- define "forge.secretName" -}}
{{- default (include "forge.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "forge.signingSecretName" -}}
{{- default (printf "%s-signing" (include "forge.fullname" .)) .Values.signing.existingSecret -}}
{{- end -}}

{{- define "forge.gitopsSecretName" -}}
{{- default (printf "%s-gitops" (include "forge.fullname" .)) .Values.gitops.existingSecret -}}
{{- end -}}

{{/*
Job streams and durable consumers per worker type, as src/domain/jobs.ts STREAMS names them; with
FORGE_NATS_NAMESPACE the stream name is prefixed with it, dots turned into dashes, and the consumer
keeps its name (src/queue/jobs.nats.ts streamNames). test/deploy checks both against the code.
*/}}
{{- define "forge.streams" -}}
discovery: {stream: pipeline-discovery, consumer: discovery-consumer}
ci: {stream: pipeline-tasks, consumer: ci-consumer}
artifact: {stream: pipeline-artifacts, consumer: artifact-consumer}
release: {stream: pipeline-releases, consumer: release-consumer}
{{- end -}}

{{- define "forge.workerTypes" -}}
{{- list "discovery" "ci" "artifact" "release" | toJson -}}
{{- end -}}

{{/* Where the chart mounts things inside Forge's containers. */}}
{{- define "forge.signingDir" -}}/var/run/secrets/forge/signing{{- end -}}
{{- define "forge.gitopsDir" -}}/var/run/secrets/forge/gitops{{- end -}}
{{- define "forge.askpassDir" -}}/opt/forge/git{{- end -}}
{{- define "forge.environmentsDir" -}}/etc/forge/environments{{- end -}}

{{/*
Secret keys as environment variables: each listed key, optional (a Secret of the user's may hold
any subset; the chart's own leaves out empty values).
*/}}
{{- define "forge.secretEnv" -}}
{{- $root := index . 0 -}}
{{- range $key := index . 1 }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "forge.secretName" $root }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end -}}

{{/* Non-empty entries of a settings map as a ConfigMap's data. */}}
{{- define "forge.settingsData" -}}
{{- range $key, $value := . }}
{{- if ne (toString $value) "" }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Everything a deployment of Forge in several processes needs, checked at once: a list of what is
missing instead of a Forge that starts and cannot work.
*/}}
{{- define "forge.validate" -}}
{{- $missing := list -}}
{{- $c := .Values.config -}}
{{- $s := .Values.secrets.values -}}
{{- if not $c.NATS_URL }}{{ $missing = append $missing "config.NATS_URL (workers take their jobs from NATS JetStream)" }}{{ end -}}
{{- if not $c.FORGE_S3_ENDPOINT }}{{ $missing = append $missing "config.FORGE_S3_ENDPOINT (step logs are written by workers and read by the API)" }}{{ end -}}
{{- if not $c.FORGE_RELEASE_REGISTRY }}{{ $missing = append $missing "config.FORGE_RELEASE_REGISTRY (the embedded OCI store lives in one pod's data dir)" }}{{ end -}}
{{- if not $c.FORGE_TRACKING_REGISTRY }}{{ $missing = append $missing "config.FORGE_TRACKING_REGISTRY" }}{{ end -}}
{{- if and .Values.workers.release.enabled (not $c.FORGE_GITOPS_URL) }}{{ $missing = append $missing "config.FORGE_GITOPS_URL (release workers push ReleasePointers there)" }}{{ end -}}
{{- if not .Values.api.config.FORGE_OIDC_ISSUER }}{{ $missing = append $missing "api.config.FORGE_OIDC_ISSUER (the dev issuer's key would differ in every pod)" }}{{ end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- if not $s.DATABASE_URL }}{{ $missing = append $missing "secrets.values.DATABASE_URL (or secrets.existingSecret)" }}{{ end -}}
{{- if and $c.FORGE_S3_ENDPOINT (not (and $s.FORGE_S3_ACCESS_KEY_ID $s.FORGE_S3_SECRET_ACCESS_KEY)) }}{{ $missing = append $missing "secrets.values.FORGE_S3_ACCESS_KEY_ID and FORGE_S3_SECRET_ACCESS_KEY" }}{{ end -}}
{{- $clientCredentials := and .Values.workers.config.FORGE_OIDC_TOKEN_URL .Values.workers.config.FORGE_WORKER_CLIENT_ID $s.FORGE_WORKER_CLIENT_SECRET -}}
{{- if not (or $s.FORGE_WORKER_TOKEN $clientCredentials) }}{{ $missing = append $missing "secrets.values.FORGE_WORKER_TOKEN, or workers.config FORGE_OIDC_TOKEN_URL + FORGE_WORKER_CLIENT_ID with secrets.values.FORGE_WORKER_CLIENT_SECRET" }}{{ end -}}
{{- end -}}
{{- if not (or .Values.signing.existingSecret (and .Values.signing.privateKey .Values.signing.publicKey)) }}{{ $missing = append $missing "signing.privateKey and signing.publicKey, or signing.existingSecret (every worker must sign with one key)" }}{{ end -}}
{{- if and (eq .Values.gitops.auth "token") (not (or .Values.gitops.existingSecret .Values.gitops.token)) }}{{ $missing = append $missing "gitops.token (gitops.auth is token)" }}{{ end -}}
{{- if and (eq .Values.gitops.auth "ssh") (not (or .Values.gitops.existingSecret (and .Values.gitops.sshPrivateKey .Values.gitops.sshKnownHosts))) }}{{ $missing = append $missing "gitops.sshPrivateKey and gitops.sshKnownHosts (gitops.auth is ssh)" }}{{ end -}}
{{- if $missing -}}
{{- fail (printf "\n\nForge needs these values to run as several processes (docs/operations.md):\n  - %s\n" (join "\n  - " $missing)) -}}
{{- end -}}
{{- end -}}

{{/* Checksums that roll the pods when their settings change. */}}
{{- define "forge.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmaps.yaml") . | sha256sum }}
checksum/secrets: {{ include (print .Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end -}}

{{/* The volumes every Forge container writes to (the root filesystem is read-only). */}}
{{- define "forge.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit }}
- name: data
  emptyDir: {}
{{- end -}}

{{- define "forge.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/forge
{{- end -}}
