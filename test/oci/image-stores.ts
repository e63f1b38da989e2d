/**
 * The two OciStore adapters the image tests run against: an OCI image layout in a temp dir and the
 * registry client on a real docker-registry (skipped locally without it, an error with CI=true, see
 * test/helpers/registry.ts). Each gives the address images are named by and the skopeo reference.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import type { OciStore } from '../../src/engine/ports.ts';
import { createLayoutStore, LAYOUT_DIR } from '../../src/oci/layout.store.ts';
import { createRegistryClient } from '../../src/oci/registry.client.ts';
import { registryUnavailable, startRegistry } from '../helpers/registry.ts';

export interface OpenedStore {
  store: OciStore;
  /** The registry setting as Forge gets it, with a path prefix (`<host>/releases`). */
  address: string;
  /** What skopeo reads for `repo:tag`. */
  skopeoRef(repo: string, tag: string): string;
  dispose(): Promise<void>;
}

export interface StoreAdapter {
  label: string;
  unavailable?: string;
  open(): Promise<OpenedStore>;
}

export const storeAdapters: StoreAdapter[] = [
  {
    label: 'an OCI image layout',
    async open() {
      const root = await mkdtemp(join(tmpdir(), 'forge-images-'));
      const store = createLayoutStore(root);
      return {
        store,
        address: 'forge.local/releases',
        skopeoRef: (repo, tag) => `oci:${join(root, repo, LAYOUT_DIR)}:${tag}`,
        dispose: async () => {
          await store.close();
          await rm(root, { recursive: true, force: true });
        },
      };
    },
  },
  {
    label: 'docker-registry',
    ...(registryUnavailable ? { unavailable: registryUnavailable } : {}),
    async open() {
      const registry = await startRegistry();
      const store = createRegistryClient({ registry: registry.host, insecure: true });
      return {
        store,
        address: `${registry.host}/releases`,
        skopeoRef: (repo, tag) => `docker://${registry.host}/${repo}:${tag}`,
        dispose: async () => {
          await store.close();
          await registry.stop();
        },
      };
    },
  },
];

/**
 * `describe(<title> on <adapter>)` for each adapter, with the store opened before and disposed after
 * its tests, and every test skipped when the adapter is unavailable. `opened()` is the open store.
 */
export function describeOnEachStore(title: string, body: (opened: () => OpenedStore) => void): void {
  for (const adapter of storeAdapters) {
    describe(`${title} on ${adapter.label}`, () => {
      let opened: OpenedStore | undefined;
      beforeAll(async () => {
        if (!adapter.unavailable) opened = await adapter.open();
      });
      afterAll(async () => opened?.dispose());
      beforeEach((context) => {
        if (adapter.unavailable) context.skip(adapter.unavailable);
      });
      body(() => opened!);
    });
  }
}
