/**
 * bench:release — Release OCI image build + push against a real registry (Debian docker-registry,
 * started here on a free port with storage in a temp dir), for a release of 50 Kubernetes manifests
 * (~200 KB). Each release is a new commit with changed resources, so every push uploads a new
 * resources layer. Also: pushing the same image again (everything found by HEAD), and the digest of
 * 3 builds of one input (must be identical). Baselines from the same run: a raw HEAD of /v2/ and a
 * raw 200 KB blob upload through the client. Settings: BENCH_RELEASES (default 40). Prints figures
 * only; nothing here asserts timings.
 */
import { createHash } from 'node:crypto';
import { buildReleaseImage, pushReleaseImage, type ReleaseImageInput } from '../src/oci/release-image.ts';
import { createRegistryClient } from '../src/oci/registry.client.ts';
import { startRegistry } from '../test/helpers/registry.ts';

const RELEASES = Number(process.env.BENCH_RELEASES ?? 40);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

function manifests(seed: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 50; i++) {
    const env = Array.from({ length: 47 }, (_, k) => `            - name: SETTING_${k}\n              value: "value-${k}-of-service-${i}"`).join('\n');
    files[`deploy-${String(i).padStart(2, '0')}.yaml`] = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: service-${i}
  labels: {app: service-${i}, release-seed: "${seed}"}
spec:
  replicas: 2
  selector: {matchLabels: {app: service-${i}}}
  template:
    metadata: {labels: {app: service-${i}}}
    spec:
      containers:
        - name: service-${i}
          image: registry.example/acme/service-${i}@sha256:${createHash('sha256').update(`${seed}-${i}`).digest('hex')}
          env:
${env}
`;
  }
  return files;
}

function input(seed: number): ReleaseImageInput {
  const commit = createHash('sha1').update(`commit-${seed}`).digest('hex');
  return {
    repository: 'acme/shop', project: 'api', number: seed + 1,
    aliases: [{ type: 'numeric', value: String(seed + 1) }, { type: 'branch', value: 'main' }],
    trigger: { type: 'branch_push', branch: 'main' },
    source: { commit, branch: 'main', url: 'https://github.com/acme/shop' },
    artifacts: [{ name: 'server', type: 'container', digest: `sha256:${createHash('sha256').update(`a-${seed}`).digest('hex')}`, trackingUri: `127.0.0.1/acme/shop/api/server:sha-${commit}` }],
    created: '2026-11-21T12:00:00Z',
    resources: manifests(seed),
  };
}

function summary(name: string, ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${name.padEnd(58)} ${String(sorted.length).padStart(5)} ${percentile(sorted, 50).toFixed(1).padStart(8)} ${percentile(sorted, 95).toFixed(1).padStart(8)} ${(sorted.at(-1) ?? NaN).toFixed(1).padStart(8)}`;
}

const registry = await startRegistry();
try {
  const store = createRegistryClient({ registry: registry.host, insecure: true });
  const target = { store, address: `${registry.host}/releases` };
  const size = Object.values(input(0).resources as Record<string, string>).reduce((n, text) => n + Buffer.byteLength(text), 0);

  const rawHead: number[] = [];
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await fetch(`http://${registry.host}/v2/`, { method: 'HEAD' });
    rawHead.push(performance.now() - start);
  }
  const rawBlob: number[] = [];
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.alloc(200_000, i + 1);
    const start = performance.now();
    await store.pushBlob('baseline/blobs', bytes);
    rawBlob.push(performance.now() - start);
  }

  // Warm-up: one release pushed before measuring (connections, the registry's first writes).
  await pushReleaseImage(target, input(10_000));
  const build: number[] = [];
  const buildPush: number[] = [];
  const again: number[] = [];
  for (let i = 0; i < RELEASES; i++) {
    const release = input(i);
    let start = performance.now();
    buildReleaseImage(target, release);
    build.push(performance.now() - start);
    start = performance.now();
    const pushed = await pushReleaseImage(target, release);
    buildPush.push(performance.now() - start);
    if (!pushed.pushed) throw new Error(`release ${i} was not pushed: the bench needs new content per release`);
    start = performance.now();
    await pushReleaseImage(target, release);
    again.push(performance.now() - start);
  }
  const digests = [0, 1, 2].map(() => buildReleaseImage(target, input(7)).digest);

  console.log(`bench:release — docker-registry at ${registry.host}, release of 50 manifests (${(size / 1000).toFixed(0)} KB of YAML), ${RELEASES} releases, Node ${process.version}`);
  console.log('');
  console.log(`${'measurement (ms)'.padEnd(58)} ${'n'.padStart(5)} ${'p50'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`);
  console.log('-'.repeat(91));
  console.log(summary('build only (canonical JSON, tar, digests)', build));
  console.log(`${summary('build + push, new content (target p95 <= 1000)', buildPush)}`);
  console.log(summary('build + push again (all present, found by HEAD)', again));
  console.log(summary('raw HEAD /v2/ (baseline)', rawHead));
  console.log(summary('raw 200 KB blob upload through the client (baseline)', rawBlob));
  console.log('');
  console.log(`same input built 3 times: ${digests.join(', ')} → ${new Set(digests).size === 1 ? 'identical' : 'DIFFERENT'}`);
} finally {
  await registry.stop();
}
