/**
 * Ports: everything the engine needs from the outside world. Adapters live in store/, queue/,
 * gitops/, auth/; bin/ wires them. The engine is the only caller that changes state, one
 * transaction per use case.
 */
import type {
  AuditAction,
  AuditEntry,
  Deployment,
  EventEnvelope,
  PhaseExecution,
  PipelineRun,
  Release,
  ReleaseAlias,
  ReleaseApproval,
  ReleaseBuild,
  ReleaseArtifact,
  ReleaseTrigger,
  StepExecution,
  TaskExecution,
} from '../domain/entities.ts';
import type { JobMessage, JobReply, WorkerType } from '../domain/jobs.ts';
import type { QueueLag } from '../lib/metrics.ts';
import type { ExecutionStatus, RunStatus, SignatureStatus } from '../domain/statuses.ts';
import type { SecretProviderName, SecretRef } from '../domain/secrets.ts';

export interface Page<T> {
  rows: T[];
  total: number;
}

export interface RunFilter {
  repository?: string;
  branch?: string;
  status?: RunStatus;
  limit: number;
  offset: number;
}

export type RunPatch = Partial<Pick<PipelineRun, 'status' | 'completed_at' | 'discovery_output' | 'error_code' | 'error_message' | 'argo_workflow_name' | 'attempt' | 'discovery_dispatched_at' | 'deadline_at' | 'pr_comment_posted_at' | 'logs_expired_at' | 'active_slot'>>;
export type ExecutionPatch = Partial<Pick<TaskExecution, 'status' | 'started_at' | 'completed_at' | 'error' | 'attempt' | 'dispatched_at' | 'deadline_at'>>;
export type StepPatch = Partial<Pick<StepExecution, 'status' | 'started_at' | 'completed_at' | 'exit_code' | 'logs_s3_key' | 'attempt' | 'logs_expired_at'>>;

/** A release as read: with its aliases, artifacts and trigger (one query). */
export interface ReleaseRecord extends Release {
  aliases: Pick<ReleaseAlias, 'alias' | 'alias_type'>[];
  artifacts: Omit<ReleaseArtifact, 'release_id'>[];
  trigger: Omit<ReleaseTrigger, 'release_id'> | null;
}

/** A project that has releases (GET /v1/projects): how many, and the latest (highest-numbered). */
export interface ProjectSummary {
  repository: string;
  project: string;
  releases: number;
  latest: Pick<Release, 'id' | 'release_number' | 'commit_sha' | 'created_at'>;
}

/** An active deployment with the number of the release it deployed. */
export interface ActiveDeployment extends Deployment {
  release_number: number;
}

export interface StoredEvent {
  id: string;
  envelope: EventEnvelope;
}

/** Reads and writes of one unit of work. Inside `Store.transaction` every call shares the transaction. */
export interface Repos {
  // Pipeline runs
  /** Inserts the run and its creation event in one statement; undefined when (repository, commit_sha) exists. */
  insertRun(run: PipelineRun, created: EventEnvelope): Promise<PipelineRun | undefined>;
  findRunByCommit(repository: string, commitSha: string): Promise<PipelineRun | undefined>;
  getRun(id: string): Promise<PipelineRun | undefined>;
  listRuns(filter: RunFilter): Promise<Page<PipelineRun>>;
  updateRun(id: string, patch: RunPatch): Promise<void>;

  insertPhases(rows: PhaseExecution[]): Promise<void>;
  insertTasks(rows: TaskExecution[]): Promise<void>;
  insertSteps(rows: StepExecution[]): Promise<void>;
  listPhases(runId: string): Promise<PhaseExecution[]>;
  listTasks(phaseIds: string[]): Promise<TaskExecution[]>;
  listSteps(taskIds: string[]): Promise<StepExecution[]>;
  getPhase(id: string): Promise<PhaseExecution | undefined>;
  getTask(id: string): Promise<TaskExecution | undefined>;
  getStep(id: string): Promise<StepExecution | undefined>;
  updatePhase(id: string, patch: ExecutionPatch): Promise<void>;
  updateTask(id: string, patch: ExecutionPatch): Promise<void>;
  updateStep(id: string, patch: StepPatch): Promise<void>;
  /** Moves every phase, task and step of the run that is in one of `from` to `to`; tasks without an error get `reason`. */
  settleRunExecutions(runId: string, from: ExecutionStatus[], to: ExecutionStatus, at: Date, reason?: string): Promise<void>;
  /** The run a task or step belongs to (no locks taken). */
  runIdOf(kind: 'task' | 'step', id: string): Promise<string | undefined>;
  /** Applies `patch` to every step of the task. */
  updateStepsOfTask(taskId: string, patch: StepPatch): Promise<void>;
  /** Runs that are pending or running, oldest first (the dispatcher's sweep). */
  listActiveRunIds(limit: number): Promise<string[]>;
  /** Unfinished runs with a recorded Argo Workflow (`argo_workflow_name` set), oldest first. */
  listActiveWorkflowRuns(limit: number): Promise<Pick<PipelineRun, 'id' | 'attempt' | 'argo_workflow_name'>[]>;

  // GitHub
  /** Records a webhook delivery id; false when it was seen before. */
  recordGithubDelivery(deliveryId: string, event: string, runId: string | null): Promise<boolean>;
  /** Claims the run's PR summary comment (sets pr_comment_posted_at once); false when already claimed. */
  claimPrComment(runId: string, at: Date): Promise<boolean>;

  // Releases
  /** Locks the (repository, project) release counter for this transaction and returns its last number. */
  lockReleaseCounter(repository: string, project: string): Promise<number>;
  setReleaseCounter(repository: string, project: string, last: number): Promise<void>;
  insertRelease(release: Release): Promise<void>;
  insertAliases(rows: ReleaseAlias[]): Promise<void>;
  insertTrigger(row: ReleaseTrigger): Promise<void>;
  insertArtifacts(rows: ReleaseArtifact[]): Promise<void>;
  getRelease(id: string): Promise<ReleaseRecord | undefined>;
  findReleaseByCommit(repository: string, project: string, commitSha: string): Promise<ReleaseRecord | undefined>;
  findReleaseByAlias(repository: string, project: string, alias: string): Promise<ReleaseRecord | undefined>;
  findReleaseByNumber(repository: string, project: string, releaseNumber: number): Promise<ReleaseRecord | undefined>;
  /** At most `limit` releases whose commit SHA starts with `prefix`. */
  findReleasesByShaPrefix(repository: string, project: string, prefix: string, limit: number): Promise<ReleaseRecord[]>;
  listReleases(repository: string, project: string, limit: number, offset: number): Promise<Page<ReleaseRecord>>;
  /** Which of `aliases` are already used by a release of the project. */
  findTakenAliases(repository: string, project: string, aliases: string[]): Promise<string[]>;
  /** Every (repository, project) with at least one release: its count and latest release, by repository then project (bytewise). */
  listProjects(): Promise<ProjectSummary[]>;

  // Deployments
  // Release builds (issue 5)
  insertReleaseBuild(build: ReleaseBuild): Promise<void>;
  getReleaseBuild(id: string, opts?: { forUpdate?: boolean }): Promise<ReleaseBuild | undefined>;
  updateReleaseBuild(id: string, patch: Partial<Omit<ReleaseBuild, 'id' | 'repository' | 'project' | 'commit_sha' | 'created_at' | 'created_by'>>): Promise<void>;
  listRunReleaseBuilds(runId: string): Promise<ReleaseBuild[]>;
  /** The unfinished build of a (repository, project, commit), if any. */
  findActiveReleaseBuild(repository: string, project: string, commitSha: string): Promise<ReleaseBuild | undefined>;
  /** Unfinished builds, oldest first (the dispatcher's sweep). */
  listActiveReleaseBuildIds(limit: number): Promise<string[]>;
  /** A transaction-scoped advisory lock on `key`: holders of the same key take turns until commit. */
  lock(key: string): Promise<void>;
  insertDeployment(row: Deployment): Promise<void>;
  getDeployment(id: string, opts?: { forUpdate?: boolean }): Promise<Deployment | undefined>;
  updateDeployment(id: string, patch: Partial<Pick<Deployment, 'status' | 'gitops_commit_sha' | 'error' | 'deployed_at' | 'dispatched_at' | 'attempts' | 'finished_at'>>): Promise<void>;
  /** The pending deployments of a target, oldest first (the first is in flight or next). */
  listPendingDeployments(environment: string, repository: string, project: string): Promise<Deployment[]>;
  /** The oldest pending deployment of each target (the dispatcher's sweep). */
  listPendingDeploymentIds(limit: number): Promise<string[]>;
  /** Every deployment of these releases, oldest first. */
  listDeploymentsOfReleases(releaseIds: readonly string[]): Promise<Deployment[]>;
  /**
   * The release a rollback returns to: of the releases once active in the target (deployments now
   * superseded, with a pointer commit), the highest-numbered one below `belowNumber`.
   */
  findRollbackRelease(environment: string, repository: string, project: string, belowNumber: number): Promise<string | undefined>;
  /** Marks the active deployment(s) of the target other than `exceptId` superseded. */
  supersedeActive(environment: string, repository: string, project: string, exceptId: string): Promise<void>;
  findActiveDeployment(environment: string, repository: string, project: string): Promise<Deployment | undefined>;
  listDeployments(environment: string, repository: string, project: string, limit: number, offset: number): Promise<Page<Deployment>>;
  /** Every active deployment (at most one per target) with its release's number. */
  listActiveDeployments(): Promise<ActiveDeployment[]>;

  // Approvals
  insertApproval(row: ReleaseApproval): Promise<void>;
  getApproval(id: string, opts?: { forUpdate?: boolean }): Promise<ReleaseApproval | undefined>;
  /** Newest first. */
  listApprovals(releaseId: string, environment: string): Promise<ReleaseApproval[]>;
  /** The approvals of any of the releases, every environment, oldest first. */
  listApprovalsOfReleases(releaseIds: string[]): Promise<ReleaseApproval[]>;
  updateApproval(id: string, patch: Partial<Pick<ReleaseApproval, 'status' | 'revoked_at' | 'revoked_by'>>): Promise<void>;

  // Events outbox
  insertEvents(events: EventEnvelope[]): Promise<void>;

  // Retention and limits (issue 9; store/retention.store.ts)
  /** Unfinished (pending or running) runs of the repository. */
  countActiveRuns(repository: string): Promise<number>;
  /** The run slots 0..limit-1 no unfinished run of the repository holds (see migration 006). */
  freeRunSlots(repository: string, limit: number): Promise<number[]>;
  /**
   * Up to `limit` finished runs without an unfinished release build that completed before `before`,
   * oldest first, after the keyset cursor `after`; `logsNotExpired`: only runs whose logs the
   * retention job has not deleted yet.
   */
  listFinishedRuns(filter: { before: Date; limit: number; after?: RunCursor; logsNotExpired?: boolean }): Promise<RunCursor[]>;
  /** How many steps the runs have, and how many of those have a log key. */
  countRunSteps(runIds: string[]): Promise<{ steps: number; logs: number }>;
  /**
   * Deletes those of the runs that are still finished and have no unfinished release build, with
   * their phases, tasks, steps and release builds (cascade); releases keep their rows (their
   * pipeline_run_id becomes null). Returns the ids deleted and how many steps went with them.
   * `beforeDelete` gets the runs that will go while they are locked (their objects go there, so a
   * run retried meanwhile, which waits for the lock and is then gone, never loses objects it keeps).
   */
  deleteFinishedRuns(runIds: string[], beforeDelete?: (ids: string[]) => Promise<void>): Promise<{ ids: string[]; steps: number }>;
  /**
   * Of the runs still finished: clears their steps' log keys (setting the steps' logs_expired_at)
   * and sets the runs' logs_expired_at. Returns the runs marked and the steps cleared. `beforeExpire`
   * gets the runs marked while they are locked (their log objects go there).
   */
  expireRunLogs(runIds: string[], at: Date, beforeExpire?: (ids: string[]) => Promise<void>): Promise<{ ids: string[]; steps: number }>;

  // Audit trail (issue 6)
  insertAudit(entries: Omit<AuditEntry, 'id'>[]): Promise<void>;
  /** Newest first. */
  listAudit(filter: AuditFilter, limit: number, offset: number): Promise<Page<AuditEntry>>;
}

/** A finished run's place in the retention scan (completed_at, then id). */
export interface RunCursor {
  id: string;
  completed_at: Date;
}

export interface AuditFilter {
  repository?: string;
  project?: string;
  environment?: string;
  release_id?: string;
  deployment_id?: string;
  action?: AuditAction;
}

export interface Store extends Repos {
  readonly kind: 'pglite' | 'postgres';
  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` holding an exclusive lock on `key` across work that includes I/O outside the database
   * (a git push), so other processes on the same database take turns. PostgreSQL: a session advisory
   * lock on a dedicated connection. PGlite (one process by nature): an in-process lock.
   */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Like withLock, but when another holder (any process) has `key` it does not wait: `fn` is not run. */
  tryWithLock<T>(key: string, fn: () => Promise<T>): Promise<{ locked: true; value: T } | { locked: false }>;
  /** Claims up to `limit` unpublished events (oldest first), hands them to `deliver`, marks them published. */
  relayEvents(limit: number, deliver: (events: StoredEvent[]) => Promise<void>): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Delivers committed events to subscribers (in-process bus and SSE; NATS `forge.events.<type>`). */
export interface EventPublisher {
  publish(events: EventEnvelope[]): Promise<void>;
  close(): Promise<void>;
}

/** Subscribing to delivered events (SSE). The in-process bus implements it in every mode. */
export interface EventStream {
  subscribe(listener: (event: EventEnvelope) => void): () => void;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Writes ReleasePointer files into the GitOps repository and returns the commit SHA. */
export interface GitOpsWriter {
  /** `existing`: the commit of `deploymentId` was already on main (see PointerWrite.checkExisting). */
  writePointer(pointer: PointerWrite): Promise<{ commitSha: string; existing?: boolean }>;
}

export interface PointerWrite {
  environment: string;
  repository: string;
  project: string;
  release: Pick<Release, 'id' | 'repository' | 'project' | 'commit_sha' | 'release_number' | 'oci_uri'>;
  aliases: Pick<ReleaseAlias, 'alias' | 'alias_type'>[];
  deployedBy: string;
  deployedAt: Date;
  approvedBy: string | null;
  approvedAt: Date | null;
  message: string;
  /**
   * The deployment the commit is for: its id goes into the commit message as a `Deployment:` trailer.
   * With `checkExisting`, a commit on main that already carries that trailer is returned instead of
   * writing again (a redelivered deployment job whose first push landed).
   */
  deploymentId?: string;
  checkExisting?: boolean;
}

/**
 * Object storage for step logs and large job results (digest §2.4, §2.6). Keys are `/`-separated
 * paths such as `pipeline-runs/<run>/logs/<phase>/<project>/<step>.log`. Adapters: files in the data
 * dir (embedded) and S3 (`@aws-sdk/client-s3`), one contract suite for both.
 */
export interface ObjectStore {
  readonly kind: 'files' | 's3';
  /** Writes the whole object, replacing any previous one with the key. */
  put(key: string, body: Uint8Array | string, options?: { contentType?: string }): Promise<void>;
  /** Uploads a local file (streamed; large files in parts), replacing any previous object. */
  putFile(key: string, path: string, options?: { contentType?: string }): Promise<void>;
  /**
   * Reads an object, or the bytes [start, end) of it; `size` is the whole object's size. Undefined
   * when the key does not exist. A range past the end gives an empty body.
   */
  get(key: string, range?: { start: number; end?: number }): Promise<{ body: Buffer; size: number } | undefined>;
  /** The object's size, or undefined when it does not exist. */
  head(key: string): Promise<{ size: number } | undefined>;
  /** Every object whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<{ key: string; size: number }[]>;
  /** Deletes the keys; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

/** One delivery of a job to a worker. */
export interface Delivery {
  job: JobMessage;
  /** 1 for the first delivery; JetStream redelivers after ack_wait without an ack (at most MAX_DELIVER). */
  deliveryCount: number;
  /** The deliveries a job gets (default MAX_DELIVER): a RetryableError on the last one is final. */
  maxDeliver?: number;
  /** Aborted when the job's run is cancelled or failed (a cancel broadcast) or the consumer stops. */
  signal: AbortSignal;
}

/**
 * Handles a job and returns its result (any JSON). Throwing `RetryableError` asks for a later
 * redelivery (backoff); any other error is final and is replied as the job's error. The adapter
 * replies to `job.reply_to` and only then acks; while the handler runs it keeps the message alive
 * (heartbeats), so only a worker that dies or freezes loses it.
 */
export type JobHandler = (delivery: Delivery) => Promise<unknown>;

export interface JobConsumer {
  /** Stops taking jobs and waits for the ones in flight. */
  stop(): Promise<void>;
}

/**
 * The job queue: NATS JetStream (streams pipeline-discovery/-tasks/-artifacts/-releases, durable
 * pull consumers, explicit ack, max_deliver 3, msgID dedupe) or the in-process queue with the same
 * semantics. One contract suite runs against both (test/queue/job-queue.contract.test.ts).
 */
export interface JobQueue {
  readonly kind: 'memory' | 'nats';
  /** Publishes a job on its type's subject; a second publish with the same `msgId` (within the dedupe window) is dropped. */
  publish(job: JobMessage, msgId: string): Promise<void>;
  /**
   * A reply inbox; every reply published to its subject reaches `onReply`. A reply is settled when
   * `onReply`'s promise resolves; when it rejects, the reply is offered again later (handling must
   * be idempotent). On NATS the inbox is durable by `name` (default "dispatcher"): replies that
   * arrive while no process has it open wait for the next one; processes that open the same name
   * share its replies. In process, replies live as long as the process. `remove` (NATS): close
   * deletes the durable inbox too, for a one-off inbox whose work is done (a dispatcher pod's).
   */
  openInbox(onReply: (reply: JobReply) => Promise<void> | void, options?: { name?: string }): Promise<{ subject: string; close(options?: { remove?: boolean }): Promise<void> }>;
  /** Takes jobs of a worker type, at most `concurrency` at a time. */
  consume(type: WorkerType, handler: JobHandler, options?: { concurrency?: number }): Promise<JobConsumer>;
  /** Each job stream's lag: jobs not taken, taken and unacked, the oldest one's age (metrics). */
  lag(): Promise<QueueLag[]>;
  /** Tells every worker to abort the run's jobs in flight (fail-fast, cancel). */
  broadcastCancel(runId: string, reason: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where runs are orchestrated when not by the built-in dispatcher: Argo Workflows (issue 9,
 * decision 145). Adapter: src/queue/argo.orchestrator.ts (Argo Server REST API).
 */
export interface RunOrchestrator {
  readonly kind: 'argo';
  /** The name of the Workflow of the run's current attempt (deterministic, so a repeated submission is recognised). */
  workflowName(run: Pick<PipelineRun, 'id' | 'attempt'>): string;
  /** Submits the Workflow of the run's current attempt; resolves with its name. RetryableError: it may work later. */
  submit(run: PipelineRun): Promise<string>;
  /** The phase (and message) of every Workflow of a Forge run in the namespace, by name. RetryableError: Argo did not answer. */
  workflowStates(): Promise<Map<string, WorkflowState>>;
  /** Whether the named Workflow exists: false only when Argo answers 404. */
  workflowExists(name: string): Promise<boolean>;
}

/** Argo's `status.phase` ('' before the controller takes it up: Pending, Running, Succeeded, Failed, Error) and `status.message`. */
export interface WorkflowState {
  phase: string;
  message: string | null;
}

// ================================================================================================
// OCI store (issue 5): release and tracking images. Adapters in src/oci/: registry.client.ts (any
// OCI distribution registry, over fetch) and layout.store.ts (one OCI image layout per repository
// under a directory: the embedded default). One contract suite runs against both
// (test/oci/oci-store.contract.test.ts), the registry half on a real Debian docker-registry.
// ================================================================================================

/** Blob content: whole bytes, or a stream of chunks (a Node Readable is one). */
export type OciContent = Uint8Array | AsyncIterable<Uint8Array>;

export interface OciPushResult {
  /** `sha256:<hex>` of the content. */
  digest: string;
  size: number;
  /** False when the store already held it (found by HEAD before pushing) and nothing was sent or written. */
  pushed: boolean;
}

export interface OciManifest {
  bytes: Buffer;
  /** The manifest's media type, e.g. `application/vnd.oci.image.manifest.v1+json`. */
  mediaType: string;
  digest: string;
}

/**
 * Content-addressed storage of OCI images. `repo` is a repository name per the OCI distribution
 * spec (lowercase `/`-separated components, e.g. `forge/monorepo/api`); a `reference` is a tag or a
 * digest; digests are `sha256:<64 hex>`. A bad name, reference or digest is a `validation_error`
 * whose message states the rule. Content is checked against its digest when written and when read.
 */
export interface OciStore {
  readonly kind: 'registry' | 'layout';
  blobExists(repo: string, digest: string): Promise<boolean>;
  /**
   * Stores a blob, first checking whether the store has it (by `digest`, or by the digest of whole
   * bytes): then nothing is sent and `pushed` is false. Content that does not match a given `digest`
   * is refused (`validation_error`) and nothing of it stays. Large blobs go up in chunks.
   */
  pushBlob(repo: string, content: OciContent, digest?: string): Promise<OciPushResult>;
  /** The whole blob, verified against its digest; `not_found` when the store does not have it. */
  getBlob(repo: string, digest: string): Promise<Buffer>;
  /**
   * Stores a manifest under a tag (moving the tag) or under its digest (which must match the bytes).
   * The blobs or manifests it refers to must be stored first (`validation_error` otherwise). When
   * the reference already names these bytes nothing is sent and `pushed` is false.
   */
  pushManifest(repo: string, reference: string, bytes: Uint8Array, mediaType: string): Promise<OciPushResult>;
  /**
   * The manifest a tag or digest names, if its media type is one of `accept` (default: every type
   * a store takes). `not_found` when there is none (or none of an accepted type).
   */
  getManifest(repo: string, reference: string, accept?: readonly string[]): Promise<OciManifest>;
  /** The digest a tag names now, or undefined. */
  resolve(repo: string, tag: string): Promise<string | undefined>;
  /** The repository's tags, sorted; empty for an unknown repository. */
  listTags(repo: string): Promise<string[]>;
  close(): Promise<void>;
}

/** What is known of one tracking image's signature (GET /v1/releases/…/signatures, beyond the seed). */
export interface SignatureCheck {
  status: SignatureStatus;
  /** The digest of the image's signature manifest (its `sha256-<hex>.sig` tag), when one was read. */
  signature_digest: string | null;
  /** Why the image is not `verified`; null when it is. */
  reason: string | null;
}

/**
 * Checks an artifact's tracking image (`tracking_oci_uri`, pinned to `digest` when the release recorded
 * one) against the platform's signing public key. Adapter: src/oci/signature-verifier.ts over the
 * tracking registry, the embedded layout store or a real registry. Registry trouble is never thrown:
 * an unreachable or refusing registry, or a missing image, is `unavailable` with the reason.
 */
export interface SignatureVerifier {
  verify(trackingUri: string, digest: string | null): Promise<SignatureCheck>;
}

// ================================================================================================
// Artifact publishers (issue 5): what producers leave (digest §3.2) and the port every publisher
// implements (§3.3). Producers: src/worker/producers.ts. Adapters: src/oci/oci.publisher.ts (OCI
// registry or the embedded layout store), src/store/s3.publisher.ts, src/store/directory.publisher.ts
// (embedded default, <dataDir>/artifacts), src/gitops/github.publisher.ts (release assets).
// ================================================================================================

export type ArtifactType = 'container' | 'binary' | 'archive';

/** A container image as an OCI image layout directory (index.json, oci-layout, blobs/sha256/…). */
export interface ContainerOutput {
  /** `docker-daemon` is the spec's other location; this build refuses it (no daemon configured). */
  location_type: 'oci-layout';
  /** The layout directory. */
  path: string;
  /** The configured image reference (`ref`), if any. */
  image_ref?: string;
  /** The image config's digest (what `docker images` shows as the id); for an index, its first image's. */
  image_id: string;
  /** The manifest's (or index's) digest: what a registry stores it under. */
  digest: string;
  media_type: string;
  /** Bytes of the manifest and everything it refers to (what a push sends at most). */
  size: number;
  layers: number;
}

/** A single executable file. */
export interface BinaryOutput {
  location_type: 'file';
  path: string;
  executable: boolean;
  /** From the file's header (ELF, Mach-O, PE): `linux`, `darwin`, `windows`, else `unknown`. */
  os: string;
  /** `amd64`, `arm64`, `386`, `arm`, `riscv64`…, else `unknown`. */
  arch: string;
  /** ELF without an interpreter (PT_INTERP); false when not known. */
  static: boolean;
  size: number;
  /** `sha256:<hex>` of the file. */
  digest: string;
  media_type: string;
}

/** An archive file (tar.gz, zip, tar.bz2, tar). */
export interface ArchiveOutput {
  location_type: 'file';
  path: string;
  format: 'tar.gz' | 'zip' | 'tar.bz2' | 'tar' | 'gzip';
  size: number;
  digest: string;
  /** The spec's `content_type`: `application/gzip`, `application/zip`… */
  media_type: string;
}

export type ArtifactOutput = ContainerOutput | BinaryOutput | ArchiveOutput;

/** A produced artifact (the spec's CreateArtifactResponse) with where it comes from. */
export interface ProducedArtifact {
  /** The artifact's name in project.cue. */
  name: string;
  type: ArtifactType;
  /** owner/name */
  repository: string;
  project: string;
  commit_sha: string;
  /**
   * The version the artifact is published under (OCI tag, S3 key segment, GitHub release tag): a
   * release tag's version when the release came from a tag, else the commit SHA (`artifactVersion`).
   */
  version: string;
  output: ArtifactOutput;
  /** Producer details (producer type, target or command, duration). */
  metadata: Record<string, unknown>;
}

/** One publisher of repo.cue: its name and its fields (`type` and the type's own fields). */
export interface PublishDestination {
  name: string;
  type: string;
  config: Record<string, unknown>;
}

export interface PublishResult {
  /** The primary location of the published artifact. */
  uri: string;
  /** `sha256:<hex>` of what the destination holds (for a container, the manifest digest). */
  digest: string;
  /** True when the destination already held this digest and nothing was uploaded. */
  skipped: boolean;
  /** The publisher's output fields (digest §3.4), addressable as `publishers.<name>.<field>`. */
  metadata: Record<string, string>;
}

/**
 * Puts a produced artifact at a destination, idempotently: when the destination already holds the
 * same digest nothing is uploaded and `skipped` is true (the URI is still returned); a different
 * digest under the same name is replaced (`metadata.replaced = "true"`). Failures are ForgeErrors:
 * `authentication_required` / `permission_denied` at once (no retry); network errors, 5xx and 429
 * are retried with backoffDelay() up to 5 attempts, then `service_unavailable` / `rate_limited`;
 * a destination's error body is in the message and `details`. An artifact type the publisher
 * cannot carry, or a bad destination config, is a `validation_error` before anything is sent.
 */
export interface Publisher {
  /** The repo.cue publisher type it serves (`docker`, `s3`, `github`, `directory`). */
  readonly type: string;
  publish(artifact: ProducedArtifact, destination: PublishDestination): Promise<PublishResult>;
  close(): Promise<void>;
}

/**
 * A secret provider (digest §6.4): resolves a reference to its value, in the worker, at the point
 * of use. A secret that does not exist (or has no such key) is a `not_found` ForgeError whose
 * message names the reference (describeSecretRef) and never a value; refused access is
 * `permission_denied`; an unreachable provider is a RetryableError. Values are never logged.
 */
export interface SecretProvider {
  readonly name: SecretProviderName;
  resolve(ref: SecretRef, signal?: AbortSignal): Promise<string>;
}

/** The providers a worker has, by `provider` name; a name without an adapter is not configured there. */
export type SecretProviders = Partial<Record<SecretProviderName, SecretProvider>>;
