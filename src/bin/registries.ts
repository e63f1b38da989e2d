/**
 * The OCI stores of a process, from its registry settings: the release and tracking registries
 * (FORGE_RELEASE_REGISTRY, FORGE_TRACKING_REGISTRY) and any registry a `docker` publisher names.
 * The embedded name (`forge.local`, EMBEDDED_REGISTRY) is the OCI image layout store in
 * `<data dir>/oci`; every other host is a registry client (plain HTTP with FORGE_REGISTRY_INSECURE,
 * credentials from FORGE_REGISTRY_USERNAME/PASSWORD). One store per host, shared.
 * The signing key is FORGE_SIGNING_KEY, else `<data dir>/keys/signing.key`, generated on first use.
 * The key signatures are checked with is the public half of FORGE_SIGNING_KEY (which may then be a
 * public key: a process that only verifies needs no private key), else `<data dir>/keys/signing.pub`
 * (or signing.key beside it); it is never generated.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EMBEDDED_REGISTRY, EMBEDDED_RELEASE_REGISTRY, EMBEDDED_TRACKING_REGISTRY, registryHost } from '../domain/registries.ts';
import type { OciStore, SignatureVerifier } from '../engine/ports.ts';
import type { ImageRegistry } from '../oci/image.ts';
import { createLayoutStore } from '../oci/layout.store.ts';
import { createRegistryClient, type RegistryClientOptions } from '../oci/registry.client.ts';
import { createSignatureVerifier, SIGNATURE_READ_TIMING } from '../oci/signature-verifier.ts';
import { ensureSigningKey, findVerifyKey, loadSigningKey, type SigningKey, type VerifyKey } from '../oci/signing.ts';
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
  /** The public key signatures must verify with; undefined while there is none (read again next time). */
  verifyKey(): Promise<VerifyKey | undefined>;
  close(): Promise<void>;
}

/** How registry clients time out and retry (default: the client's, 30 s and 5 attempts). */
export type RegistryClientTiming = Pick<RegistryClientOptions, 'timeoutMs' | 'backoff'>;

export function openRegistries(settings: RegistrySettings, dataDir: string, timing: RegistryClientTiming = {}): Registries {
  const stores = new Map<string, OciStore>();
  const storeFor = (host: string): OciStore => {
    let store = stores.get(host);
    if (!store) {
      store = host === EMBEDDED_REGISTRY
        ? createLayoutStore(join(dataDir, OCI_LAYOUT_DIR))
        : createRegistryClient({ registry: host, insecure: settings.insecure, ...(settings.credentials ? { credentials: settings.credentials } : {}), ...timing });
      stores.set(host, store);
    }
    return store;
  };
  const registry = (address: string): ImageRegistry => ({ address, store: storeFor(registryHost(address)) });
  let key: Promise<SigningKey & { path: string }> | undefined;
  let publicKey: Promise<VerifyKey | undefined> | undefined;
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
    verifyKey() {
      if (publicKey) return publicKey;
      const named = settings.signingKey === undefined ? undefined : { file: settings.signingKey, source: `the key ${settings.signingKey} (FORGE_SIGNING_KEY)` };
      const lookup = findVerifyKey(named, join(dataDir, KEYS_DIR));
      publicKey = lookup;
      // Kept once found; a key not there yet (made with the first signature) or unreadable is looked for again.
      const forget = () => {
        if (publicKey === lookup) publicKey = undefined;
      };
      lookup.then((found) => found ?? forget(), forget);
      return lookup;
    },
    async close() {
      await Promise.all([...stores.values()].map((s) => s.close()));
      stores.clear();
    },
  };
}

/**
 * What the API checks tracking images' signatures with: registries of its own with short timeouts
 * (SIGNATURE_READ_TIMING), reading only the tracking registry's host, and the public key only.
 */
export function openSignatureVerifier(settings: RegistrySettings, dataDir: string): { verifier: SignatureVerifier; close(): Promise<void> } {
  const registries = openRegistries(settings, dataDir, SIGNATURE_READ_TIMING);
  const verifier = createSignatureVerifier({
    storeFor: registries.storeFor, hosts: [registryHost(registries.tracking.address)], verifyKey: () => registries.verifyKey(),
  });
  return { verifier, close: () => registries.close() };
}

async function loadKey(file: string | undefined, dir: string): Promise<SigningKey & { path: string }> {
  if (file === undefined) return ensureSigningKey(dir);
  const pem = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the signing key FORGE_SIGNING_KEY=${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
  });
  return { ...loadSigningKey(pem, `signing key ${file} (FORGE_SIGNING_KEY)`), path: file };
}
