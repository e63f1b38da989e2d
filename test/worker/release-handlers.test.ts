/**
 * The artifact job's failure rules (behaviour 34 and digest §3.2): a signing failure fails the job
 * after the tracking image was pushed but before anything is reported; a producer failure carries
 * the build output; a missing SBOM is only a warning. The release job refuses resources whose XRs
 * break the platform XRDs before it builds an image or asks the API for a number. Real git, real
 * producer, the embedded OCI layout store and the directory publisher.
 */
import { cpSync, existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobMessage } from '../../src/domain/jobs.ts';
import { isForgeError } from '../../src/domain/errors.ts';
import type { ArtifactJobPayload, ArtifactJobResult, ReleaseJobPayload } from '../../src/engine/release-builds.ts';
import { createLayoutStore } from '../../src/oci/layout.store.ts';
import { ensureSigningKey, verifyImage } from '../../src/oci/signing.ts';
import { createDirectoryPublisher } from '../../src/store/directory.publisher.ts';
import { createGitWorkspaces, seedRepository } from '../../src/worker/git-workspace.ts';
import type { InternalApi } from '../../src/worker/internal-api.ts';
import { artifactHandler, releaseHandler, type ReleaseRegistries } from '../../src/worker/release-handlers.ts';

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

describe('release job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-release-job-'));
  const store = createLayoutStore(join(dir, 'oci'));
  const workspaces = createGitWorkspaces({ cacheDir: join(dir, 'cache'), urlTemplate: `file://${join(dir, 'git')}/{repository}.git` });
  afterAll(async () => {
    await workspaces.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses resources whose XRs break the platform XRDs, naming every problem, before any image or API call', async () => {
    // The XR fixture repository with one unknown field and one reference to a secret nobody declares.
    const source = join(dir, 'source');
    cpSync(join(import.meta.dirname, '..', 'fixtures', 'xr-repo'), source, { recursive: true });
    const { commitSha: validSha } = await seedRepository({ bareDir: join(dir, 'git', 'acme', 'shop.git'), sourceDir: source, message: 'valid' });
    const shop = join(source, 'services', 'shop', '.forge', 'project.cue');
    writeFileSync(shop, readFileSync(shop, 'utf8')
      .replace('subdomain:   "shop"', 'subdomian: "shop"')
      .replace('"secrets/shop-secrets/database/password"', '"secrets/shop-secrets/cache/password"'));
    const { commitSha } = await seedRepository({ bareDir: join(dir, 'git', 'acme', 'shop.git'), sourceDir: source, message: 'shop' });
    const calls: string[] = [];
    const api = new Proxy({}, { get: (_target, method: string) => () => { calls.push(method); throw new Error(`the API was called: ${method}`); } }) as InternalApi;
    const payload: ReleaseJobPayload = {
      build_id: '00000000-0000-4000-8000-000000000002', repository: 'acme/shop', project: 'shop', project_path: 'services/shop', commit_sha: commitSha,
      branch: 'main', trigger: { type: 'branch_push', branch: 'main' }, pipeline_run_id: null, tagging_strategy: 'monorepo',
      artifacts: [{
        name: 'web', type: 'container', digest: `sha256:${'a'.repeat(64)}`, output: { uri: 'registry.example/acme/shop-web@sha256:aaaa', digest: `sha256:${'a'.repeat(64)}` },
        published_locations: [], primary_uri: 'registry.example/acme/shop-web@sha256:aaaa', tracking_oci_uri: 'forge.local/tracking/x', tracking_oci_digest: `sha256:${'b'.repeat(64)}`, warnings: [],
      }],
    };
    const handler = releaseHandler({ workspaces, api, registries: { release: { store, address: 'forge.local/releases' }, tracking: { store, address: 'forge.local/tracking' }, signingKey: () => Promise.reject(new Error('the signing key was asked for')) } });
    const job: JobMessage = { id: 'release-1', type: 'release', run_id: payload.build_id, run_attempt: 1, reply_to: 'x', deadline: new Date(Date.now() + 60_000).toISOString(), payload };
    // The valid commit passes the check and goes on to sign its image.
    await expect(handler({ job: { ...job, payload: { ...payload, commit_sha: validSha } }, deliveryCount: 1, signal: new AbortController().signal })).rejects.toThrow('the signing key was asked for');
    const failure = await handler({ job, deliveryCount: 1, signal: new AbortController().signal }).then(() => undefined, (error: unknown) => error);
    expect(isForgeError(failure) && failure.code).toBe('validation_error');
    expect((failure as Error).message).toBe([
      'shop\'s deploy.resources are not valid XRs (2 problems):',
      '  services/shop/.forge/project.cue: Deployment/web: spec.env.DB_PASSWORD.source: "secrets/shop-secrets/cache/password": Secrets XR shop-secrets declares no secret cache (it has: database, tls-cert)',
      '  services/shop/.forge/project.cue: Network/web-network: spec.subdomian: unknown field (did you mean subdomain?); spec has workloadRef, targetRef, port, subdomain, hostname, paths, tlsEnabled, rateLimit',
    ].join('\n'));
    expect(calls).toEqual([]);
    // Nothing was pushed: the store holds no image.
    expect(existsSync(join(dir, 'oci')) ? readdirSync(join(dir, 'oci'), { recursive: true }) : []).toEqual([]);
  });
});
