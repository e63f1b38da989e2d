/**
 * Process settings: every setting is an environment variable with a command-line flag beside it
 * (the flag wins). Parsed and validated once per process role; a bad value stops the process with
 * a message naming the setting. The parsed object is passed down explicitly, never read globally.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import YAML from 'yaml';
import { DEFAULT_POLICIES, type EnvironmentPolicy } from '../domain/policy.ts';
import { NAME_RULES, isValidName } from '../domain/names.ts';
import { RELEASE_TRIGGER_TYPES, type ReleaseTriggerType } from '../domain/statuses.ts';
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
  releaseRegistry: string;
  environments: EnvironmentPolicy[];
  gitopsUrl: string | undefined;
  logLevel: string;
  publicUrl: string;
}

export interface ClientSettings {
  url: string;
  token: string | undefined;
}

type Source = Record<string, string | undefined>;

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
  releaseRegistry: { env: 'FORGE_RELEASE_REGISTRY', flag: '--release-registry', description: 'registry prefix of Release OCI images', default: 'localhost/forge/releases' },
  environments: { env: 'FORGE_ENVIRONMENTS', flag: '--environments', description: 'YAML/JSON file of environment policies; unset = dev, staging, production defaults' },
  gitopsUrl: { env: 'FORGE_GITOPS_URL', flag: '--gitops-url', description: 'GitOps repository URL; unset = a bare repo in the data dir' },
  logLevel: { env: 'FORGE_LOG_LEVEL', flag: '--log-level', description: 'fatal, error, warn, info, debug, trace or silent', default: 'info' },
  publicUrl: { env: 'FORGE_PUBLIC_URL', flag: '--public-url', description: 'URL users reach the server at (default http://host:port)' },
} as const satisfies Record<string, SettingSpec>;

export const CLIENT_SETTINGS = {
  url: { env: 'FORGE_URL', flag: '--url', description: 'Forge API URL', default: 'http://127.0.0.1:8080' },
  token: { env: 'FORGE_TOKEN', flag: '--token', description: 'bearer token (see `forge dev-token`)' },
} as const satisfies Record<string, SettingSpec>;

/** Flag values override environment values; both are strings until parsed here. */
function lookup(spec: SettingSpec, flags: Source, env: Source): string | undefined {
  const flagKey = spec.flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const value = flags[flagKey] ?? env[spec.env];
  return value === undefined || value === '' ? spec.default : value;
}

function fail(spec: SettingSpec, value: string, why: string): never {
  throw new SettingsError(`setting ${spec.env} (${spec.flag}) = ${JSON.stringify(value)}: ${why}`);
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
    return {
      name,
      allowed_triggers: triggers as ReleaseTriggerType[],
      allowed_branches: branches as string[],
      auto_deploy: autoDeploy,
      requires_approval: requiresApproval,
      approvals_required: requiresApproval ? Math.max(1, quorum) : 0,
    };
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function parseServerSettings(flags: Source = {}, env: Source = process.env): ServerSettings {
  const s = SERVER_SETTINGS;
  const get = (spec: SettingSpec) => lookup(spec, flags, env);
  const host = get(s.host) as string;
  const port = parsePort(s.port, get(s.port) as string);
  const issuer = parseUrl(s.oidcIssuer, get(s.oidcIssuer), ['https:', 'http:']);
  const audience = get(s.oidcAudience) as string;
  const logLevel = get(s.logLevel) as string;
  if (!LOG_LEVELS.includes(logLevel)) fail(s.logLevel, logLevel, `must be one of ${LOG_LEVELS.join(', ')}`);
  const publicUrl = parseUrl(s.publicUrl, get(s.publicUrl), ['https:', 'http:']);
  const registry = get(s.releaseRegistry) as string;
  if (!/^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._-]+)*$/.test(registry)) {
    fail(s.releaseRegistry, registry, 'must be a registry host with an optional path, e.g. registry.example.com/releases');
  }
  return {
    host,
    port,
    dataDir: resolve(get(s.dataDir) as string),
    databaseUrl: parseUrl(s.databaseUrl, get(s.databaseUrl), ['postgres:', 'postgresql:']),
    natsUrl: parseUrl(s.natsUrl, get(s.natsUrl), ['nats:', 'tls:', 'ws:', 'wss:']),
    oidc: issuer === undefined ? undefined : { issuer, audience, clientId: get(s.oidcClientId) },
    approvalTtlMs: parseDurationSetting(s.approvalTtl, get(s.approvalTtl) as string),
    rateLimits: parseRateLimits(s.rateLimits, get(s.rateLimits) as string),
    releaseRegistry: registry,
    environments: parsePolicies(s.environments, get(s.environments)),
    gitopsUrl: get(s.gitopsUrl),
    logLevel,
    publicUrl: publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
  };
}

export function parseClientSettings(flags: Source = {}, env: Source = process.env): ClientSettings {
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

export function parseConfigSettings(flags: Source = {}, env: Source = process.env): ConfigSettings {
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

