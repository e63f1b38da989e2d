/**
 * Settings of `forge cmp` (the Argo CD plugin sidecar). Each is an environment variable with a flag
 * beside it (the flag wins), as everywhere in Forge. Argo CD passes an Application's
 * `spec.source.plugin.env` entries to the plugin as `ARGOCD_ENV_<name>`; those are fallbacks for
 * what the sidecar's own environment leaves unset, with one rule for the registry: its address,
 * FORGE_REGISTRY_INSECURE and the credentials come as a group from one place. When the sidecar sets
 * any of them, an Application cannot change any of them, so it can never send the sidecar's
 * credentials to a registry of its choosing.
 */
import { resolve } from 'node:path';
import { isForgeError } from '../domain/errors.ts';
import { checkPointerLayout } from '../gitops/release-pointer.ts';
import { EXECUTION_SETTINGS, parseRegistrySettings, SettingsError, type RegistrySettings, type SettingSpec } from '../settings/settings.ts';

export const ARGOCD_ENV_PREFIX = 'ARGOCD_ENV_';

export const CMP_SETTINGS = {
  dataDir: { env: 'FORGE_DATA_DIR', flag: '--data-dir', description: 'data dir of an embedded Forge: forge.local images are read from <data dir>/oci', default: '.forge-data' },
  releaseRegistry: EXECUTION_SETTINGS.releaseRegistry,
  registryInsecure: EXECUTION_SETTINGS.registryInsecure,
  registryUsername: EXECUTION_SETTINGS.registryUsername,
  registryPassword: EXECUTION_SETTINGS.registryPassword,
  layout: { ...EXECUTION_SETTINGS.gitopsLayout, flag: '--layout', description: 'GitOps path template of pointer files, to read repository and project from the path when the pointer lacks them' },
} as const satisfies Record<string, SettingSpec>;

/** Taken as a group from the sidecar's environment, else from the Application's ARGOCD_ENV_*. */
const REGISTRY_GROUP: readonly SettingSpec[] = [CMP_SETTINGS.releaseRegistry, CMP_SETTINGS.registryInsecure, CMP_SETTINGS.registryUsername, CMP_SETTINGS.registryPassword];
/** Taken one by one from ARGOCD_ENV_* when the sidecar leaves them unset. */
const SINGLE_FALLBACKS: readonly SettingSpec[] = [CMP_SETTINGS.layout];

export interface CmpSettings {
  dataDir: string;
  registries: RegistrySettings;
  layout: string;
  /** The application's path in the GitOps repository, when Argo CD runs the plugin (ARGOCD_APP_SOURCE_PATH). */
  sourcePath: string | undefined;
}

type Source = Record<string, string | undefined>;
const isSet = (value: string | undefined) => value !== undefined && value !== '';

/** The environment with the ARGOCD_ENV_* fallbacks applied (see the rule above). */
export function withArgoEnvFallbacks(env: Source): Source {
  const effective: Source = { ...env };
  const fallback = (spec: SettingSpec) => {
    const value = env[`${ARGOCD_ENV_PREFIX}${spec.env}`];
    if (isSet(value)) effective[spec.env] = value;
  };
  if (!REGISTRY_GROUP.some((spec) => isSet(env[spec.env]))) REGISTRY_GROUP.forEach(fallback);
  for (const spec of SINGLE_FALLBACKS) if (!isSet(env[spec.env])) fallback(spec);
  return effective;
}

function checkLayout(layout: string): string {
  try {
    return checkPointerLayout(layout);
  } catch (error) {
    if (!isForgeError(error)) throw error;
    const { env, flag } = CMP_SETTINGS.layout;
    throw new SettingsError(`setting ${env} (${flag}) = ${JSON.stringify(layout)}: ${error.message}`);
  }
}

/** Throws SettingsError for a bad setting. */
export function parseCmpSettings(flags: Record<string, unknown>, env: Source): CmpSettings {
  const effective = withArgoEnvFallbacks(env);
  const value = (spec: SettingSpec, flag: unknown) => (typeof flag === 'string' && flag !== '' ? flag : isSet(effective[spec.env]) ? effective[spec.env]! : spec.default!);
  return {
    dataDir: resolve(value(CMP_SETTINGS.dataDir, flags.dataDir)),
    registries: parseRegistrySettings(flags, effective),
    layout: checkLayout(value(CMP_SETTINGS.layout, flags.layout)),
    sourcePath: isSet(env.ARGOCD_APP_SOURCE_PATH) ? env.ARGOCD_APP_SOURCE_PATH : undefined,
  };
}
