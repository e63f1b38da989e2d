/**
 * The execution side shared by `forge server` and `forge worker`: which job queue (NATS JetStream
 * when NATS_URL is set, else the in-process broker), which object store, how workers reach git and
 * authenticate to the internal endpoints. Both processes build these from the same settings, so a
 * server and its workers cannot disagree about streams, buckets or ack wait.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DevIssuer } from '../auth/dev-issuer.ts';
import { clientCredentialsToken, devServiceToken, staticToken, type TokenSource } from '../auth/service-token.ts';
import type { WorkerType } from '../domain/jobs.ts';
import type { JobQueue, ObjectStore } from '../engine/ports.ts';
import { MemoryBroker, createMemoryJobQueue } from '../queue/jobs.memory.ts';
import { connectNatsJobs } from '../queue/jobs.nats.ts';
import type { ExecutionSettings } from '../settings/settings.ts';
import { SettingsError } from '../settings/settings.ts';
import { openObjectStore } from '../store/object-store.ts';
import { ensureBucket } from '../store/object-store.s3.ts';
import { createGitWorkspaces } from '../worker/git-workspace.ts';
import { httpInternalApi } from '../worker/internal-api.ts';
import { startWorkers } from '../worker/worker.ts';
import { createSecretProviders } from '../worker/secret-providers.ts';
import { invalid } from '../domain/errors.ts';
import { EMBEDDED_REGISTRY } from '../domain/registries.ts';
import type { PublishDestination, Publisher } from '../engine/ports.ts';
import { configString, type PublisherCredentials } from '../engine/publishing.ts';
import { assertNever } from '../lib/assert-never.ts';
import { createRegistryClient } from '../oci/registry.client.ts';
import { createOciPublisher } from '../oci/oci.publisher.ts';
import { createDirectoryPublisher, ARTIFACTS_DIR } from '../store/directory.publisher.ts';
import { createS3Publisher } from '../store/s3.publisher.ts';
import { createGitGitOps, type GitGitOps } from '../gitops/git.gitops.ts';
import { createGitHubPublisher } from '../gitops/github.publisher.ts';
import { createGitHubReleasesClient } from '../gitops/github-releases.client.ts';
import { openRegistries, type Registries } from './registries.ts';
import type { StructuredLog } from '../lib/log.ts';

export const PUBLISHER_TYPES = ['docker', 's3', 'github', 'directory'] as const;

/**
 * The publisher adapter for a repo.cue publisher, by type, made once per destination kind:
 * `docker` → the OCI store of its `registry` (none: the embedded store), `s3` → the worker's S3
 * endpoint and keys (FORGE_S3_*), `github` → release assets with FORGE_GITHUB_TOKEN, `directory` →
 * files under <data dir>/artifacts.
 * With `credentials` (the resolved value of the publisher's `credentials` reference) the adapter
 * is made for this one publish and signs in with them instead: docker → a registry client with
 * them as Basic credentials, s3 → those keys (the publisher's `endpoint` / `region`, else the
 * worker's), github → that token. The caller closes it after the publish, so the secret is not
 * kept by the worker.
 */
export function publisherFactory(options: { registries: Registries; execution: ExecutionSettings; dataDir: string; github?: { token: string | undefined; apiUrl: string | undefined } }): { publisherFor(destination: PublishDestination, credentials?: PublisherCredentials): Publisher; close(): Promise<void> } {
  const made = new Map<string, Publisher>();
  const once = (key: string, make: () => Publisher) => {
    let publisher = made.get(key);
    if (!publisher) {
      publisher = make();
      made.set(key, publisher);
    }
    return publisher;
  };
  return {
    publisherFor(destination, credentials) {
      if (credentials) return signedInPublisher(destination, credentials, options);
      switch (destination.type) {
        case 'docker': {
          const host = (configString(destination, 'registry') ?? EMBEDDED_REGISTRY).replace(/\/+$/, '');
          return once(`docker:${host}`, () => createOciPublisher({ store: options.registries.storeFor(host), registry: host }));
        }
        case 's3': {
          const s3 = options.execution.s3;
          if (!s3) throw invalid(`publisher ${destination.name} (s3) needs an S3 endpoint on the artifact workers: set FORGE_S3_ENDPOINT, FORGE_S3_ACCESS_KEY_ID and FORGE_S3_SECRET_ACCESS_KEY`, { publisher: destination.name });
          return once('s3', () => createS3Publisher({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }));
        }
        case 'github': {
          const token = options.github?.token;
          if (!token) throw invalid(`publisher ${destination.name} (github) needs FORGE_GITHUB_TOKEN on the artifact workers`, { publisher: destination.name });
          return once('github', () => createGitHubPublisher({ releases: createGitHubReleasesClient({ token, baseUrl: options.github?.apiUrl }) }));
        }
        case 'directory':
          return once('directory', () => createDirectoryPublisher({ root: join(options.dataDir, ARTIFACTS_DIR) }));
        default:
          throw invalid(`publisher ${destination.name} has type ${destination.type}, which Forge cannot publish to; types: ${PUBLISHER_TYPES.join(', ')}`, { publisher: destination.name, type: destination.type });
      }
    },
    async close() {
      await Promise.all([...made.values()].map((p) => p.close()));
      made.clear();
    },
  };
}

/** A publisher of one publish that signs in with the publisher's own credentials (see publisherFactory). */
function signedInPublisher(destination: PublishDestination, credentials: PublisherCredentials, options: { execution: ExecutionSettings; github?: { apiUrl: string | undefined } }): Publisher {
  switch (credentials.type) {
    case 'docker': {
      const host = (configString(destination, 'registry') ?? EMBEDDED_REGISTRY).replace(/\/+$/, '');
      if (host === EMBEDDED_REGISTRY) throw invalid(`publisher ${destination.name} (docker) has credentials but no registry: the embedded store takes none; add registry: "host[:port]"`, { publisher: destination.name });
      const store = createRegistryClient({ registry: host, insecure: options.execution.registries.insecure, credentials: { username: credentials.username, password: credentials.password } });
      return createOciPublisher({ store, registry: host });
    }
    case 's3': {
      const endpoint = configString(destination, 'endpoint') ?? options.execution.s3?.endpoint;
      if (!endpoint) throw invalid(`publisher ${destination.name} (s3) needs endpoint: in repo.cue, or FORGE_S3_ENDPOINT on the artifact workers`, { publisher: destination.name });
      const region = configString(destination, 'region') ?? options.execution.s3?.region ?? 'us-east-1';
      return createS3Publisher({ endpoint, region, accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey });
    }
    case 'github':
      return createGitHubPublisher({ releases: createGitHubReleasesClient({ token: credentials.token, baseUrl: options.github?.apiUrl }) });
    default:
      return assertNever(credentials, 'publisher credentials');
  }
}

export async function openExecutionObjects(execution: ExecutionSettings, dataDir: string): Promise<ObjectStore> {
  if (!execution.s3) return openObjectStore({ dataDir });
  const { prefix, ...s3 } = execution.s3;
  const settings = { ...s3, ...(prefix ? { prefix } : {}) };
  await ensureBucket(settings);
  return openObjectStore({ dataDir, s3: settings });
}

/**
 * Opens job-queue connections: each call is one connection (NATS) or one client of the process's
 * broker (in-process), so the dispatcher and the workers of a process do not share a connection.
 */
export function jobQueueFactory(execution: ExecutionSettings, objects: ObjectStore): (name: string) => Promise<JobQueue> {
  const timings = { ackWaitMs: execution.ackWaitMs };
  if (execution.natsUrl) {
    const url = execution.natsUrl;
    return (name) => connectNatsJobs(url, { name, namespace: execution.natsNamespace, timings, objects });
  }
  const broker = new MemoryBroker(timings);
  return () => Promise.resolve(createMemoryJobQueue(broker, { objects }));
}

/** The workers' service-account token: FORGE_WORKER_TOKEN, else client credentials, else the dev issuer. */
export function workerTokenSource(execution: ExecutionSettings, devIssuer: DevIssuer | undefined): TokenSource {
  if (execution.workerToken) return staticToken(execution.workerToken);
  if (execution.clientCredentials) return clientCredentialsToken(execution.clientCredentials);
  if (devIssuer) return devServiceToken(devIssuer);
  throw new SettingsError('workers need a service-account token for the internal endpoints: set FORGE_WORKER_TOKEN, or FORGE_OIDC_TOKEN_URL with FORGE_WORKER_CLIENT_ID and FORGE_WORKER_CLIENT_SECRET (or run the server without FORGE_OIDC_ISSUER to use the dev issuer)');
}

export interface RunningWorkers {
  types: WorkerType[];
  stop(): Promise<void>;
}

export async function startWorkerPool(options: {
  execution: ExecutionSettings;
  types: WorkerType[];
  apiUrl: string;
  token: TokenSource;
  cacheDir: string;
  objects: ObjectStore;
  queue: JobQueue;
  /** Registries (embedded OCI store), signing key and the directory publisher live here. */
  dataDir: string;
  github?: { token: string | undefined; apiUrl: string | undefined };
  log?: StructuredLog;
}): Promise<RunningWorkers> {
  const { execution } = options;
  const unlock = lockCacheDir(options.cacheDir);
  const registries = openRegistries(execution.registries, options.dataDir);
  const publishers = publisherFactory({ registries, execution, dataDir: options.dataDir, ...(options.github ? { github: options.github } : {}) });
  const secrets = createSecretProviders(execution.secrets);
  let gitops: GitGitOps | undefined;
  const closeReleases = async () => {
    await gitops?.close();
    await publishers.close();
    await registries.close();
    secrets.close();
  };
  const workspaces = createGitWorkspaces({
    cacheDir: options.cacheDir,
    urlTemplate: execution.gitUrlTemplate,
    ...(execution.gitCredentials ? { credentials: execution.gitCredentials } : {}),
  });
  const workers = await (async () => {
    // Deployment jobs come with release jobs: release workers commit pointers to the GitOps repository.
    if (options.types.includes('release')) {
      const { url, layout, authorName, authorEmail } = execution.gitops;
      gitops = await createGitGitOps({ ...(url === undefined ? {} : { url }), layout, authorName, authorEmail, dataDir: options.dataDir });
    }
    return startWorkers({
      queue: options.queue,
      objects: options.objects,
      workspaces,
      api: httpInternalApi({ baseUrl: options.apiUrl, token: options.token }),
      releases: { registries, publisherFor: publishers.publisherFor, stagingRoot: join(options.cacheDir, 'staging') },
      ...(gitops ? { gitops } : {}),
      ...(options.log ? { log: options.log } : {}),
      secrets: secrets.providers,
    }, options.types, execution.workerConcurrency);
  })().catch(async (error: unknown) => {
    await closeReleases();
    unlock();
    throw error;
  });
  return {
    types: options.types,
    async stop() {
      await workers.stop();
      await closeReleases();
      unlock();
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One worker process per git cache: the cache's locks are per process, so two processes writing one
 * bare repository could corrupt it. A lock file with the owner's pid; one left by a dead process is
 * taken over.
 */
export function lockCacheDir(cacheDir: string): () => void {
  mkdirSync(cacheDir, { recursive: true });
  const file = join(cacheDir, 'forge-worker.lock');
  for (let tries = 0; tries < 3; tries++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new SettingsError(`the worker cache ${cacheDir} is in use by process ${owner}; give each worker process its own cache (FORGE_WORKER_CACHE_DIR / --cache-dir)`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new SettingsError(`cannot lock the worker cache ${cacheDir}`);
}

/** Where a server keeps the git cache of its in-process workers. */
export function serverWorkerCacheDir(dataDir: string): string {
  return join(dataDir, 'worker-cache');
}
