/**
 * The OCI stores of a process, from its registry settings: the release and tracking registries
 * (FORGE_RELEASE_REGISTRY, FORGE_TRACKING_REGISTRY) and any registry a `docker` publisher names.
 * The embedded name (`forge.local`, EMBEDDED_REGISTRY) is the OCI image layout store in
 * `<data dir>/oci`; every other host is a registry client (plain HTTP with FORGE_REGISTRY_INSECURE,
 * credentials from FORGE_REGISTRY_USERNAME/PASSWORD). One store per host, shared.
 * The signing key is FORGE_SIGNING_KEY, else `<data dir>/keys/signing.key`, generated on first use.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EMBEDDED_REGISTRY, EMBEDDED_RELEASE_REGISTRY, EMBEDDED_TRACKING_REGISTRY, registryHost } from '../domain/registries.ts';
import type { OciStore } from '../engine/ports.ts';
import type { ImageRegistry } from '../oci/image.ts';
import { createLayoutStore } from '../oci/layout.store.ts';
import { createRegistryClient } from '../oci/registry.client.ts';
import { ensureSigningKey, loadSigningKey, type SigningKey } from '../oci/signing.ts';
import type { RegistrySettings } from '../settings/settings.ts';

export const OCI_LAYOUT_DIR = 'oci';
export const KEYS_DIR = 'keys';

export interface Registries {
  /** The store of a registry host (`127.0.0.1:5000`, `ghcr.io`; `forge.local` = the layout store). */
  storeFor(host: string): OciStore;
  release: ImageRegistry;
  tracking: ImageRegistry;
  /** The key images are signed with (read or generated once). */
  signingKey(): Promise<SigningKey & { path: string }>;
  close(): Promise<void>;
}

export function openRegistries(settings: RegistrySettings, dataDir: string): Registries {
  const stores = new Map<string, OciStore>();
  const storeFor = (host: string): OciStore => {
    let store = stores.get(host);
    if (!store) {
      store = host === EMBEDDED_REGISTRY
        ? createLayoutStore(join(dataDir, OCI_LAYOUT_DIR))
        : createRegistryClient({ registry: host, insecure: settings.insecure, ...(settings.credentials ? { credentials: settings.credentials } : {}) });
      stores.set(host, store);
    }
    return store;
  };
  const registry = (address: string): ImageRegistry => ({ address, store: storeFor(registryHost(address)) });
  let key: Promise<SigningKey & { path: string }> | undefined;
  return {
    storeFor,
    release: registry(settings.release ?? EMBEDDED_RELEASE_REGISTRY),
    tracking: registry(settings.tracking ?? EMBEDDED_TRACKING_REGISTRY),
    signingKey() {
      key ??= loadKey(settings.signingKey, join(dataDir, KEYS_DIR));
      // A failed read is tried again next time (the file may be fixed meanwhile).
      key.catch(() => (key = undefined));
      return key;
    },
    async close() {
      await Promise.all([...stores.values()].map((s) => s.close()));
      stores.clear();
    },
  };
}

async function loadKey(file: string | undefined, dir: string): Promise<SigningKey & { path: string }> {
  if (file === undefined) return ensureSigningKey(dir);
  const pem = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the signing key FORGE_SIGNING_KEY=${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  return { ...loadSigningKey(pem, `signing key ${file} (FORGE_SIGNING_KEY)`), path: file };
}
