/**
 * `forge cmp` settings: flags over the sidecar's environment over an Application's ARGOCD_ENV_*
 * values, with the registry address, FORGE_REGISTRY_INSECURE and the credentials taken as one group
 * (an Application can never aim the sidecar's credentials at a registry of its choosing).
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCmpSettings, withArgoEnvFallbacks } from '../../src/cmp/cmp.settings.ts';
import { DEFAULT_POINTER_LAYOUT } from '../../src/gitops/release-pointer.ts';
import { SettingsError } from '../../src/settings/settings.ts';

const argo = {
  ARGOCD_ENV_FORGE_RELEASE_REGISTRY: 'app.example:5000/releases',
  ARGOCD_ENV_FORGE_REGISTRY_INSECURE: '1',
  ARGOCD_ENV_FORGE_REGISTRY_USERNAME: 'app-user',
  ARGOCD_ENV_FORGE_REGISTRY_PASSWORD: 'app-pass',
  ARGOCD_ENV_FORGE_GITOPS_LAYOUT: '{environment}/{repository}/{project}/release.yaml',
};

describe('forge cmp settings', () => {
  it('defaults to the embedded store in .forge-data and the default layout', () => {
    expect(parseCmpSettings({}, {})).toEqual({
      dataDir: resolve('.forge-data'),
      registries: { release: undefined, tracking: undefined, insecure: false, credentials: undefined, signingKey: undefined },
      layout: DEFAULT_POINTER_LAYOUT,
      sourcePath: undefined,
    });
  });

  it('takes the registry group from the Application when the sidecar sets none of it', () => {
    const settings = parseCmpSettings({}, { ...argo, ARGOCD_APP_SOURCE_PATH: 'dev/acme/shop/web' });
    expect(settings).toMatchObject({
      registries: { release: 'app.example:5000/releases', insecure: true, credentials: { username: 'app-user', password: 'app-pass' } },
      layout: argo.ARGOCD_ENV_FORGE_GITOPS_LAYOUT,
      sourcePath: 'dev/acme/shop/web',
    });
  });

  it('keeps the whole registry group from the sidecar when it sets any of it', () => {
    const sidecar = { FORGE_RELEASE_REGISTRY: 'registry.internal/releases', FORGE_REGISTRY_USERNAME: 'cmp', FORGE_REGISTRY_PASSWORD: 'secret' };
    expect(parseCmpSettings({}, { ...argo, ...sidecar }).registries).toMatchObject({ release: 'registry.internal/releases', insecure: false, credentials: { username: 'cmp', password: 'secret' } });
    // Credentials alone in the sidecar: the Application still cannot name the registry they go to.
    const credentialsOnly = withArgoEnvFallbacks({ ...argo, FORGE_REGISTRY_USERNAME: 'cmp', FORGE_REGISTRY_PASSWORD: 'secret' });
    expect(credentialsOnly.FORGE_RELEASE_REGISTRY).toBeUndefined();
    expect(parseCmpSettings({}, { ...argo, FORGE_REGISTRY_USERNAME: 'cmp', FORGE_REGISTRY_PASSWORD: 'secret' }).registries.release).toBeUndefined();
  });

  it('lets flags win over both', () => {
    const settings = parseCmpSettings({ releaseRegistry: 'flag.example/r', dataDir: '/srv/forge', layout: 'x/{environment}/{repository}/{project}/release.yaml' }, { ...argo, FORGE_DATA_DIR: '/elsewhere' });
    expect(settings).toMatchObject({ dataDir: '/srv/forge', layout: 'x/{environment}/{repository}/{project}/release.yaml', registries: { release: 'flag.example/r' } });
  });

  it('refuses a bad layout or registry with the setting named', () => {
    expect(() => parseCmpSettings({}, { FORGE_GITOPS_LAYOUT: '{environment}/{project}/release.yaml' })).toThrow(SettingsError);
    expect(() => parseCmpSettings({}, { FORGE_GITOPS_LAYOUT: '{environment}/{project}/release.yaml' })).toThrow(/FORGE_GITOPS_LAYOUT \(--layout\).*must contain \{repository\}/);
    expect(() => parseCmpSettings({}, { ARGOCD_ENV_FORGE_RELEASE_REGISTRY: 'https://x/r' })).toThrow(/FORGE_RELEASE_REGISTRY/);
  });
});
