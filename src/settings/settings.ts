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
import { NAME_RULES, isValidName } from '../domain/names.ts';
import { RELEASE_TRIGGER_TYPES, type ReleaseTriggerType } from '../domain/statuses.ts';
import { WORKER_TYPES, type WorkerType } from '../domain/jobs.ts';
import { EMBEDDED_RELEASE_REGISTRY, EMBEDDED_TRACKING_REGISTRY, REGISTRY_ADDRESS } from '../domain/registries.ts';
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
  runTimeoutMs: number;
  github: GitHubSettings;
  /** Seed examples/monorepo into the data dir and run its pipeline at start (`npm start`). */
  example: boolean;
  /** The built dashboard (index.html + assets/); undefined = <package root>/dist/web (the composition root knows where that is). */
  webRoot: string | undefined;
  /** How the dashboard logs in to an OIDC issuer (GET /v1/auth/config). */
  ui: UiSettings;
  /** TEST ONLY (FORGE_FAULT_HOOK): the crash point where the server SIGKILLs itself; undefined in production. */
  crashAfter: CrashPoint | undefined;
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
  runTimeout: { env: 'FORGE_RUN_TIMEOUT', flag: '--run-timeout', description: 'a run not finished by then is failed by the watchdog', default: '24h' },
  example: { env: 'FORGE_EXAMPLE', flag: '--example', description: 'seed examples/monorepo into the data dir (as forge-examples/monorepo, served to workers from there) and run its pipeline at start; what `npm start` does' },
  webRoot: { env: 'FORGE_WEB_ROOT', flag: '--web-root', description: 'directory of the built dashboard (index.html, assets/) served at /; unset = dist/web of the Forge package (`npm run build:web`)' },
  uiClientId: { env: 'FORGE_UI_CLIENT_ID', flag: '--ui-client-id', description: 'public OIDC client (authorization code + PKCE) the dashboard logs in with; unset = the dashboard asks for a pasted token (with FORGE_OIDC_ISSUER)' },
  uiScopes: { env: 'FORGE_UI_SCOPES', flag: '--ui-scopes', description: 'scopes the dashboard requests, space-separated', default: 'openid profile' },
  uiResource: { env: 'FORGE_UI_RESOURCE', flag: '--ui-resource', description: 'RFC 8707 resource indicator the dashboard sends when logging in (some issuers need it to mint JWT access tokens for the API)' },
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
    runTimeoutMs: parseDurationSetting(s.runTimeout, get(s.runTimeout) as string),
    github: parseGitHubSettings(flags, env),
    example,
    webRoot: get(s.webRoot) === undefined ? undefined : resolve(get(s.webRoot) as string),
    ui: parseUiSettings(flags, env),
    crashAfter: parseFaultHook(s.faultHook, get(s.faultHook)),
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
  };
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
