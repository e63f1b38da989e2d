/**
 * The secret provider adapters a worker resolves references with (digest §1.4, §6.4):
 *
 *   env    a variable `name` of the worker's environment (not one of its own settings or credentials)
 *   file   a file under the secrets dir (FORGE_SECRETS_DIR; Kubernetes mounts Secrets there), read
 *          byte for byte; a path that leaves the dir (also through a symlink) is refused
 *   aws    AWS Secrets Manager GetSecretValue through the AWS SDK (credentials from its default
 *          chain: IRSA, environment, profile), endpoint and region from settings, `region` per reference
 *   vault  Vault KV v2: GET {addr}/v1/{mount}/data/{path}[?version=n] with X-Vault-Token
 *
 * Errors follow the port (engine/ports.ts): not_found / permission_denied naming the reference,
 * RetryableError when the provider cannot be reached or fails; never a value.
 */
import { realpath, readFile } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ForgeError, RetryableError, denied, invalid } from '../domain/errors.ts';
import { describeSecretRef, isPlainRelativePath, isWorkerOwnVariable, pickField, selectSecretKey, type SecretRef } from '../domain/secrets.ts';
import type { SecretProvider, SecretProviders } from '../engine/ports.ts';

const missing = (ref: SecretRef, why: string) => new ForgeError('not_found', `secret ${describeSecretRef(ref)} ${why}`, { secret: describeSecretRef(ref) });

function keyed(value: string, ref: SecretRef): string {
  const selected = selectSecretKey(value, ref);
  if ('error' in selected) throw new ForgeError('not_found', selected.error, { secret: describeSecretRef(ref) });
  return selected.value;
}

export function envSecretProvider(env: Record<string, string | undefined> = process.env): SecretProvider {
  return {
    name: 'env',
    resolve(ref) {
      return new Promise((settle) => {
        if (isWorkerOwnVariable(ref.path)) throw denied(`secret ${describeSecretRef(ref)}: ${ref.path} is the worker's own setting or credential; steps cannot have it`, { secret: describeSecretRef(ref) });
        const value = env[ref.path];
        if (value === undefined) throw missing(ref, `is not set: the worker has no environment variable ${ref.path}`);
        settle(keyed(value, ref));
      });
    },
  };
}

export function fileSecretProvider(root: string): SecretProvider {
  const base = resolve(root);
  return {
    name: 'file',
    async resolve(ref) {
      if (!isPlainRelativePath(ref.path)) throw invalid(`secret ${describeSecretRef(ref)}: the path must stay inside the secrets dir`, { secret: describeSecretRef(ref) });
      let file: string;
      let realRoot: string;
      try {
        realRoot = await realpath(base);
        file = await realpath(resolve(base, ref.path));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') throw missing(ref, `does not exist: no file ${ref.path} in the worker's secrets dir ${base}`);
        if (code === 'EACCES') throw denied(`secret ${describeSecretRef(ref)}: the worker may not read ${ref.path} in ${base}`, { secret: describeSecretRef(ref) });
        throw error;
      }
      // Kubernetes mounts keys as symlinks into a ..data dir inside the mount: fine. Out of it: refused.
      if (!file.startsWith(realRoot + sep)) throw denied(`secret ${describeSecretRef(ref)}: ${ref.path} leads out of the secrets dir ${base}`, { secret: describeSecretRef(ref) });
      let value: string;
      try {
        value = await readFile(file, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EISDIR') throw missing(ref, `is a directory in ${base}; name a file (a mounted Secret's key: <secret>/<key>)`);
        if (code === 'EACCES') throw denied(`secret ${describeSecretRef(ref)}: the worker may not read ${ref.path} in ${base}`, { secret: describeSecretRef(ref) });
        throw error;
      }
      return keyed(value, ref);
    },
  };
}

/** Secrets Manager's version stages (a `version` of that form is a stage, else a version id). */
const STAGE = /^AWS[A-Z]+$/;

export function awsSecretProvider(options: { region?: string | undefined; endpoint?: string | undefined; maxAttempts?: number }): SecretProvider & { close(): void } {
  const clients = new Map<string, SecretsManagerClient>();
  const clientFor = (region: string) => {
    let client = clients.get(region);
    if (!client) {
      client = new SecretsManagerClient({ region, ...(options.endpoint ? { endpoint: options.endpoint } : {}), maxAttempts: options.maxAttempts ?? 3 });
      clients.set(region, client);
    }
    return client;
  };
  return {
    name: 'aws',
    async resolve(ref, signal) {
      const version = ref.version === undefined ? {} : STAGE.test(ref.version) ? { VersionStage: ref.version } : { VersionId: ref.version };
      const region = ref.region ?? options.region;
      if (region === undefined) throw invalid(`secret ${describeSecretRef(ref)}: no AWS region; give the reference region: or set FORGE_AWS_SECRETS_REGION on the worker`, { secret: describeSecretRef(ref) });
      let answer;
      try {
        answer = await clientFor(region).send(new GetSecretValueCommand({ SecretId: ref.path, ...version }), signal ? { abortSignal: signal } : {});
      } catch (error) {
        const name = (error as { name?: string }).name ?? '';
        const said = (error as Error).message;
        if (name === 'ResourceNotFoundException') throw missing(ref, `does not exist in AWS Secrets Manager: ${said}`);
        if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException' || name === 'InvalidSignatureException' || name === 'CredentialsProviderError') {
          throw denied(`secret ${describeSecretRef(ref)}: AWS Secrets Manager refused this worker (${name}: ${said})`, { secret: describeSecretRef(ref) });
        }
        if (name === 'InvalidRequestException' || name === 'InvalidParameterException' || name === 'DecryptionFailure') {
          throw new ForgeError('validation_error', `secret ${describeSecretRef(ref)}: AWS Secrets Manager cannot give it (${name}: ${said})`, { secret: describeSecretRef(ref) });
        }
        throw new RetryableError(`secret ${describeSecretRef(ref)}: AWS Secrets Manager did not answer (${name || 'error'}: ${said})`, undefined, { cause: error });
      }
      const value = answer.SecretString ?? (answer.SecretBinary ? Buffer.from(answer.SecretBinary).toString('utf8') : undefined);
      if (value === undefined) throw missing(ref, 'has no value in AWS Secrets Manager (neither SecretString nor SecretBinary)');
      return keyed(value, ref);
    },
    close() {
      for (const client of clients.values()) client.destroy();
      clients.clear();
    },
  };
}

export function vaultSecretProvider(options: { addr: string; token: string; mount: string; fetch?: typeof fetch }): SecretProvider {
  const addr = options.addr.replace(/\/+$/, '');
  const get = options.fetch ?? fetch;
  return {
    name: 'vault',
    async resolve(ref, signal) {
      const mount = ref.mount ?? options.mount;
      const path = ref.path.split('/').map(encodeURIComponent).join('/');
      const url = `${addr}/v1/${mount}/data/${path}${ref.version ? `?version=${encodeURIComponent(ref.version)}` : ''}`;
      let response: Response;
      try {
        response = await get(url, { headers: { 'X-Vault-Token': options.token, accept: 'application/json' }, ...(signal ? { signal } : {}) });
      } catch (error) {
        throw new RetryableError(`secret ${describeSecretRef(ref)}: Vault at ${addr} did not answer (${(error as Error).message})`, undefined, { cause: error });
      }
      const body = await response.text();
      // Vault's own error messages, never the body of a success (it holds the secret).
      const errors = () => {
        try {
          return ((JSON.parse(body) as { errors?: unknown[] }).errors ?? []).map(String).join('; ');
        } catch {
          return '';
        }
      };
      if (response.status === 404) throw missing(ref, `does not exist in Vault (${addr}, KV v2 mount ${mount})`);
      if (response.status === 401 || response.status === 403) throw denied(`secret ${describeSecretRef(ref)}: Vault refused FORGE_VAULT_TOKEN (${response.status}${errors() ? `: ${errors()}` : ''})`, { secret: describeSecretRef(ref) });
      if (!response.ok) throw new RetryableError(`secret ${describeSecretRef(ref)}: Vault answered ${response.status}${errors() ? `: ${errors()}` : ''}`);
      let data: unknown;
      try {
        data = (JSON.parse(body) as { data?: { data?: unknown } }).data?.data;
      } catch {
        throw new RetryableError(`secret ${describeSecretRef(ref)}: Vault's answer is not JSON`);
      }
      // A deleted or destroyed version answers data: null.
      if (typeof data !== 'object' || data === null || Array.isArray(data)) throw missing(ref, 'has no data in Vault (deleted or destroyed version?)');
      const field = pickField(data as Record<string, unknown>, ref);
      if ('error' in field) throw new ForgeError('not_found', field.error, { secret: describeSecretRef(ref) });
      return field.value;
    },
  };
}

/** What a worker's providers are made from (SecretSettings in settings/). */
export interface SecretProviderOptions {
  dir: string;
  aws: { region: string | undefined; endpoint: string | undefined };
  vault: { addr: string; token: string; mount: string } | undefined;
}

/** The providers of a worker: env, file and aws always (aws needs a region: setting or reference), vault when configured. */
export function createSecretProviders(options: SecretProviderOptions, env: Record<string, string | undefined> = process.env): { providers: SecretProviders; close(): void } {
  const aws = awsSecretProvider(options.aws);
  return {
    providers: {
      env: envSecretProvider(env),
      file: fileSecretProvider(options.dir),
      aws,
      ...(options.vault ? { vault: vaultSecretProvider(options.vault) } : {}),
    },
    close: () => aws.close(),
  };
}
