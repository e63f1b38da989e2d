/**
 * A step's secrets at the point of use: each reference is resolved by its provider just before
 * the step starts, and its value goes to the step as an environment variable or as a file in a
 * directory of the step's own (mode 0700, files 0600, outside the checkout, removed when the step
 * ends; $FORGE_SECRET_FILES names it). Earthly steps get `--secret <VAR>` for each variable, so
 * `RUN --secret <VAR>` sees it. The values are returned only for masking the step's log.
 *
 * A secret that cannot be had fails with a ForgeError naming the reference: not_found (a missing
 * optional secret is left out), permission_denied, validation_error (no such provider on this
 * worker); a provider that does not answer is a RetryableError (the job is tried again).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ForgeError, RetryableError, invalid, isForgeError } from '../domain/errors.ts';
import type { Masker } from '../lib/masker.ts';
import { describeSecretRef, parseStepSecrets, type SecretRef, type StepSecret } from '../domain/secrets.ts';
import type { SecretProviders } from '../engine/ports.ts';

/** The variable that names the step's secret files directory. */
export const SECRET_FILES_ENV = 'FORGE_SECRET_FILES';

export interface StepSecrets {
  /** Variables for the step (secrets with `env`, and FORGE_SECRET_FILES when there are files). */
  env: Record<string, string>;
  /** Names of the secret variables (Earthly's --secret). */
  names: string[];
  /** Every resolved value, for masking. */
  values: string[];
  /** Removes the files directory. */
  remove(): Promise<void>;
}

const NONE: StepSecrets = { env: {}, names: [], values: [], remove: () => Promise.resolve() };

/** Resolves one reference with its provider. */
export async function resolveSecret(providers: SecretProviders, ref: SecretRef, signal?: AbortSignal): Promise<string> {
  const provider = providers[ref.provider];
  if (!provider) throw invalid(`secret ${describeSecretRef(ref)}: this worker has no ${ref.provider} secret provider${ref.provider === 'vault' ? '; set FORGE_VAULT_ADDR and FORGE_VAULT_TOKEN on the worker' : ''}`, { secret: describeSecretRef(ref) });
  return provider.resolve(ref, signal);
}

/** Resolves `raw` (a step's `secrets` as configured) for one run of the step; see the module comment. */
export async function resolveStepSecrets(providers: SecretProviders, raw: unknown, options: { where: string; stepEnv?: Record<string, string>; signal?: AbortSignal; tmpRoot?: string }): Promise<StepSecrets> {
  const { secrets, problems } = parseStepSecrets(raw, options.where, options.stepEnv);
  if (problems.length > 0) throw invalid(problems.join('\n'), { problems: problems.length });
  if (secrets.length === 0) return NONE;
  const resolved: { secret: StepSecret; value: string }[] = [];
  for (const secret of secrets) {
    try {
      resolved.push({ secret, value: await resolveSecret(providers, secret.ref, options.signal) });
    } catch (error) {
      if (secret.optional && isForgeError(error) && error.code === 'not_found') continue;
      throw error;
    }
  }
  const env: Record<string, string> = {};
  const names: string[] = [];
  for (const { secret, value } of resolved) {
    if (secret.env === undefined) continue;
    env[secret.env] = value;
    names.push(secret.env);
  }
  const files = resolved.filter(({ secret }) => secret.file !== undefined);
  let dir: string | undefined;
  if (files.length > 0) {
    dir = await mkdtemp(join(options.tmpRoot ?? tmpdir(), 'forge-secrets-'));
    try {
      for (const { secret, value } of files) {
        const path = join(dir, secret.file!);
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        await writeFile(path, value, { mode: 0o600, flag: 'wx' });
      }
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    env[SECRET_FILES_ENV] = dir;
  }
  const filesDir = dir;
  return {
    env, names, values: resolved.map((r) => r.value),
    remove: () => (filesDir ? rm(filesDir, { recursive: true, force: true }) : Promise.resolve()),
  };
}

/** `error` with every secret of `masker` masked in its message (and a ForgeError's details); the cause is dropped, it may quote them. */
export function maskedError(error: unknown, masker: Masker): unknown {
  if (!(error instanceof Error)) return error;
  const message = masker.mask(error.message);
  if (isForgeError(error)) {
    let details: Record<string, unknown>;
    try {
      details = JSON.parse(masker.mask(JSON.stringify(error.details))) as Record<string, unknown>;
    } catch {
      details = {};
    }
    return message === error.message && JSON.stringify(details) === JSON.stringify(error.details) ? error : new ForgeError(error.code, message, details);
  }
  if (error instanceof RetryableError) return message === error.message ? error : new RetryableError(message, error.retryAfterMs);
  return message === error.message ? error : new Error(message);
}
