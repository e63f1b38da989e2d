/**
 * Process settings: every setting is an environment variable with a command-line flag beside it
 * (the flag wins). Parsed and validated once per process role; a bad value stops the process with
 * a message naming the setting. The parsed object is passed down explicitly, never read globally.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import YAML from 'yaml';
import { CRASH_POINTS, type CrashPoint } from '../domain/faults.ts';
import { checkPointerLayout } from '../domain/gitops-layout.ts';
import { DEFAULT_POLICIES, type EnvironmentPolicy } from '../domain/policy.ts';
import { NAME_PATTERNS, NAME_RULES, isValidName } from '../domain/names.ts';
import { KUBERNETES_NAMES } from '../domain/xr.ts';
import { RELEASE_TRIGGER_TYPES, type ReleaseTriggerType } from '../domain/statuses.ts';
import { DISPATCH_STAGES, WORKER_TYPES, type DispatchStage, type WorkerType } from '../domain/jobs.ts';
import { EMBEDDED_RELEASE_REGISTRY, EMBEDDED_TRACKING_REGISTRY, REGISTRY_ADDRESS } from '../domain/registries.ts';
import { DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY, MAX_RUN_DURATION_MS } from '../domain/limits.ts';
import { parseDuration } from '../lib/duration.ts';

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

export interface RateLimit {
  max: number;
  windowMs: number;
}

export interface RateLimits {
  runCreate: RateLimit;
  releaseLookup: RateLimit;
  deploymentCreate: RateLimit;
}

export interface ServerSettings {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  natsUrl: string | undefined;
  oidc: { issuer: string; audience: string; clientId: string | undefined } | undefined;
  approvalTtlMs: number;
  rateLimits: RateLimits | 'off';
  /** Where release images are named (FORGE_RELEASE_REGISTRY, else the embedded store's name). */
  releaseRegistry: string;
  environments: EnvironmentPolicy[];
  logLevel: string;
  publicUrl: string;
  execution: ExecutionSettings;
  /** Worker types this process runs itself (none when workers run as `forge worker` elsewhere). */
  inProcessWorkers: WorkerType[];
  /** At most 24 h (MAX_RUN_DURATION_MS). */
  runTimeoutMs: number;
  /** Unfinished runs a repository may have at once (1-1000; seed 06: 1000). */
  maxActiveRunsPerRepository: number;
  retention: RetentionSettings;
  github: GitHubSettings;
  /** Seed examples/monorepo into the data dir and run its pipeline at start (`npm start`). */
  example: boolean;
  /** The built dashboard (index.html + assets/); undefined = <package root>/dist/web (the composition root knows where that is). */
  webRoot: string | undefined;
  /** How the dashboard logs in to an OIDC issuer (GET /v1/auth/config). */
  ui: UiSettings;
  /** TEST ONLY (FORGE_FAULT_HOOK): the crash point where the server SIGKILLs itself; undefined in production. */
  crashAfter: CrashPoint | undefined;
  telemetry: TelemetrySettings;
  /** Who publishes runs' jobs: this server's dispatcher, or Argo Workflows' dispatcher pods (issue 9). */
  orchestrator: OrchestratorSettings;
}

export type OrchestratorSettings = { kind: 'builtin' } | ArgoSettings;

/** FORGE_ORCHESTRATOR=argo: one Argo Workflow per run, submitted through the Argo Server REST API. */
export interface ArgoSettings {
  kind: 'argo';
  serverUrl: string;
  token: string | undefined;
  namespace: string;
  serviceAccount: string;
  image: string;
  parallelism: number;
  /** The Forge API URL as dispatcher pods reach it. */
  apiUrl: string;
  /** The Kubernetes Secret (and key) holding the service-account token dispatcher pods report with. */
  tokenSecret: { name: string; key: string };
}

export const TRACES_EXPORTERS = ['none', 'otlp', 'console'] as const;
export type TracesExporter = (typeof TRACES_EXPORTERS)[number];

/** OpenTelemetry traces, shared by `forge server` and `forge worker`. */
export interface TelemetrySettings {
  exporter: TracesExporter;
  /** OTLP/HTTP (JSON) traces URL, e.g. http://otel-collector:4318/v1/traces. */
  otlpEndpoint: string;
  otlpHeaders: Record<string, string>;
  /** Fraction of new traces kept (parent-based: a worker follows the API's decision). */
  sampleRatio: number;
}

/** What the retention job deletes and how often it runs; undefined = off. */
export interface RetentionSettings {
  runsOlderThanMs: number | undefined;
  logsOlderThanMs: number | undefined;
  /** How often `forge server` runs a pass (the first soon after start); undefined: only `forge retention run`. */
  intervalMs: number | undefined;
}

export interface UiSettings {
  /** Public client id for the authorization-code + PKCE login; undefined = the dashboard takes a pasted token. */
  clientId: string | undefined;
  /** Space-separated scopes. */
  scopes: string;
  /** RFC 8707 resource indicator sent with the login, for issuers that need one to mint JWT access tokens for the API. */
  resource: string | undefined;
}

/** What the dispatcher and every worker must agree on: queue, object store, repository access. */
export interface ExecutionSettings {
  natsUrl: string | undefined;
  /** Prefix of every stream and subject (several Forges on one NATS; tests). */
  natsNamespace: string;
  ackWaitMs: number;
  s3: S3ObjectSettings | undefined;
  gitUrlTemplate: string;
  gitCredentials: { username: string; token: string } | undefined;
  workerConcurrency: number;
  /** How workers authenticate to the internal endpoints; neither set = the dev issuer, if there is one. */
  workerToken: string | undefined;
  clientCredentials: { tokenUrl: string; clientId: string; clientSecret: string } | undefined;
  registries: RegistrySettings;
  /** Where deployment jobs (release workers) commit ReleasePointers. */
  gitops: GitOpsSettings;
  /** How workers resolve secret references (steps' `secrets`, publishers' `credentials`). */
  secrets: SecretSettings;
}

/** The secret providers of the workers (digest §6.4); env and file are always there. */
export interface SecretSettings {
  /** Root of the `file` provider (mounted Kubernetes Secrets). */
  dir: string;
  /** Secrets Manager: region (a reference's `region` wins; undefined = references must say) and endpoint (undefined = AWS's). */
  aws: { region: string | undefined; endpoint: string | undefined };
  /** Vault KV v2; undefined = no vault provider on this worker. */
  vault: { addr: string; token: string; mount: string } | undefined;
}

export interface GitOpsSettings {
  /** Any URL git accepts; undefined = the bare repository <data dir>/gitops.git. */
  url: string | undefined;
  /** Pointer path template with {environment}, {repository}, {project}. */
  layout: string;
  authorName: string;
  authorEmail: string;
}

/** Where release and tracking images go and how registries are reached (issue 5). */
export interface RegistrySettings {
  /** host[:port][/path]; undefined = the embedded OCI layout store in the data dir. */
  release: string | undefined;
  tracking: string | undefined;
  insecure: boolean;
  credentials: { username: string; password: string } | undefined;
  /** PEM file of the signing key; undefined = <data dir>/keys/signing.key (generated). */
  signingKey: string | undefined;
}

export interface S3ObjectSettings {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  prefix: string | undefined;
}

export interface GitHubSettings {
  webhookSecret: string | undefined;
  token: string | undefined;
  apiUrl: string | undefined;
  oidcIssuer: string | undefined;
  oidcJwksUrl: string | undefined;
  oidcAudience: string | undefined;
  repositories: string[];
  tokenTtlSeconds: number;
}

export interface WorkerSettings {
  url: string;
  dataDir: string;
  cacheDir: string;
  types: WorkerType[];
  execution: ExecutionSettings;
  logLevel: string;
  telemetry: TelemetrySettings;
  /** Where the worker serves /metrics, /healthz and /readyz; undefined = not served. */
  metrics: { host: string; port: number } | undefined;
}

export interface ClientSettings {
  url: string;
  token: string | undefined;
}

type Source = Record<string, string | undefined>;
/** Parsed command-line flags: strings, `true` for a switch, arrays for a repeated flag. */
type Flags = Record<string, unknown>;

/** One setting: its environment variable and the flag that overrides it. */
export interface SettingSpec {
  env: string;
  flag: string;
  description: string;
  default?: string;
}

export const SERVER_SETTINGS = {
  host: { env: 'FORGE_HOST', flag: '--host', description: 'address to listen on', default: '127.0.0.1' },
  port: { env: 'FORGE_PORT', flag: '--port', description: 'port to listen on (0 = any free port)', default: '8080' },
  dataDir: { env: 'FORGE_DATA_DIR', flag: '--data-dir', description: 'embedded data: PGlite database, dev issuer key, GitOps repo', default: '.forge-data' },
  databaseUrl: { env: 'DATABASE_URL', flag: '--database-url', description: 'PostgreSQL URL; unset = embedded PGlite in the data dir' },
  natsUrl: { env: 'NATS_URL', flag: '--nats-url', description: 'NATS URL; events go to forge.events.<type> when set' },
  oidcIssuer: { env: 'FORGE_OIDC_ISSUER', flag: '--oidc-issuer', description: 'OIDC issuer URL (Keycloak realm); unset = embedded dev issuer' },
  oidcAudience: { env: 'FORGE_OIDC_AUDIENCE', flag: '--oidc-audience', description: 'expected token audience', default: 'forge' },
  oidcClientId: { env: 'FORGE_OIDC_CLIENT_ID', flag: '--oidc-client-id', description: 'client whose resource_access roles count (default: the audience)' },
  approvalTtl: { env: 'FORGE_APPROVAL_TTL', flag: '--approval-ttl', description: 'how long an approval stays active', default: '24h' },
  rateLimits: { env: 'FORGE_RATE_LIMITS', flag: '--rate-limits', description: '"off", or overrides like "runs=100/1m,releases=1000/1m,deployments=10/1m"', default: 'runs=100/1m,releases=1000/1m,deployments=10/1m' },
  environments: { env: 'FORGE_ENVIRONMENTS', flag: '--environments', description: 'YAML/JSON file of environment policies; unset = dev, staging, production defaults' },
  logLevel: { env: 'FORGE_LOG_LEVEL', flag: '--log-level', description: 'fatal, error, warn, info, debug, trace or silent', default: 'info' },
  publicUrl: { env: 'FORGE_PUBLIC_URL', flag: '--public-url', description: 'URL users reach the server at (default http://host:port)' },
  workers: { env: 'FORGE_WORKERS', flag: '--workers', description: `worker types to run inside the server: a comma list of ${WORKER_TYPES.join(', ')}, or "none" when \`forge worker\` processes take the jobs`, default: 'discovery,ci,artifact,release' },
  runTimeout: { env: 'FORGE_RUN_TIMEOUT', flag: '--run-timeout', description: 'a run not finished by then is failed by the watchdog (at most 24h)', default: '24h' },
  maxActiveRuns: { env: 'FORGE_MAX_ACTIVE_RUNS_PER_REPOSITORY', flag: '--max-active-runs-per-repository', description: 'unfinished (pending or running) runs a repository may have at once; one more is refused with 429 (1-1000)', default: String(DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY) },
  runRetention: { env: 'FORGE_RUN_RETENTION', flag: '--run-retention', description: 'finished runs older than this are deleted with their steps and logs; releases, deployments and approvals are kept ("off": keep runs)', default: '90d' },
  logRetention: { env: 'FORGE_LOG_RETENTION', flag: '--log-retention', description: 'step logs of finished runs older than this are deleted ("off": keep logs as long as their runs)', default: '30d' },
  retentionInterval: { env: 'FORGE_RETENTION_INTERVAL', flag: '--retention-interval', description: 'how often the server applies retention (one replica at a time; "off": only `forge retention run`)', default: '1h' },
  example: { env: 'FORGE_EXAMPLE', flag: '--example', description: 'seed examples/monorepo into the data dir (as forge-examples/monorepo, served to workers from there) and run its pipeline at start; what `npm start` does' },
  webRoot: { env: 'FORGE_WEB_ROOT', flag: '--web-root', description: 'directory of the built dashboard (index.html, assets/) served at /; unset = dist/web of the Forge package (`npm run build:web`)' },
  uiClientId: { env: 'FORGE_UI_CLIENT_ID', flag: '--ui-client-id', description: 'public OIDC client (authorization code + PKCE) the dashboard logs in with; unset = the dashboard asks for a pasted token (with FORGE_OIDC_ISSUER)' },
  uiScopes: { env: 'FORGE_UI_SCOPES', flag: '--ui-scopes', description: 'scopes the dashboard requests, space-separated', default: 'openid profile' },
  uiResource: { env: 'FORGE_UI_RESOURCE', flag: '--ui-resource', description: 'RFC 8707 resource indicator the dashboard sends when logging in (some issuers need it to mint JWT access tokens for the API)' },
  orchestrator: { env: 'FORGE_ORCHESTRATOR', flag: '--orchestrator', description: '"builtin" (this server publishes every job) or "argo" (one Argo Workflow per run; its `forge dispatch` pods publish the jobs; needs NATS_URL, FORGE_ARGO_SERVER_URL, FORGE_ARGO_IMAGE)', default: 'builtin' },
  argoServerUrl: { env: 'FORGE_ARGO_SERVER_URL', flag: '--argo-server-url', description: 'Argo Server URL Workflows are submitted to (POST <url>/api/v1/workflows/<namespace>)' },
  argoToken: { env: 'FORGE_ARGO_TOKEN', flag: '--argo-token', description: 'bearer token sent to the Argo Server (a service account allowed to create, list and get Workflows)' },
  argoNamespace: { env: 'FORGE_ARGO_NAMESPACE', flag: '--argo-namespace', description: 'Kubernetes namespace of the Workflows', default: 'catalyst-forge-pipelines' },
  argoServiceAccount: { env: 'FORGE_ARGO_SERVICE_ACCOUNT', flag: '--argo-service-account', description: 'service account the Workflows run as', default: 'pipeline-workflow-runner' },
  argoImage: { env: 'FORGE_ARGO_IMAGE', flag: '--argo-image', description: 'image of the dispatcher pods (runs `forge dispatch`), e.g. ghcr.io/example/forge:1.2.3' },
  argoParallelism: { env: 'FORGE_ARGO_PARALLELISM', flag: '--argo-parallelism', description: 'pods of one Workflow running at once', default: '100' },
  argoApiUrl: { env: 'FORGE_ARGO_API_URL', flag: '--argo-api-url', description: 'Forge API URL as dispatcher pods reach it (default FORGE_PUBLIC_URL)' },
  argoTokenSecret: { env: 'FORGE_ARGO_TOKEN_SECRET', flag: '--argo-token-secret', description: 'Kubernetes Secret "name/key" whose value dispatcher pods get as FORGE_WORKER_TOKEN', default: 'forge-dispatcher/token' },
  faultHook: { env: 'FORGE_FAULT_HOOK', flag: '--fault-hook', description: `TEST ONLY, never in production: crash-after:<point> makes the server SIGKILL itself at that point (${CRASH_POINTS.join(', ')}), for the fault tests in test/faults` },
} as const satisfies Record<string, SettingSpec>;

/** Settings the server and every worker share: the queue, the object store, repository access. */
export const EXECUTION_SETTINGS = {
  natsNamespace: { env: 'FORGE_NATS_NAMESPACE', flag: '--nats-namespace', description: 'prefix of every job stream and subject, for several Forges on one NATS (letters, digits, - and _, ending in ".")' },
  ackWait: { env: 'FORGE_ACK_WAIT', flag: '--ack-wait', description: 'a job not acked or heartbeated for this long is redelivered (max 3 deliveries)', default: '30s' },
  s3Endpoint: { env: 'FORGE_S3_ENDPOINT', flag: '--s3-endpoint', description: 'S3 endpoint for logs and large job results; unset = files in <data dir>/objects' },
  s3Bucket: { env: 'FORGE_S3_BUCKET', flag: '--s3-bucket', description: 'S3 bucket (with FORGE_S3_ENDPOINT)', default: 'forge' },
  s3Region: { env: 'FORGE_S3_REGION', flag: '--s3-region', description: 'S3 region', default: 'us-east-1' },
  s3AccessKeyId: { env: 'FORGE_S3_ACCESS_KEY_ID', flag: '--s3-access-key-id', description: 'S3 access key id' },
  s3SecretAccessKey: { env: 'FORGE_S3_SECRET_ACCESS_KEY', flag: '--s3-secret-access-key', description: 'S3 secret access key' },
  s3Prefix: { env: 'FORGE_S3_PREFIX', flag: '--s3-prefix', description: 'key prefix inside the bucket' },
  gitUrlTemplate: { env: 'FORGE_GIT_URL_TEMPLATE', flag: '--git-url-template', description: 'clone URL of a run\'s repository; {repository} is owner/name (file:///srv/git/{repository}.git for local repositories)', default: 'https://github.com/{repository}.git' },
  gitUsername: { env: 'FORGE_GIT_USERNAME', flag: '--git-username', description: 'user name sent with FORGE_GIT_TOKEN over https', default: 'x-access-token' },
  gitToken: { env: 'FORGE_GIT_TOKEN', flag: '--git-token', description: 'token for https clones (never part of a run or a URL)' },
  workerToken: { env: 'FORGE_WORKER_TOKEN', flag: '--worker-token', description: 'service-account bearer token workers report with; unset = client credentials, else the dev issuer key in the data dir' },
  tokenUrl: { env: 'FORGE_OIDC_TOKEN_URL', flag: '--oidc-token-url', description: 'OIDC token endpoint for the workers\' client-credentials grant (Keycloak: <realm>/protocol/openid-connect/token)' },
  clientId: { env: 'FORGE_WORKER_CLIENT_ID', flag: '--worker-client-id', description: 'service-account client id (client-credentials grant)' },
  clientSecret: { env: 'FORGE_WORKER_CLIENT_SECRET', flag: '--worker-client-secret', description: 'service-account client secret' },
  workerConcurrency: { env: 'FORGE_WORKER_CONCURRENCY', flag: '--worker-concurrency', description: 'jobs a worker runs at once, per worker type', default: '4' },
  releaseRegistry: { env: 'FORGE_RELEASE_REGISTRY', flag: '--release-registry', description: `registry (host[:port][/path]) of Release OCI images, e.g. 127.0.0.1:5000/releases; unset = the embedded OCI layout store in <data dir>/oci, named ${EMBEDDED_RELEASE_REGISTRY}` },
  trackingRegistry: { env: 'FORGE_TRACKING_REGISTRY', flag: '--tracking-registry', description: `registry of artifact tracking images; unset = the embedded OCI layout store, named ${EMBEDDED_TRACKING_REGISTRY}` },
  registryInsecure: { env: 'FORGE_REGISTRY_INSECURE', flag: '--registry-insecure', description: 'talk plain HTTP to registries (a local docker-registry); 1/true or 0/false' },
  registryUsername: { env: 'FORGE_REGISTRY_USERNAME', flag: '--registry-username', description: 'user name for the release, tracking and docker-publisher registries (Basic or token auth)' },
  registryPassword: { env: 'FORGE_REGISTRY_PASSWORD', flag: '--registry-password', description: 'password or token for FORGE_REGISTRY_USERNAME' },
  gitopsUrl: { env: 'FORGE_GITOPS_URL', flag: '--gitops-url', description: 'GitOps repository deployment jobs push ReleasePointers to (any URL git accepts: https, ssh, file, a path); unset = the bare repo <data dir>/gitops.git' },
  gitopsLayout: { env: 'FORGE_GITOPS_LAYOUT', flag: '--gitops-layout', description: 'path of a ReleasePointer in the GitOps repo, with {environment}, {repository} (owner/name) and {project}', default: 'environments/{environment}/{repository}/{project}/release.yaml' },
  gitopsAuthor: { env: 'FORGE_GITOPS_AUTHOR', flag: '--gitops-author', description: 'author of pointer commits, "Name <email>"', default: 'Forge <forge@localhost>' },
  signingKey: { env: 'FORGE_SIGNING_KEY', flag: '--signing-key', description: 'PEM file of the ECDSA P-256 key that signs release and tracking images; unset = <data dir>/keys/signing.key, generated on first use' },
  secretsDir: { env: 'FORGE_SECRETS_DIR', flag: '--secrets-dir', description: 'directory the `file` secret provider reads (mounted Kubernetes Secrets: <secret>/<key>); references cannot leave it', default: '/var/run/secrets/forge' },
  awsSecretsRegion: { env: 'FORGE_AWS_SECRETS_REGION', flag: '--aws-secrets-region', description: 'AWS region of Secrets Manager for `aws` secret references without region:; unset = AWS_REGION, else references must give one (credentials: the AWS SDK\'s default chain, e.g. IRSA)' },
  awsSecretsEndpoint: { env: 'FORGE_AWS_SECRETS_ENDPOINT', flag: '--aws-secrets-endpoint', description: 'Secrets Manager endpoint URL (a VPC endpoint, LocalStack); unset = AWS\'s endpoint for the region' },
  vaultAddr: { env: 'FORGE_VAULT_ADDR', flag: '--vault-addr', description: 'Vault URL for `vault` secret references (KV v2); unset = no vault provider' },
  vaultToken: { env: 'FORGE_VAULT_TOKEN', flag: '--vault-token', description: 'Vault token (X-Vault-Token) for FORGE_VAULT_ADDR' },
  vaultMount: { env: 'FORGE_VAULT_MOUNT', flag: '--vault-mount', description: 'KV v2 mount of `vault` references without mount:', default: 'secret' },
} as const satisfies Record<string, SettingSpec>;

export const GITHUB_SETTINGS = {
  webhookSecret: { env: 'FORGE_GITHUB_WEBHOOK_SECRET', flag: '--github-webhook-secret', description: 'secret of the GitHub webhook (POST /v1/webhooks/github); unset = the webhook answers 503' },
  token: { env: 'FORGE_GITHUB_TOKEN', flag: '--github-token', description: 'token for commit statuses and PR comments; unset = GitHub is not told' },
  apiUrl: { env: 'FORGE_GITHUB_API_URL', flag: '--github-api-url', description: 'GitHub API URL (GitHub Enterprise)', default: 'https://api.github.com' },
  oidcIssuer: { env: 'FORGE_GITHUB_OIDC_ISSUER', flag: '--github-oidc-issuer', description: 'issuer of GitHub Actions OIDC tokens for POST /v1/auth/github', default: 'https://token.actions.githubusercontent.com' },
  oidcJwksUrl: { env: 'FORGE_GITHUB_OIDC_JWKS_URL', flag: '--github-oidc-jwks-url', description: 'JWKS of that issuer (default: from its discovery document)' },
  oidcAudience: { env: 'FORGE_GITHUB_OIDC_AUDIENCE', flag: '--github-oidc-audience', description: 'audience the Actions token must carry', default: 'forge' },
  repositories: { env: 'FORGE_GITHUB_REPOSITORIES', flag: '--github-repositories', description: 'comma list of owner/name whose Actions tokens may be exchanged for platform tokens' },
  tokenTtl: { env: 'FORGE_GITHUB_TOKEN_TTL', flag: '--github-token-ttl', description: 'longest life of an exchanged platform token (never beyond the GitHub token)', default: '1h' },
} as const satisfies Record<string, SettingSpec>;

export const WORKER_SETTINGS = {
  url: { env: 'FORGE_URL', flag: '--url', description: 'Forge API URL (status reports go to its internal endpoints)', default: 'http://127.0.0.1:8080' },
  natsUrl: { env: 'NATS_URL', flag: '--nats-url', description: 'NATS JetStream URL the jobs come from (required: an embedded server runs its workers itself)' },
  types: { env: 'FORGE_WORKER_TYPES', flag: '--type', description: `worker types, comma separated or the flag repeated: ${WORKER_TYPES.join(', ')}` },
  dataDir: { env: 'FORGE_DATA_DIR', flag: '--data-dir', description: 'object files (when no S3) and the dev issuer key of an embedded server', default: '.forge-data' },
  cacheDir: { env: 'FORGE_WORKER_CACHE_DIR', flag: '--cache-dir', description: 'git cache and job worktrees (default <data dir>/worker-cache)' },
  logLevel: { env: 'FORGE_LOG_LEVEL', flag: '--log-level', description: 'fatal, error, warn, info, debug, trace or silent', default: 'info' },
} as const satisfies Record<string, SettingSpec>;

/** Traces (both processes). Metrics need no setting on the API: they are on its own port at /metrics. */
export const TELEMETRY_SETTINGS = {
  tracesExporter: { env: 'FORGE_TRACES_EXPORTER', flag: '--traces-exporter', description: `where OpenTelemetry traces go: ${TRACES_EXPORTERS.join(', ')} (otlp: OTLP/HTTP JSON to FORGE_OTLP_ENDPOINT; console: stdout, for debugging)`, default: 'none' },
  otlpEndpoint: { env: 'FORGE_OTLP_ENDPOINT', flag: '--otlp-endpoint', description: 'OTLP/HTTP traces URL of a collector (Grafana Alloy, OpenTelemetry Collector, Tempo, Jaeger)', default: 'http://127.0.0.1:4318/v1/traces' },
  otlpHeaders: { env: 'FORGE_OTLP_HEADERS', flag: '--otlp-headers', description: 'headers sent with every export, "name=value,name=value" (an API key)' },
  traceSampleRatio: { env: 'FORGE_TRACE_SAMPLE_RATIO', flag: '--trace-sample-ratio', description: 'fraction 0-1 of runs and requests traced; workers follow the decision made where the trace began', default: '1' },
} as const satisfies Record<string, SettingSpec>;

export const WORKER_METRICS_SETTINGS = {
  metricsPort: { env: 'FORGE_METRICS_PORT', flag: '--metrics-port', description: 'port of the worker\'s /metrics, /healthz and /readyz (Prometheus, probes); unset = not served' },
  metricsHost: { env: 'FORGE_METRICS_HOST', flag: '--metrics-host', description: 'address the worker\'s metrics port listens on (0.0.0.0 in a pod)', default: '127.0.0.1' },
} as const satisfies Record<string, SettingSpec>;

export function parseTelemetrySettings(flags: Flags = {}, env: Source = process.env): TelemetrySettings {
  const t = TELEMETRY_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const exporter = get(t.tracesExporter) as string;
  if (!(TRACES_EXPORTERS as readonly string[]).includes(exporter)) fail(t.tracesExporter, exporter, `must be one of ${TRACES_EXPORTERS.join(', ')}`);
  const otlpEndpoint = parseUrl(t.otlpEndpoint, get(t.otlpEndpoint), ['http:', 'https:']) as string;
  const headers: Record<string, string> = {};
  const rawHeaders = get(t.otlpHeaders);
  for (const part of (rawHeaders ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    const name = at > 0 ? part.slice(0, at).trim() : '';
    // The value may be a secret: a message shows the header names only.
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw new SettingsError(`setting ${t.otlpHeaders.env} (${t.otlpHeaders.flag}): "${name || part.split('=')[0]}" is not name=value with an HTTP header name (values not shown)`);
    headers[name] = part.slice(at + 1).trim();
  }
  const ratioText = get(t.traceSampleRatio) as string;
  const sampleRatio = Number(ratioText);
  if (!/^\d*\.?\d+$/.test(ratioText) || !(sampleRatio >= 0 && sampleRatio <= 1)) fail(t.traceSampleRatio, ratioText, 'must be a number from 0 to 1');
  return { exporter: exporter as TracesExporter, otlpEndpoint, otlpHeaders: headers, sampleRatio };
}

/** `forge dispatch`: what an Argo dispatcher pod runs (spec 07: env NATS_URL, JOB_TYPE). */
export const DISPATCH_SETTINGS = {
  url: { ...WORKER_SETTINGS.url, description: 'Forge API URL: the stage\'s jobs come from it, the replies go to it (internal endpoints)' },
  natsUrl: { env: 'NATS_URL', flag: '--nats-url', description: 'NATS JetStream URL the jobs are published on (required)' },
  jobType: { env: 'JOB_TYPE', flag: '--job-type', description: `what to dispatch of the run: ${DISPATCH_STAGES.join(', ')}` },
  run: { env: 'FORGE_RUN_ID', flag: '--run', description: 'the pipeline run (id)' },
  group: { env: 'FORGE_PHASE_GROUP', flag: '--group', description: 'ci only: dispatch this phase group alone (default: every group in order)' },
  dataDir: { env: 'FORGE_DATA_DIR', flag: '--data-dir', description: 'the dev issuer key of an embedded server, when no token is set', default: '.forge-data' },
} as const satisfies Record<string, SettingSpec>;

export interface DispatchSettings {
  url: string;
  dataDir: string;
  stage: DispatchStage;
  runId: string;
  group: number | undefined;
  execution: ExecutionSettings;
}

export function parseDispatchSettings(flags: Flags = {}, env: Source = process.env): DispatchSettings {
  const d = DISPATCH_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const natsUrl = parseUrl(d.natsUrl, get(d.natsUrl), ['nats:', 'tls:', 'ws:', 'wss:']);
  if (natsUrl === undefined) throw new SettingsError(`setting ${d.natsUrl.env} (${d.natsUrl.flag}) is required: the dispatcher publishes jobs on NATS JetStream`);
  const stage = get(d.jobType);
  if (stage === undefined) throw new SettingsError(`setting ${d.jobType.env} (${d.jobType.flag}) is required: one of ${DISPATCH_STAGES.join(', ')}`);
  if (!(DISPATCH_STAGES as readonly string[]).includes(stage)) {
    fail(d.jobType, stage, `must be one of ${DISPATCH_STAGES.join(', ')}`);
  }
  const runId = get(d.run);
  if (runId === undefined) throw new SettingsError(`setting ${d.run.env} (${d.run.flag}) is required: the id of the pipeline run`);
  if (!new RegExp(NAME_PATTERNS.uuid).test(runId)) fail(d.run, runId, 'must be a run id (a UUID)');
  const group = get(d.group);
  if (group !== undefined && stage !== 'ci') fail(d.group, group, `applies to --job-type ci only, not ${stage}`);
  if (group !== undefined && !/^\d{1,6}$/.test(group)) fail(d.group, group, 'must be a phase group number (0 or more)');
  return {
    url: (parseUrl(d.url, get(d.url), ['http:', 'https:']) as string).replace(/\/+$/, ''),
    dataDir: resolve(get(d.dataDir) as string),
    stage: stage as DispatchStage,
    runId: runId.toLowerCase(),
    group: group === undefined ? undefined : Number(group),
    execution: parseExecutionSettings(flags, env, natsUrl),
  };
}

export const CLIENT_SETTINGS = {
  url: { env: 'FORGE_URL', flag: '--url', description: 'Forge API URL', default: 'http://127.0.0.1:8080' },
  token: { env: 'FORGE_TOKEN', flag: '--token', description: 'bearer token (see `forge dev-token`)' },
} as const satisfies Record<string, SettingSpec>;

/** Flag values override environment values; both are strings until parsed here. */
function lookup(spec: SettingSpec, flags: Flags, env: Source): string | undefined {
  const flagKey = spec.flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const flag: unknown = flags[flagKey];
  // Commander gives `true` for a switch and an array for a repeated flag.
  const value = flag === true ? 'true' : Array.isArray(flag) ? flag.join(',') : (typeof flag === 'string' ? flag : undefined) ?? env[spec.env];
  return value === undefined || value === '' ? spec.default : value;
}

function fail(spec: SettingSpec, value: string, why: string): never {
  throw new SettingsError(`setting ${spec.env} (${spec.flag}) = ${JSON.stringify(withoutPassword(value))}: ${why}`);
}

/** A value as a message may show it: the password of a URL's user info (scheme://user:password@…) as ***. */
export function withoutPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^@]*@/i, '$1***@');
}

function parsePort(spec: SettingSpec, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) fail(spec, value, 'must be a port number 0-65535');
  return Number(value);
}

function parseUrl(spec: SettingSpec, value: string | undefined, protocols: string[]): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(spec, value, 'is not a URL');
  }
  if (!protocols.includes(url.protocol)) fail(spec, value, `must use ${protocols.join(' or ')}`);
  return value;
}

function parseDurationSetting(spec: SettingSpec, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) fail(spec, value, 'must be a duration like 90s, 10m, 24h or 7d');
  return ms;
}

/** A duration, or "off" / "0" for none. */
function parseOptionalDuration(spec: SettingSpec, value: string): number | undefined {
  if (value === 'off' || value === '0') return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) fail(spec, value, 'must be a duration like 12h, 30d or 90d, or "off"');
  return ms;
}

/** The watchdog's limit: any duration up to the 24 h every run is held to (digest §6.7). */
function parseRunTimeout(spec: SettingSpec, value: string): number {
  const ms = parseDurationSetting(spec, value);
  if (ms > MAX_RUN_DURATION_MS) fail(spec, value, 'must be at most 24h: no run may take longer than a day');
  return ms;
}

const LIMIT_KEYS = { runs: 'runCreate', releases: 'releaseLookup', deployments: 'deploymentCreate' } as const;

export function parseRateLimits(spec: SettingSpec, value: string): RateLimits | 'off' {
  if (value === 'off') return 'off';
  const limits: RateLimits = {
    runCreate: { max: 100, windowMs: 60_000 },
    releaseLookup: { max: 1000, windowMs: 60_000 },
    deploymentCreate: { max: 10, windowMs: 60_000 },
  };
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^(runs|releases|deployments)=(\d+)\/(.+)$/.exec(part);
    const window = match ? parseDuration(match[3] ?? '') : undefined;
    if (!match || window === undefined || window <= 0 || Number(match[2]) < 1) {
      fail(spec, value, `"${part}" is not NAME=COUNT/WINDOW with NAME one of runs, releases, deployments (e.g. runs=100/1m), or "off"`);
    }
    limits[LIMIT_KEYS[match[1] as keyof typeof LIMIT_KEYS]] = { max: Number(match[2]), windowMs: window };
  }
  return limits;
}

function parsePolicies(spec: SettingSpec, path: string | undefined): EnvironmentPolicy[] {
  if (path === undefined) return DEFAULT_POLICIES.map((p) => ({ ...p }));
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    fail(spec, path, `cannot read environment policies: ${(error as Error).message}`);
  }
  const list = (doc as { environments?: unknown })?.environments ?? doc;
  if (!Array.isArray(list) || list.length === 0) fail(spec, path, 'must hold a non-empty list `environments: [...]`');
  const seen = new Set<string>();
  return list.map((raw: Record<string, unknown>, i) => {
    const where = `environments[${i}]`;
    const name = raw?.name;
    if (typeof name !== 'string' || !isValidName('environment', name)) fail(spec, path, `${where}.name must be ${NAME_RULES.environment}`);
    if (seen.has(name)) fail(spec, path, `${where}: environment ${name} is defined twice`);
    seen.add(name);
    const triggers = raw.allowed_triggers ?? [...RELEASE_TRIGGER_TYPES];
    if (!Array.isArray(triggers) || !triggers.every((t) => (RELEASE_TRIGGER_TYPES as readonly string[]).includes(t))) {
      fail(spec, path, `${where}.allowed_triggers must be a list of ${RELEASE_TRIGGER_TYPES.join(', ')}`);
    }
    const branches = raw.allowed_branches ?? ['*'];
    if (!Array.isArray(branches) || !branches.every((b) => typeof b === 'string' && b.length > 0)) {
      fail(spec, path, `${where}.allowed_branches must be a list of branch globs`);
    }
    const requiresApproval = raw.requires_approval ?? false;
    const autoDeploy = raw.auto_deploy ?? false;
    if (typeof requiresApproval !== 'boolean' || typeof autoDeploy !== 'boolean') {
      fail(spec, path, `${where}.requires_approval and auto_deploy must be true or false`);
    }
    const quorum = raw.approvals_required ?? (requiresApproval ? 1 : 0);
    if (typeof quorum !== 'number' || !Number.isInteger(quorum) || quorum < 0 || quorum > 20) {
      fail(spec, path, `${where}.approvals_required must be an integer 0-20`);
    }
    const frozen = raw.frozen ?? false;
    const freezeReason = raw.freeze_reason;
    if (typeof frozen !== 'boolean') fail(spec, path, `${where}.frozen must be true or false`);
    if (freezeReason !== undefined && (typeof freezeReason !== 'string' || freezeReason.trim() === '')) {
      fail(spec, path, `${where}.freeze_reason must be a non-empty string`);
    }
    const known = ['name', 'allowed_triggers', 'allowed_branches', 'auto_deploy', 'requires_approval', 'approvals_required', 'frozen', 'freeze_reason'];
    const unknown = Object.keys(raw).filter((k) => !known.includes(k));
    if (unknown.length > 0) fail(spec, path, `${where}: unknown field ${unknown.join(', ')}; fields are ${known.join(', ')}`);
    return {
      name,
      frozen,
      ...(typeof freezeReason === 'string' ? { freeze_reason: freezeReason } : {}),
      allowed_triggers: triggers as ReleaseTriggerType[],
      allowed_branches: branches as string[],
      auto_deploy: autoDeploy,
      requires_approval: requiresApproval,
      approvals_required: requiresApproval ? Math.max(1, quorum) : 0,
    };
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function parseLogLevel(spec: SettingSpec, value: string): string {
  if (!LOG_LEVELS.includes(value)) fail(spec, value, `must be one of ${LOG_LEVELS.join(', ')}`);
  return value;
}

function parseBoolean(spec: SettingSpec, value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  fail(spec, value, 'must be true or false');
}

function parseCount(spec: SettingSpec, value: string, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) fail(spec, value, `must be a whole number 1-${max}`);
  return Number(value);
}

/** A comma list of worker types; `none` (when allowed) is the empty list. */
export function parseWorkerTypes(spec: SettingSpec, value: string | undefined, allowNone: boolean): WorkerType[] {
  const list = (value ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  if (allowNone && list.length === 1 && list[0] === 'none') return [];
  if (list.length === 0) fail(spec, value ?? '', `name at least one worker type: ${WORKER_TYPES.join(', ')}${allowNone ? ', or "none"' : ''}`);
  const unknown = list.filter((t) => !(WORKER_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0) fail(spec, value ?? '', `unknown worker type ${unknown.join(', ')}; types are ${WORKER_TYPES.join(', ')}${allowNone ? ', or "none"' : ''}`);
  return [...new Set(list)] as WorkerType[];
}

function parseExecutionSettings(flags: Flags, env: Source, natsUrl: string | undefined, defaultTemplate?: string): ExecutionSettings {
  const x = EXECUTION_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const namespace = get(x.natsNamespace) ?? '';
  if (namespace !== '' && !/^[A-Za-z0-9_-]+\.$/.test(namespace)) fail(x.natsNamespace, namespace, 'must be letters, digits, - and _, ending in "." (e.g. "staging.")');
  const explicit = lookup({ ...x.gitUrlTemplate, default: undefined } as SettingSpec, flags, env);
  const template = explicit ?? defaultTemplate ?? (get(x.gitUrlTemplate) as string);
  if (!template.includes('{repository}')) fail(x.gitUrlTemplate, template, 'must contain {repository} (e.g. https://github.com/{repository}.git)');
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(template)) fail(x.gitUrlTemplate, template, 'must not carry a password; set FORGE_GIT_TOKEN instead');
  const endpoint = parseUrl(x.s3Endpoint, get(x.s3Endpoint), ['http:', 'https:']);
  let s3: S3ObjectSettings | undefined;
  if (endpoint !== undefined) {
    const accessKeyId = get(x.s3AccessKeyId);
    const secretAccessKey = get(x.s3SecretAccessKey);
    if (!accessKeyId || !secretAccessKey) fail(x.s3Endpoint, endpoint, 'needs FORGE_S3_ACCESS_KEY_ID and FORGE_S3_SECRET_ACCESS_KEY too');
    const bucket = get(x.s3Bucket) as string;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) fail(x.s3Bucket, bucket, 'must be an S3 bucket name (3-63 of a-z, 0-9, . and -)');
    s3 = { endpoint, bucket, region: get(x.s3Region) as string, accessKeyId, secretAccessKey, prefix: get(x.s3Prefix) };
  }
  const token = get(x.gitToken);
  const tokenUrl = parseUrl(x.tokenUrl, get(x.tokenUrl), ['http:', 'https:']);
  const clientId = get(x.clientId);
  const clientSecret = get(x.clientSecret);
  if (tokenUrl !== undefined && (!clientId || !clientSecret)) {
    fail(x.tokenUrl, tokenUrl, 'needs FORGE_WORKER_CLIENT_ID and FORGE_WORKER_CLIENT_SECRET too');
  }
  return {
    natsUrl,
    natsNamespace: namespace,
    ackWaitMs: parseDurationSetting(x.ackWait, get(x.ackWait) as string),
    s3,
    gitUrlTemplate: template,
    gitCredentials: token ? { username: get(x.gitUsername) as string, token } : undefined,
    workerConcurrency: parseCount(x.workerConcurrency, get(x.workerConcurrency) as string, 256),
    workerToken: get(x.workerToken),
    clientCredentials: tokenUrl && clientId && clientSecret ? { tokenUrl, clientId, clientSecret } : undefined,
    registries: parseRegistrySettings(flags, env),
    gitops: parseGitOpsSettings(flags, env),
    secrets: parseSecretSettings(flags, env),
  };
}

function parseSecretSettings(flags: Flags, env: Source): SecretSettings {
  const x = EXECUTION_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const dir = get(x.secretsDir) as string;
  if (dir.trim() === '') fail(x.secretsDir, dir, 'must be a directory');
  const region = get(x.awsSecretsRegion) ?? (env.AWS_REGION || undefined);
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) fail(x.awsSecretsRegion, region, 'must be an AWS region such as us-east-1 or eu-central-1');
  const endpoint = parseUrl(x.awsSecretsEndpoint, get(x.awsSecretsEndpoint), ['http:', 'https:']);
  if (endpoint !== undefined && /^[a-z]+:\/\/[^/@]*@/i.test(endpoint)) fail(x.awsSecretsEndpoint, endpoint, 'must not carry credentials (the AWS SDK takes them from its default chain)');
  const addr = parseUrl(x.vaultAddr, get(x.vaultAddr), ['http:', 'https:']);
  const token = get(x.vaultToken);
  if (addr !== undefined && /^[a-z]+:\/\/[^/@]*@/i.test(addr)) fail(x.vaultAddr, addr, 'must not carry credentials; set FORGE_VAULT_TOKEN');
  if (addr !== undefined && !token) fail(x.vaultAddr, addr, 'needs FORGE_VAULT_TOKEN too');
  if (addr === undefined && token) fail(x.vaultToken, '***', 'is set without FORGE_VAULT_ADDR');
  const mount = get(x.vaultMount) as string;
  if (!/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(mount)) fail(x.vaultMount, mount, 'must be a mount path such as secret or kv/ci');
  return {
    dir: resolve(dir),
    aws: { region, endpoint },
    vault: addr !== undefined && token ? { addr, token, mount } : undefined,
  };
}

function parseGitOpsSettings(flags: Flags, env: Source): GitOpsSettings {
  const x = EXECUTION_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const url = get(x.gitopsUrl);
  if (url !== undefined && (url.trim() === '' || url.startsWith('-'))) fail(x.gitopsUrl, url, 'must be a git URL or path');
  if (url !== undefined && /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(url)) fail(x.gitopsUrl, url, 'must not carry a password (use an SSH key, or a credential helper)');
  const layout = get(x.gitopsLayout) as string;
  try {
    checkPointerLayout(layout);
  } catch (error) {
    fail(x.gitopsLayout, layout, (error as Error).message);
  }
  const author = get(x.gitopsAuthor) as string;
  const match = /^([^<>\u0000-\u001f]+?)\s*<([^<>\s\u0000-\u001f]+@[^<>\s\u0000-\u001f]+)>$/u.exec(author.trim());
  if (!match) fail(x.gitopsAuthor, author, 'must be "Name <email>", e.g. "Forge <forge@example.com>"');
  return { url, layout, authorName: match[1] ?? '', authorEmail: match[2] ?? '' };
}

export function parseRegistrySettings(flags: Flags, env: Source): RegistrySettings {
  const x = EXECUTION_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const address = (spec: SettingSpec) => {
    const value = get(spec)?.replace(/\/+$/, '');
    if (value !== undefined && !REGISTRY_ADDRESS.test(value)) {
      fail(spec, value, 'must be a registry host[:port] with an optional lowercase path, e.g. 127.0.0.1:5000/releases (no scheme; FORGE_REGISTRY_INSECURE=1 for plain HTTP)');
    }
    return value;
  };
  const username = get(x.registryUsername);
  const password = get(x.registryPassword);
  if ((username === undefined) !== (password === undefined)) {
    const [spec, value] = username === undefined ? [x.registryPassword, '***'] : [x.registryUsername, username];
    fail(spec, value, 'FORGE_REGISTRY_USERNAME and FORGE_REGISTRY_PASSWORD go together');
  }
  const key = get(x.signingKey);
  return {
    release: address(x.releaseRegistry),
    tracking: address(x.trackingRegistry),
    insecure: parseBoolean(x.registryInsecure, get(x.registryInsecure)),
    credentials: username !== undefined && password !== undefined ? { username, password } : undefined,
    signingKey: key === undefined ? undefined : resolve(key),
  };
}

function parseUiSettings(flags: Flags, env: Source): UiSettings {
  const s = SERVER_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const clientId = get(s.uiClientId);
  if (clientId !== undefined && !/^[\x21-\x7e]{1,255}$/.test(clientId)) fail(s.uiClientId, clientId, 'must be 1-255 printable ASCII characters without spaces');
  const scopes = (get(s.uiScopes) as string).trim().split(/\s+/).join(' ');
  // RFC 6749 §3.3: scope tokens are printable ASCII without space, " or \.
  if (!/^[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*$/.test(scopes)) fail(s.uiScopes, scopes, 'must be space-separated OAuth scopes such as "openid profile"');
  const resource = get(s.uiResource);
  if (resource !== undefined) {
    // RFC 8707 §2: an absolute URI without a fragment.
    let url: URL | undefined;
    try {
      url = new URL(resource);
    } catch {
      url = undefined;
    }
    if (!url || resource.includes('#')) fail(s.uiResource, resource, 'must be an absolute URI without a fragment, e.g. https://forge.example.com');
  }
  return { clientId, scopes, resource };
}

function parseGitHubSettings(flags: Flags, env: Source): GitHubSettings {
  const g = GITHUB_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const repositories = (get(g.repositories) ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  for (const repository of repositories) {
    if (!isValidName('repository', repository)) fail(g.repositories, repository, `each must be ${NAME_RULES.repository}`);
  }
  const ttlMs = parseDurationSetting(g.tokenTtl, get(g.tokenTtl) as string);
  return {
    webhookSecret: get(g.webhookSecret),
    token: get(g.token),
    apiUrl: parseUrl(g.apiUrl, get(g.apiUrl), ['https:', 'http:']),
    oidcIssuer: parseUrl(g.oidcIssuer, get(g.oidcIssuer), ['https:', 'http:']),
    oidcJwksUrl: parseUrl(g.oidcJwksUrl, get(g.oidcJwksUrl), ['https:', 'http:']),
    oidcAudience: get(g.oidcAudience),
    repositories,
    tokenTtlSeconds: Math.max(1, Math.floor(ttlMs / 1000)),
  };
}

export function parseServerSettings(flags: Flags = {}, env: Source = process.env): ServerSettings {
  const s = SERVER_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const host = get(s.host) as string;
  const port = parsePort(s.port, get(s.port) as string);
  const issuer = parseUrl(s.oidcIssuer, get(s.oidcIssuer), ['https:', 'http:']);
  const audience = get(s.oidcAudience) as string;
  const logLevel = parseLogLevel(s.logLevel, get(s.logLevel) as string);
  const natsUrl = parseUrl(s.natsUrl, get(s.natsUrl), ['nats:', 'tls:', 'ws:', 'wss:']);
  const publicUrl = parseUrl(s.publicUrl, get(s.publicUrl), ['https:', 'http:']);
  const example = parseBoolean(s.example, get(s.example));
  const dataDir = resolve(get(s.dataDir) as string);
  const execution = parseExecutionSettings(flags, env, natsUrl, example ? `file://${resolve(dataDir, 'git')}/{repository}.git` : undefined);
  return {
    host,
    port,
    dataDir,
    databaseUrl: parseUrl(s.databaseUrl, get(s.databaseUrl), ['postgres:', 'postgresql:']),
    natsUrl,
    oidc: issuer === undefined ? undefined : { issuer, audience, clientId: get(s.oidcClientId) },
    approvalTtlMs: parseDurationSetting(s.approvalTtl, get(s.approvalTtl) as string),
    rateLimits: parseRateLimits(s.rateLimits, get(s.rateLimits) as string),
    releaseRegistry: execution.registries.release ?? EMBEDDED_RELEASE_REGISTRY,
    environments: parsePolicies(s.environments, get(s.environments)),
    logLevel,
    publicUrl: publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    execution,
    inProcessWorkers: parseWorkerTypes(s.workers, get(s.workers), true),
    runTimeoutMs: parseRunTimeout(s.runTimeout, get(s.runTimeout) as string),
    maxActiveRunsPerRepository: parseCount(s.maxActiveRuns, get(s.maxActiveRuns) as string, DEFAULT_MAX_ACTIVE_RUNS_PER_REPOSITORY),
    retention: {
      runsOlderThanMs: parseOptionalDuration(s.runRetention, get(s.runRetention) as string),
      logsOlderThanMs: parseOptionalDuration(s.logRetention, get(s.logRetention) as string),
      intervalMs: parseOptionalDuration(s.retentionInterval, get(s.retentionInterval) as string),
    },
    github: parseGitHubSettings(flags, env),
    example,
    webRoot: get(s.webRoot) === undefined ? undefined : resolve(get(s.webRoot) as string),
    ui: parseUiSettings(flags, env),
    crashAfter: parseFaultHook(s.faultHook, get(s.faultHook)),
    telemetry: parseTelemetrySettings(flags, env),
    orchestrator: parseOrchestrator(flags, env, natsUrl, publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`),
  };
}


function parseOrchestrator(flags: Flags, env: Source, natsUrl: string | undefined, publicUrl: string): OrchestratorSettings {
  const s = SERVER_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const kind = get(s.orchestrator) as string;
  if (kind === 'builtin') return { kind: 'builtin' };
  if (kind !== 'argo') fail(s.orchestrator, kind, 'must be "builtin" or "argo"');
  if (natsUrl === undefined) fail(s.orchestrator, kind, 'needs NATS_URL: dispatcher pods and workers meet on NATS JetStream');
  const serverUrl = parseUrl(s.argoServerUrl, get(s.argoServerUrl), ['https:', 'http:']);
  if (serverUrl === undefined) fail(s.orchestrator, kind, 'needs FORGE_ARGO_SERVER_URL (the Argo Server the Workflows are submitted to)');
  const image = get(s.argoImage);
  if (image === undefined) fail(s.orchestrator, kind, 'needs FORGE_ARGO_IMAGE (the image of the dispatcher pods, with `forge` on its PATH)');
  if (!/^[^\s]{1,512}$/.test(image)) fail(s.argoImage, image, 'must be an image reference without spaces, e.g. ghcr.io/example/forge:1.2.3');
  const namespace = get(s.argoNamespace) as string;
  if (!KUBERNETES_NAMES.namespace.test(namespace)) fail(s.argoNamespace, namespace, 'must be a Kubernetes namespace: 1-63 of a-z, 0-9 and -, starting and ending with a letter or digit');
  const serviceAccount = get(s.argoServiceAccount) as string;
  if (!KUBERNETES_NAMES.object.test(serviceAccount)) fail(s.argoServiceAccount, serviceAccount, 'must be a Kubernetes service account name: lowercase letters, digits, - and ., at most 253');
  const secret = get(s.argoTokenSecret) as string;
  const [secretName = '', secretKey = '', ...rest] = secret.split('/');
  if (rest.length > 0 || !KUBERNETES_NAMES.object.test(secretName) || !KUBERNETES_NAMES.dataKey.test(secretKey)) {
    fail(s.argoTokenSecret, secret, 'must be "<secret name>/<key>", e.g. forge-dispatcher/token');
  }
  return {
    kind: 'argo', serverUrl: serverUrl.replace(/\/+$/, ''), token: get(s.argoToken), namespace, serviceAccount, image,
    parallelism: parseCount(s.argoParallelism, get(s.argoParallelism) as string, 10_000),
    apiUrl: (parseUrl(s.argoApiUrl, get(s.argoApiUrl), ['https:', 'http:']) ?? publicUrl).replace(/\/+$/, ''),
    tokenSecret: { name: secretName, key: secretKey },
  };
}

function parseFaultHook(spec: SettingSpec, value: string | undefined): CrashPoint | undefined {
  if (value === undefined) return undefined;
  const point = value.startsWith('crash-after:') ? value.slice('crash-after:'.length) : '';
  if (!(CRASH_POINTS as readonly string[]).includes(point)) fail(spec, value, `must be crash-after:<point> with a point among ${CRASH_POINTS.join(', ')}`);
  return point as CrashPoint;
}

export function parseWorkerSettings(flags: Flags = {}, env: Source = process.env): WorkerSettings {
  const w = WORKER_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const natsUrl = parseUrl(w.natsUrl, get(w.natsUrl), ['nats:', 'tls:', 'ws:', 'wss:']);
  if (natsUrl === undefined) {
    throw new SettingsError(`setting ${w.natsUrl.env} (${w.natsUrl.flag}) is required: a worker takes its jobs from NATS JetStream (an embedded \`forge server\` runs its own workers in process; see FORGE_WORKERS)`);
  }
  const url = parseUrl(w.url, get(w.url), ['http:', 'https:']) as string;
  const dataDir = resolve(get(w.dataDir) as string);
  const cacheDir = get(w.cacheDir);
  return {
    url: url.replace(/\/+$/, ''),
    dataDir,
    cacheDir: cacheDir ? resolve(cacheDir) : resolve(dataDir, 'worker-cache'),
    types: parseWorkerTypes(w.types, get(w.types), false),
    execution: parseExecutionSettings(flags, env, natsUrl),
    logLevel: parseLogLevel(w.logLevel, get(w.logLevel) as string),
    telemetry: parseTelemetrySettings(flags, env),
    metrics: parseWorkerMetrics(flags, env),
  };
}

function parseWorkerMetrics(flags: Flags, env: Source): WorkerSettings['metrics'] {
  const m = WORKER_METRICS_SETTINGS;
  const port = lookup(m.metricsPort, flags, env);
  if (port === undefined) return undefined;
  return { host: lookup(m.metricsHost, flags, env) as string, port: parsePort(m.metricsPort, port) };
}

export function parseClientSettings(flags: Flags = {}, env: Source = process.env): ClientSettings {
  const c = CLIENT_SETTINGS;
  const url = parseUrl(c.url, lookup(c.url, flags, env), ['http:', 'https:']) as string;
  return { url: url.replace(/\/+$/, ''), token: lookup(c.token, flags, env) };
}

export const CONFIG_SETTINGS = {
  cacheDir: {
    env: 'FORGE_CACHE_DIR',
    flag: '--cache-dir',
    description: 'where `forge validate|discover|render` keep evaluated configuration ("off": no cache; default $XDG_CACHE_HOME/forge or ~/.cache/forge)',
  },
} as const satisfies Record<string, SettingSpec>;

export interface ConfigSettings {
  /** undefined: no disk cache. */
  cacheDir: string | undefined;
}

export function parseConfigSettings(flags: Flags = {}, env: Source = process.env): ConfigSettings {
  const value = lookup(CONFIG_SETTINGS.cacheDir, flags, env);
  if (value === 'off') return { cacheDir: undefined };
  if (value) return { cacheDir: resolve(value) };
  const base = env.XDG_CACHE_HOME || (env.HOME ? `${env.HOME}/.cache` : undefined);
  return { cacheDir: base ? resolve(base, 'forge') : undefined };
}

export function describeSettings(specs: Record<string, SettingSpec>): string {
  return Object.values(specs)
    .map((spec) => `  ${spec.env.padEnd(24)} ${spec.flag.padEnd(20)} ${spec.description}${spec.default ? ` (default ${spec.default})` : ''}`)
    .join('\n');
}

/**
 * `forge verify`: where the embedded store is (the data dir), how registries are reached (the
 * execution settings' registry part) and which public key signatures must verify with.
 */
export const VERIFY_SETTINGS = {
  dataDir: { env: 'FORGE_DATA_DIR', flag: '--data-dir', description: 'data dir of the Forge that signed: forge.local images are read from <data dir>/oci, its key from <data dir>/keys', default: '.forge-data' },
  key: { env: 'FORGE_VERIFY_KEY', flag: '--key', description: 'PEM file of the public key (or of a private key, whose public half is used); default: the public half of FORGE_SIGNING_KEY, else <data dir>/keys/signing.pub (or signing.key beside it)' },
  registryInsecure: EXECUTION_SETTINGS.registryInsecure,
  registryUsername: EXECUTION_SETTINGS.registryUsername,
  registryPassword: EXECUTION_SETTINGS.registryPassword,
  signingKey: { ...EXECUTION_SETTINGS.signingKey, description: 'PEM file of the key Forge signs with; without --key, its public half is the key signatures must verify with' },
} as const satisfies Record<string, SettingSpec>;

export interface VerifySettings {
  dataDir: string;
  registries: RegistrySettings;
  /**
   * The key file named by a setting, resolved: FORGE_VERIFY_KEY (--key), else FORGE_SIGNING_KEY.
   * undefined = the data dir's key files (read by the command, which knows their names).
   */
  key: { file: string; setting: SettingSpec } | undefined;
}

export function parseVerifySettings(flags: Flags = {}, env: Source = process.env): VerifySettings {
  const v = VERIFY_SETTINGS;
  const registries = parseRegistrySettings(flags, env);
  const explicit = lookup(v.key, flags, env);
  return {
    dataDir: resolve(lookup(v.dataDir, flags, env) as string),
    registries,
    key: explicit !== undefined ? { file: resolve(explicit), setting: v.key }
      : registries.signingKey !== undefined ? { file: registries.signingKey, setting: v.signingKey } : undefined,
  };
}
