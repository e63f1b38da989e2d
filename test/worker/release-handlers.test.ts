/**
 * The artifact job's failure rules (behaviour 34 and digest §3.2): a signing failure fails the job
 * after the tracking image was pushed but before anything is reported; a producer failure carries
 * the build output; a missing SBOM is only a warning. Real git, real producer, the embedded OCI
 * layout store and the directory publisher.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobMessage } from '../../src/domain/jobs.ts';
import type { ArtifactJobPayload, ArtifactJobResult } from '../../src/engine/release-builds.ts';
import { createLayoutStore } from '../../src/oci/layout.store.ts';
import { ensureSigningKey, verifyImage } from '../../src/oci/signing.ts';
import { createDirectoryPublisher } from '../../src/store/directory.publisher.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import { artifactHandler, type ReleaseRegistries } from '../../src/worker/release-handlers.ts';

describe('artifact job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-artifact-job-'));
  const store = createLayoutStore(join(dir, 'oci'));
  const workspaces = createGitWorkspaces({ cacheDir: join(dir, 'cache'), urlTemplate: `file://${join(dir, 'git')}/{repository}.git` });
  let commitSha = '';

  beforeAll(async () => {
    const source = join(dir, 'source');
    mkdirSync(join(source, 'lib', 'src'), { recursive: true });
    writeFileSync(join(source, 'lib', 'src', 'index.js'), 'export const x = 1;\n');
    ({ commitSha } = await seedRepository({ bareDir: join(dir, 'git', 'acme', 'lib.git'), sourceDir: source, message: 'lib' }));
  });
  afterAll(async () => {
    await workspaces.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const registries = (signingKey: ReleaseRegistries['signingKey']): ReleaseRegistries => ({
    release: { store, address: 'forge.local/releases' },
    tracking: { store, address: 'forge.local/tracking' },
    signingKey,
  });
  const job = (run: string): JobMessage => {
    const payload: ArtifactJobPayload = {
      build_id: '00000000-0000-4000-8000-000000000001', repository: 'acme/lib', project: 'lib', project_path: 'lib', commit_sha: commitSha,
      branch: 'main', trigger: { type: 'branch_push', branch: 'main' }, pipeline_run_id: null, artifact: 'bundle',
      config: { type: 'archive', producer: { type: 'script', run, artifact: 'bundle.tgz' }, publishers: ['files'] },
      publishers: { files: { type: 'directory' } }, timeout_ms: 60_000,
    };
    return { id: `${payload.build_id}_bundle`, type: 'artifact', run_id: payload.build_id, run_attempt: 1, reply_to: 'x', deadline: new Date(Date.now() + 60_000).toISOString(), payload };
  };
  const publisher = createDirectoryPublisher({ root: join(dir, 'artifacts') });
  const produce = 'tar -czf "$STAGING/bundle.tgz" src';

  it('publishes, pushes the tracking image and signs it', async () => {
    const key = await ensureSigningKey(join(dir, 'keys'));
    const handler = artifactHandler({ workspaces, registries: registries(async () => key), publisherFor: () => publisher, stagingRoot: join(dir, 'staging') });
    const result = await handler({ job: job(produce), deliveryCount: 1, signal: new AbortController().signal }) as ArtifactJobResult;
    expect(result.published_locations).toEqual([expect.objectContaining({ publisher: 'files', skipped: false })]);
    expect(result.tracking_oci_uri).toBe(`forge.local/tracking/acme/lib/lib/bundle@${result.tracking_oci_digest}`);
    expect(result.warnings).toEqual([]);
    expect(await verifyImage(store, 'tracking/acme/lib/lib/bundle', `sha-${commitSha}`, key.publicKeyPem)).toMatchObject({ verified: true });
  });

  it('fails when the tracking image cannot be signed (behaviour 34), saying which image', async () => {
    const handler = artifactHandler({ workspaces, registries: registries(() => Promise.reject(new Error('key service unreachable'))), publisherFor: () => publisher });
    await expect(handler({ job: job(produce), deliveryCount: 2, signal: new AbortController().signal }))
      .rejects.toThrow(/^signing the tracking image forge\.local\/tracking\/acme\/lib\/lib\/bundle@sha256:[0-9a-f]{64} failed: key service unreachable/);
  });

  it('fails a producer that exits non-zero with its output, before publishing anything', async () => {
    let published = 0;
    const handler = artifactHandler({
      workspaces, registries: registries(() => Promise.reject(new Error('unused'))),
      publisherFor: () => { published++; return publisher; },
    });
    await expect(handler({ job: job('echo compiling; echo "error: missing header" >&2; exit 2'), deliveryCount: 1, signal: new AbortController().signal }))
      .rejects.toThrow(/artifact bundle: producer script failed: .*\n--- build output \(last lines\) ---\ncompiling\nerror: missing header/s);
    expect(published).toBe(0);
  });
});
