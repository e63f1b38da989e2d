/**
 * Secret references (digest §1.4, §6.4): what configuration says about a secret — never its value.
 * A reference is `{provider, ...the provider's own fields}`; each provider owns its fields:
 *
 *   env    {name}                         a variable of the worker's environment
 *   file   {path, key?}                   a file under the worker's secrets dir (mounted Kubernetes Secrets)
 *   aws    {name | secretName | path, key?, region?, version?}   AWS Secrets Manager
 *   vault  {path, key?, mount?, version?} Vault KV v2
 *
 * `key` selects one field: of the JSON object the secret holds (env, file, aws), of the KV entry's
 * data (vault). A CI step's `secrets` entries are references plus where the value goes: `env`
 * (a variable of the step) or `file` (a file in the step's secrets dir, $FORGE_SECRET_FILES).
 * Pure: parsing gives problems, `describeSecretRef` is how messages name a reference.
 */

export const SECRET_PROVIDERS = ['env', 'file', 'aws', 'vault'] as const;
export type SecretProviderName = (typeof SECRET_PROVIDERS)[number];

export interface SecretRef {
  provider: SecretProviderName;
  /** The provider's name of the secret: variable (env), path under the secrets dir (file), secret id (aws), KV path (vault). */
  path: string;
  key?: string;
  region?: string;
  version?: string;
  mount?: string;
}

/** A CI step's secret: the reference and where its value goes. */
export interface StepSecret {
  ref: SecretRef;
  env?: string;
  file?: string;
  /** A missing optional secret is left out instead of failing the step. */
  optional: boolean;
}

/** Fields each provider accepts besides `provider` (and, on steps, `env`, `file`, `optional`). */
const PROVIDER_FIELDS: Record<SecretProviderName, readonly string[]> = {
  env: ['name'],
  file: ['path', 'key'],
  aws: ['name', 'secretName', 'path', 'key', 'region', 'version'],
  vault: ['path', 'key', 'mount', 'version'],
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A relative path without empty, "." or ".." segments (nothing can climb out of where it is joined). */
export function isPlainRelativePath(path: string): boolean {
  return path.length > 0 && !path.includes('\0') && path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/**
 * Variables of the worker's own settings and credentials (Forge's, the database's, NATS's, AWS's,
 * Vault's): the env provider never hands them to a step, or any project could read the worker's tokens.
 */
export function isWorkerOwnVariable(name: string): boolean {
  return /^(FORGE_|AWS_|VAULT_|NATS_|PG)/.test(name) || name === 'DATABASE_URL';
}

export function isSecretProvider(value: unknown): value is SecretProviderName {
  return typeof value === 'string' && (SECRET_PROVIDERS as readonly string[]).includes(value);
}

/** How messages name a reference: `aws:ci/npm#token`, `env:NPM_TOKEN` — never a value. */
export function describeSecretRef(ref: SecretRef): string {
  const extras = [ref.mount && ref.mount !== 'secret' ? `mount ${ref.mount}` : undefined, ref.version ? `version ${ref.version}` : undefined, ref.region ? `region ${ref.region}` : undefined].filter(Boolean);
  return `${ref.provider}:${ref.path}${ref.key ? `#${ref.key}` : ''}${extras.length ? ` (${extras.join(', ')})` : ''}`;
}

/** A reference from configuration, or the problems with it (prefixed by `where`). */
export function parseSecretRef(raw: unknown, where: string, extraFields: readonly string[] = []): { ref: SecretRef } | { problems: string[] } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { problems: [`${where}: a secret reference is an object {provider: ${SECRET_PROVIDERS.join(' | ')}, ...}`] };
  const fields = raw as Record<string, unknown>;
  const provider = fields.provider;
  if (!isSecretProvider(provider)) return { problems: [`${where}.provider: ${JSON.stringify(provider ?? null)} is not a secret provider; providers are ${SECRET_PROVIDERS.join(', ')}`] };
  const problems: string[] = [];
  const allowed = PROVIDER_FIELDS[provider];
  const unknown = Object.keys(fields).filter((k) => k !== 'provider' && !allowed.includes(k) && !extraFields.includes(k));
  if (unknown.length > 0) problems.push(`${where}: ${unknown.join(', ')} ${unknown.length > 1 ? 'are not fields' : 'is not a field'} of a ${provider} secret; its fields are ${allowed.join(', ')}`);
  const text = (name: string): string | undefined => {
    const value = fields[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.trim() === '') {
      problems.push(`${where}.${name} must be a non-empty string`);
      return undefined;
    }
    return value;
  };
  let path: string | undefined;
  switch (provider) {
    case 'env':
      path = text('name');
      if (path === undefined) problems.push(`${where}: an env secret needs name: the worker's environment variable`);
      else if (!ENV_NAME.test(path)) problems.push(`${where}.name: ${JSON.stringify(path)} is not an environment variable name`);
      else if (isWorkerOwnVariable(path)) problems.push(`${where}.name: ${path} is the worker's own setting or credential, not a secret for steps; give the secret a name of its own (e.g. NPM_TOKEN)`);
      break;
    case 'file':
      path = text('path');
      if (path === undefined) problems.push(`${where}: a file secret needs path: a file under the worker's secrets dir (FORGE_SECRETS_DIR)`);
      else if (!isPlainRelativePath(path)) problems.push(`${where}.path: ${JSON.stringify(path)} must be relative to the secrets dir, without empty, "." or ".." segments`);
      break;
    case 'aws': {
      const names = (['name', 'secretName', 'path'] as const).map((n) => [n, text(n)] as const).filter(([, v]) => v !== undefined);
      if (names.length === 0) problems.push(`${where}: an aws secret needs name (or secretName, path): the Secrets Manager secret id or ARN`);
      if (names.length > 1) problems.push(`${where}: give the aws secret one of name, secretName, path (they are the same field), not ${names.map(([n]) => n).join(' and ')}`);
      path = names[0]?.[1];
      break;
    }
    case 'vault':
      path = text('path');
      if (path === undefined) problems.push(`${where}: a vault secret needs path: the KV v2 path under its mount`);
      else if (!isPlainRelativePath(path)) problems.push(`${where}.path: ${JSON.stringify(path)} must be a KV path without a leading "/" and without empty, "." or ".." segments`);
      break;
  }
  const key = text('key');
  const region = text('region');
  const mount = text('mount');
  if (mount !== undefined && !/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(mount)) problems.push(`${where}.mount: ${JSON.stringify(mount)} is not a Vault mount path`);
  const rawVersion = fields.version;
  let version: string | undefined;
  if (rawVersion !== undefined) {
    if ((typeof rawVersion === 'number' && Number.isInteger(rawVersion) && rawVersion > 0) || (typeof rawVersion === 'string' && rawVersion.trim() !== '')) version = String(rawVersion);
    else problems.push(`${where}.version must be a version id (aws) or a positive version number (vault)`);
    if (provider === 'vault' && version !== undefined && !/^[1-9][0-9]*$/.test(version)) problems.push(`${where}.version: a Vault KV version is a positive whole number`);
  }
  if (problems.length > 0 || path === undefined) return { problems };
  return { ref: { provider, path, ...(key ? { key } : {}), ...(region ? { region } : {}), ...(version ? { version } : {}), ...(mount ? { mount } : {}) } };
}

/** A step's `secrets` list, or every problem with it. `stepEnv` is the step's own `env` (a secret may not share a name with it). */
export function parseStepSecrets(raw: unknown, where: string, stepEnv: Record<string, string> = {}): { secrets: StepSecret[]; problems: string[] } {
  if (raw === undefined) return { secrets: [], problems: [] };
  if (!Array.isArray(raw)) return { secrets: [], problems: [`${where}: secrets is a list of references with env or file`] };
  const secrets: StepSecret[] = [];
  const problems: string[] = [];
  const envs = new Set<string>();
  const files = new Set<string>();
  raw.forEach((entry: unknown, i) => {
    const at = `${where}[${i}]`;
    const parsed = parseSecretRef(entry, at, ['env', 'file', 'optional']);
    if ('problems' in parsed) {
      problems.push(...parsed.problems);
      return;
    }
    const fields = entry as Record<string, unknown>;
    const env = fields.env;
    const file = fields.file;
    const optional = fields.optional ?? false;
    const before = problems.length;
    if ((env === undefined) === (file === undefined)) problems.push(`${at}: say where ${describeSecretRef(parsed.ref)} goes with env: "<VARIABLE>" or file: "<name>" (one of them)`);
    if (env !== undefined) {
      if (typeof env !== 'string' || !ENV_NAME.test(env)) problems.push(`${at}.env: ${JSON.stringify(env)} is not an environment variable name`);
      else if (env.startsWith('FORGE_')) problems.push(`${at}.env: ${env}: FORGE_ variables are set by Forge; choose another name`);
      else if (env in stepEnv) problems.push(`${at}.env: ${env} is also in the step's env; a variable comes from one place`);
      else if (envs.has(env)) problems.push(`${at}.env: two secrets go to ${env}`);
      else envs.add(env);
    }
    if (file !== undefined) {
      if (typeof file !== 'string' || !isPlainRelativePath(file)) problems.push(`${at}.file: ${JSON.stringify(file)} must be a relative file name without empty, "." or ".." segments`);
      else if (files.has(file)) problems.push(`${at}.file: two secrets go to ${file}`);
      else files.add(file);
    }
    if (typeof optional !== 'boolean') problems.push(`${at}.optional must be true or false`);
    if (problems.length > before) return;
    secrets.push({ ref: parsed.ref, ...(typeof env === 'string' ? { env } : {}), ...(typeof file === 'string' ? { file } : {}), optional: optional === true });
  });
  return { secrets, problems };
}

/**
 * One field of a secret's value: the value is a JSON object and `key` names a field of it.
 * Errors name the reference and, when the field is missing, the fields there are — never a value.
 */
export function selectSecretKey(value: string, ref: SecretRef): { value: string } | { error: string } {
  if (ref.key === undefined) return { value };
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return { error: `secret ${describeSecretRef(ref)}: key ${ref.key} was asked for but the secret is not a JSON object` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { error: `secret ${describeSecretRef(ref)}: key ${ref.key} was asked for but the secret is not a JSON object` };
  return pickField(doc as Record<string, unknown>, ref);
}

/** A field of an object secret (a Vault entry's data, a parsed JSON secret), as text. */
export function pickField(fields: Record<string, unknown>, ref: SecretRef): { value: string } | { error: string } {
  const keys = Object.keys(fields).sort();
  if (ref.key === undefined) {
    const only = keys.length === 1 ? fields[keys[0]!] : undefined;
    if (only === undefined) return { error: `secret ${describeSecretRef(ref)} holds ${keys.length} fields (${keys.join(', ') || 'none'}); choose one with key` };
    return { value: typeof only === 'string' ? only : JSON.stringify(only) };
  }
  const field = fields[ref.key];
  if (field === undefined || field === null) return { error: `secret ${describeSecretRef(ref)} has no key ${ref.key}; its keys: ${keys.join(', ') || '(none)'}` };
  return { value: typeof field === 'string' ? field : JSON.stringify(field) };
}
