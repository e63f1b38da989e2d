/**
 * JSON schemas of the /v1 API. They validate requests (a bad body is a 422 before any use case
 * runs), shape responses, and generate /v1/openapi.json. Name patterns come from domain/names.ts.
 */
import { PERMISSIONS } from '../auth/permissions.ts';
import { AUDIT_ACTIONS } from '../domain/entities.ts';
import { ROLES } from '../domain/identity.ts';
import { NAME_PATTERNS, NAME_RULES } from '../domain/names.ts';
import { DISPATCH_STAGES, JOB_TYPES } from '../domain/jobs.ts';
import {
  ALIAS_TYPES, APPROVAL_STATUSES, ARTIFACT_TYPES, DEPLOYMENT_STATUSES, EXECUTION_STATUSES,
  RELEASE_BUILD_STATUSES, RELEASE_TRIGGER_TYPES, REPORTED_STATUSES, RUN_STATUSES, SIGNATURE_STATUSES, TRIGGER_TYPES,
} from '../domain/statuses.ts';

const str = (pattern: string, description: string, maxLength?: number) =>
  ({ type: 'string', pattern, description, ...(maxLength ? { maxLength } : {}) }) as const;

export const S = {
  repository: str(NAME_PATTERNS.repository, `repository, ${NAME_RULES.repository}`, 140),
  project: str(NAME_PATTERNS.project, `project, ${NAME_RULES.project}`, 63),
  environment: str(NAME_PATTERNS.environment, `environment, ${NAME_RULES.environment}`, 63),
  branch: str(NAME_PATTERNS.branch, `branch, ${NAME_RULES.branch}`, 255),
  tag: str(NAME_PATTERNS.tag, `tag, ${NAME_RULES.tag}`, 255),
  alias: str(NAME_PATTERNS.alias, `alias, ${NAME_RULES.alias}`, 128),
  commitSha: str(NAME_PATTERNS.commitSha, NAME_RULES.commitSha, 64),
  actor: str(NAME_PATTERNS.actor, NAME_RULES.actor, 255),
  uuid: { type: 'string', format: 'uuid', pattern: NAME_PATTERNS.uuid },
  /** Release reference: alias, number or SHA prefix — any alias-shaped string. */
  releaseRef: str(NAME_PATTERNS.alias, 'release id: alias, release number, or full/prefix commit SHA', 128),
  uri: { type: 'string', minLength: 1, maxLength: 2048, pattern: String.raw`^[^\u0000-\u001f\u007f\s]+$` },
  digest: { type: 'string', pattern: String.raw`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$`, maxLength: 200 },
  time: { type: 'string', format: 'date-time' },
  nullableTime: { type: ['string', 'null'], format: 'date-time' },
  nullableString: { type: ['string', 'null'] },
  /** Free text (justifications, error reports): anything but NUL, which PostgreSQL text cannot hold. */
  text: (maxLength: number, minLength = 0) => ({ type: 'string', minLength, maxLength, pattern: String.raw`^[^\u0000]*$` }) as const,
  limit: { type: 'integer', minimum: 1, maximum: 500, default: 20 },
  offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0 },
} as const;

const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties), extra: Record<string, unknown> = {}) =>
  ({ type: 'object', properties, required, additionalProperties: false, ...extra }) as const;

export const errorSchema = obj({
  error: obj({
    code: { type: 'string' },
    message: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
  }),
});

export const errorResponses = {
  400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 410: errorSchema,
  413: errorSchema, 415: errorSchema, 422: errorSchema, 429: errorSchema, 500: errorSchema, 503: errorSchema,
} as const;

// ---- Runs -----------------------------------------------------------------------------------

export const githubContextSchema = obj({
  pr_number: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  run_id: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  context: { type: 'string', maxLength: 255, pattern: NAME_PATTERNS.actor },
  check_run_id: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
}, []);

export const createRunBody = obj({
  repository: S.repository,
  branch: S.branch,
  commit_sha: S.commitSha,
  triggered_by: S.actor,
  trigger_type: { type: 'string', enum: TRIGGER_TYPES },
  github_context: githubContextSchema,
}, ['repository', 'branch', 'commit_sha', 'trigger_type']);

export const createRunResponse = obj({ id: S.uuid, status: { type: 'string', enum: RUN_STATUSES }, started_at: S.time });

const stepSchema = obj({
  id: S.uuid, step_name: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' },
  status: { type: 'string', enum: EXECUTION_STATUSES }, started_at: S.nullableTime, completed_at: S.nullableTime,
  exit_code: { type: ['integer', 'null'] }, logs_s3_key: S.nullableString, attempt: { type: 'integer' },
  logs_expired_at: { ...S.nullableTime, description: 'beyond the seed: when the retention job deleted the step\'s log (FORGE_LOG_RETENTION); its logs then answer 410' },
});
const taskSchema = obj({
  id: S.uuid, project_name: { type: 'string' }, project_path: { type: 'string' },
  status: { type: 'string', enum: EXECUTION_STATUSES }, started_at: S.nullableTime, completed_at: S.nullableTime,
  error: S.nullableString, attempt: { type: 'integer', description: 'beyond the seed: how many times a worker claimed the task' },
  steps: { type: 'array', items: stepSchema },
});
const phaseSchema = obj({
  id: S.uuid, name: { type: 'string' }, group_number: { type: 'integer' },
  status: { type: 'string', enum: EXECUTION_STATUSES }, started_at: S.nullableTime, completed_at: S.nullableTime,
  tasks: { type: 'array', items: taskSchema },
});
const runFields = {
  id: S.uuid, repository: { type: 'string' }, branch: { type: 'string' }, commit_sha: { type: 'string' },
  triggered_by: { type: 'string' }, trigger_type: { type: 'string', enum: TRIGGER_TYPES },
  status: { type: 'string', enum: RUN_STATUSES }, started_at: S.time, completed_at: S.nullableTime,
  argo_workflow_name: S.nullableString, error_code: S.nullableString, error_message: S.nullableString,
  github_context: { anyOf: [githubContextSchema, { type: 'null' }] },
  attempt: { type: 'integer', description: 'beyond the seed: 1, plus one per POST /v1/runs/{id}/retry' },
  logs_expired_at: { ...S.nullableTime, description: 'beyond the seed: when the retention job deleted the run\'s step logs (FORGE_LOG_RETENTION)' },
};
export const runSchema = obj(runFields);
export const runTreeSchema = obj({ ...runFields, phases: { type: 'array', items: phaseSchema } });
export const runListQuery = obj({
  repository: S.repository, branch: S.branch, status: { type: 'string', enum: RUN_STATUSES }, limit: S.limit, offset: S.offset,
}, []);
export const runListResponse = obj({ runs: { type: 'array', items: runSchema }, total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' } });

const attemptField = { type: 'integer', minimum: 1, maximum: 1_000_000, description: 'the task attempt from the claim; reports of an older attempt are refused (409)' };
export const taskStatusBody = obj({
  status: { type: 'string', enum: REPORTED_STATUSES },
  error: S.text(10_000),
  attempt: attemptField,
}, ['status']);
export const stepStatusBody = obj({
  status: { type: 'string', enum: REPORTED_STATUSES },
  exit_code: { type: ['integer', 'null'], minimum: -1, maximum: 255 },
  // An object key (store/object-keys.ts): relative, no empty, "." or ".." segment, not the files store's .forge-tmp/.
  logs_s3_key: { type: ['string', 'null'], maxLength: 1024, pattern: String.raw`^(?!/)(?!.*//)(?!.*/$)(?!(?:.*/)?\.\.?(?:/|$))(?!\.forge-tmp(?:/|$))[A-Za-z0-9._/+=-]+$` },
  attempt: attemptField,
  error: { ...S.text(10_000), description: 'beyond the seed: why a failed step failed (timeout, could not start); becomes its task\'s error' },
}, ['status']);
export const taskResponse = obj({
  id: S.uuid, phase_execution_id: S.uuid, project_name: { type: 'string' }, project_path: { type: 'string' },
  status: { type: 'string', enum: EXECUTION_STATUSES }, started_at: S.nullableTime, completed_at: S.nullableTime, error: S.nullableString,
  attempt: { type: 'integer' },
});
export const logQuery = obj({
  offset: { type: 'integer', minimum: 0, default: 0, description: 'byte offset to read from' },
  limit: { type: 'integer', minimum: 1, maximum: 1_048_576, default: 65_536, description: 'at most this many bytes (whole lines only, unless one line is longer)' },
  follow: { type: 'string', enum: ['0', '1', 'true', 'false'], description: '1: stream new output as server-sent events until the step ends' },
}, []);
export const logResponse = obj({
  step_id: S.uuid, key: S.nullableString, offset: { type: 'integer' }, next_offset: { type: 'integer' }, size: { type: 'integer' },
  complete: { type: 'boolean' }, text: { type: 'string' },
});
export const stepResponse = obj({
  id: S.uuid, task_execution_id: S.uuid, step_name: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' },
  status: { type: 'string', enum: EXECUTION_STATUSES }, started_at: S.nullableTime, completed_at: S.nullableTime,
  exit_code: { type: ['integer', 'null'] }, logs_s3_key: S.nullableString, attempt: { type: 'integer' },
});
export const logIndexResponse = obj({
  step_id: S.uuid, key: S.nullableString,
  size: { type: 'integer', description: 'bytes indexed: the log\'s size when asked' },
  complete: { type: 'boolean', description: 'the step has ended and its whole log is stored' },
  lines: { type: 'integer', description: 'lines in the log; a last line without a newline counts' },
  every: { type: 'integer', description: 'checkpoint spacing in lines (1000)' },
  checkpoints: { type: 'array', items: { type: 'integer' }, description: 'checkpoints[k]: byte offset where 0-based line k*every starts; empty for an empty log' },
}, undefined, { description: 'beyond the seed: a step log\'s line index, for jumping to a line with one ranged read of GET /v1/steps/{id}/logs' });
export const logSearchQuery = obj({
  q: { type: 'string', minLength: 1, maxLength: 200, description: 'text to find, literally (not a pattern), in lines with their ANSI escapes removed' },
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200, description: 'at most this many matches' },
  case: { type: 'integer', enum: [0, 1], default: 0, description: '1: case-sensitive; 0: not' },
}, ['q']);
export const logSearchResponse = obj({
  step_id: S.uuid, query: { type: 'string' },
  matches: {
    type: 'array',
    items: obj({
      line: { type: 'integer', description: '1-based line number' },
      offset: { type: 'integer', description: 'byte offset where the line starts' },
      text: { type: 'string', description: 'the line without ANSI escapes, cut to 1000 characters' },
    }),
  },
  truncated: { type: 'boolean', description: 'more lines matched than limit' },
  size: { type: 'integer', description: 'bytes of the log when searched' },
  complete: { type: 'boolean', description: 'the step has ended and its whole log is stored' },
}, undefined, { description: 'beyond the seed: lines of a step log containing the query, first to last' });
// ---- Dispatcher pods (Argo Workflows, issue 9) ------------------------------------------------

const jobDraftSchema = obj({
  id: { type: 'string' }, type: { type: 'string', enum: JOB_TYPES }, run_id: { type: 'string' }, run_attempt: { type: 'integer' },
  deadline: S.time, payload: { type: 'object', additionalProperties: true }, msg_id: { type: 'string' },
  published_at: S.time, traceparent: { type: 'string', description: 'W3C traceparent of the job\'s publish span (when traces are exported)' },
}, ['id', 'type', 'run_id', 'run_attempt', 'deadline', 'payload', 'msg_id', 'published_at']);
export const stageJobsBody = obj({
  stage: { type: 'string', enum: DISPATCH_STAGES, description: 'the Workflow node\'s stage' },
  group: { type: 'integer', minimum: 0, maximum: 999_999, description: 'ci only: this phase group alone' },
}, ['stage']);
export const stageJobsResponse = obj({
  run_id: S.uuid, run_attempt: { type: 'integer' }, run_status: { type: 'string', enum: RUN_STATUSES }, stage: { type: 'string', enum: DISPATCH_STAGES },
  group: { type: ['integer', 'null'] }, outcome: { type: 'string', enum: ['dispatch', 'done', 'failed'] },
  jobs: { type: 'array', items: jobDraftSchema }, awaiting: { type: 'array', items: { type: 'string' } }, timeout_ms: { type: 'integer' }, message: { type: 'string' },
});
export const jobReplyBody = obj({
  job_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' }, type: { type: 'string', enum: JOB_TYPES }, run_id: S.uuid,
  run_attempt: { type: 'integer', minimum: 1 }, ok: { type: 'boolean' }, result: {}, result_key: S.text(1024, 1),
  error: obj({ code: S.text(128), message: S.text(100_000), details: { type: 'object', additionalProperties: true } }, ['code', 'message']),
  delivery: { type: 'integer', minimum: 1 },
}, ['job_id', 'type', 'run_id', 'run_attempt', 'ok', 'delivery']);

export const claimResponse = obj({ attempt: { type: 'integer' }, task: taskResponse, steps: { type: 'array', items: stepResponse } });

// ---- Releases -------------------------------------------------------------------------------

export const createReleaseBody = obj({
  pipeline_run_id: S.uuid,
  repository: S.repository,
  project: S.project,
  commit_sha: S.commitSha,
  artifacts: {
    type: 'array', maxItems: 50,
    items: obj({
      name: S.project, type: { type: 'string', enum: ARTIFACT_TYPES }, tracking_oci_uri: S.uri,
      tracking_oci_digest: S.digest, primary_published_uri: S.uri,
    }, ['name', 'type', 'tracking_oci_uri', 'primary_published_uri']),
  },
  oci_uri: S.uri,
  oci_digest: S.digest,
  trigger: obj({ type: { type: 'string', enum: RELEASE_TRIGGER_TYPES }, branch: S.branch, tag: S.tag }, ['type']),
  tagging_strategy: { type: 'string', enum: ['monorepo', 'tag-all'] },
  aliases: { type: 'array', maxItems: 20, items: S.alias },
  release_number: { type: 'integer', minimum: 1, maximum: 2147483647 },
}, ['repository', 'project', 'commit_sha', 'artifacts']);

export const createReleaseResponse = obj({ id: S.uuid, release_number: { type: 'integer' }, oci_uri: { type: 'string' }, canonical_id: { type: 'string' } });

export const releaseSchema = obj({
  id: S.uuid, repository: { type: 'string' }, project: { type: 'string' }, commit_sha: { type: 'string' },
  release_number: { type: 'integer' }, pipeline_run_id: { type: ['string', 'null'] }, oci_uri: { type: 'string' },
  oci_digest: S.nullableString, created_at: S.time, created_by: { type: 'string' }, canonical_id: { type: 'string' },
  trigger: {
    anyOf: [obj({
      trigger_type: { type: 'string', enum: RELEASE_TRIGGER_TYPES }, branch: S.nullableString, tag: S.nullableString,
      triggered_by: { type: 'string' }, triggered_at: S.time,
    }), { type: 'null' }],
  },
  artifacts: {
    type: 'array',
    items: obj({
      id: S.uuid, artifact_name: { type: 'string' }, artifact_type: { type: 'string', enum: ARTIFACT_TYPES },
      tracking_oci_uri: { type: 'string' }, tracking_oci_digest: S.nullableString, primary_published_uri: { type: 'string' }, created_at: S.time,
    }),
  },
  aliases: { type: 'array', items: obj({ alias: { type: 'string' }, alias_type: { type: 'string', enum: ALIAS_TYPES } }) },
});

export const releaseSignaturesResponse = obj({
  release_id: S.uuid,
  release_number: { type: 'integer' },
  signatures: {
    type: 'array',
    description: 'one per artifact, by artifact name',
    items: obj({
      artifact_id: S.uuid, artifact_name: { type: 'string' }, tracking_oci_uri: { type: 'string' }, tracking_oci_digest: S.nullableString,
      status: {
        type: 'string', enum: SIGNATURE_STATUSES,
        description: 'verified: a signature on the tracking image (by digest) verifies with the platform\'s signing public key; unsigned: the image has no signature; invalid: signatures that do not verify with that key for this digest, or the image is not the recorded digest; unavailable: the registry could not be read (see reason)',
      },
      signature_digest: { ...S.nullableString, description: 'digest of the signature manifest (tag sha256-<hex>.sig) when verified, or invalid by the signatures found; else null' },
      reason: { ...S.nullableString, description: 'why the status is not verified; null when verified' },
    }),
  },
}, undefined, { description: 'beyond the seed: the signature status of each artifact\'s tracking image, read from the tracking registry when asked' });
export const releaseListResponse = obj({ releases: { type: 'array', items: releaseSchema }, total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' } });
export const pageQuery = obj({ limit: S.limit, offset: S.offset }, []);

export const repoProjectParams = obj({ owner: { type: 'string' }, name: { type: 'string' }, project: S.project });

// ---- Deployments & approvals ------------------------------------------------------------------

export const createDeploymentBody = obj({
  release_id: S.uuid, environment: S.environment, approval_id: S.uuid,
  freeze_override_reason: { ...S.text(2000, 1), description: 'beyond the seed: deploy through a frozen environment (needs deployments:override-freeze); kept in the audit trail and the commit' },
}, ['release_id', 'environment']);
export const createDeploymentResponse = obj({
  id: S.uuid, deployment_id: { type: 'string' }, gitops_commit_sha: S.nullableString,
  status: { type: 'string', enum: DEPLOYMENT_STATUSES },
});
export const deploymentSchema = obj({
  deployment_id: S.uuid, release_id: S.uuid, release_number: { type: 'integer' }, commit_sha: { type: 'string' },
  repository: { type: 'string' }, project: { type: 'string' }, environment: { type: 'string' },
  status: { type: 'string', enum: DEPLOYMENT_STATUSES }, deployed_at: S.time, deployed_by: { type: 'string' },
  gitops_commit_sha: S.nullableString, approval_id: { type: ['string', 'null'] }, error: S.nullableString,
  id: S.uuid, dispatched_at: S.nullableTime, attempts: { type: 'integer' }, finished_at: S.nullableTime,
  rollback: { type: 'boolean' }, rollback_from_release_id: { type: ['string', 'null'] }, freeze_override: S.nullableString,
});
export const rollbackTargetResponse = obj({
  release_id: S.uuid, release_number: { type: 'integer' }, commit_sha: { type: 'string' },
  aliases: { type: 'array', items: obj({ alias: { type: 'string' }, alias_type: { type: 'string' } }) },
  current: deploymentSchema,
});
const auditEntry = obj({
  id: { type: 'string' }, at: S.time, actor: { type: 'string' }, action: { type: 'string', enum: AUDIT_ACTIONS },
  environment: S.nullableString, repository: S.nullableString, project: S.nullableString,
  release_id: { type: ['string', 'null'] }, deployment_id: { type: ['string', 'null'] }, approval_id: { type: ['string', 'null'] },
  details: { type: 'object', additionalProperties: true },
});
export const auditQuery = obj({
  repository: S.repository, project: S.project, environment: S.environment, release_id: S.uuid, deployment_id: S.uuid,
  action: { type: 'string', enum: AUDIT_ACTIONS }, limit: S.limit, offset: S.offset,
}, []);
export const auditResponse = obj({ entries: { type: 'array', items: auditEntry }, total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' } });
export const environmentsResponse = obj({
  environments: {
    type: 'array',
    items: obj({
      name: { type: 'string' }, allowed_triggers: { type: 'array', items: { type: 'string' } }, allowed_branches: { type: 'array', items: { type: 'string' } },
      auto_deploy: { type: 'boolean' }, requires_approval: { type: 'boolean' }, approvals_required: { type: 'integer' },
      frozen: { type: 'boolean' }, freeze_reason: { type: 'string' },
    }, ['name', 'allowed_triggers', 'allowed_branches', 'auto_deploy', 'requires_approval', 'approvals_required', 'frozen']),
  },
});
export const deploymentHistoryResponse = obj({ deployments: { type: 'array', items: deploymentSchema }, total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' } });
export const deploymentParams = obj({ environment: S.environment, owner: { type: 'string' }, name: { type: 'string' }, project: S.project });

export const createApprovalBody = obj({
  release_id: S.uuid, environment: S.environment,
  justification: S.text(4000, 1),
});
const approvalFields = {
  approval_id: S.uuid, release_id: S.uuid, environment: { type: 'string' }, approver: { type: 'string' },
  approved_at: S.time, expires_at: S.nullableTime, justification: { type: 'string' },
  status: { type: 'string', enum: APPROVAL_STATUSES }, revoked_at: S.nullableTime, revoked_by: S.nullableString,
};
export const approvalSchema = obj(approvalFields);
export const createApprovalResponse = obj(approvalFields);
export const approvalStatusResponse = obj({ ...approvalFields, approvals: { type: 'array', items: approvalSchema } });

/** Beyond the seed: a manual release (`forge release create`) or the rebuild of one (`forge release retry`). */
export const createReleaseBuildBody = obj({
  repository: S.repository,
  project: S.project,
  commit_sha: S.commitSha,
  branch: S.branch,
  release_id: S.uuid,
}, []);

const artifactState = obj({
  status: { type: 'string', enum: ['pending', 'success', 'failed'] },
  dispatched_at: { type: 'string' },
  error: { type: 'string' },
  result: { type: 'object', additionalProperties: true },
}, ['status']);

export const releaseBuildSchema = obj({
  id: S.uuid, repository: { type: 'string' }, project: { type: 'string' }, commit_sha: { type: 'string' },
  branch: S.nullableString, pipeline_run_id: { type: ['string', 'null'] }, run_attempt: { type: ['integer', 'null'] },
  trigger: { type: 'object', additionalProperties: true },
  status: { type: 'string', enum: RELEASE_BUILD_STATUSES },
  plan: { anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }] },
  artifacts: { type: 'object', additionalProperties: artifactState },
  release_id: { type: ['string', 'null'] }, error_message: S.nullableString, created_by: { type: 'string' },
  created_at: S.time, updated_at: S.time, finished_at: { anyOf: [S.time, { type: 'null' }] },
  plan_dispatched_at: { anyOf: [S.time, { type: 'null' }] }, release_dispatched_at: { anyOf: [S.time, { type: 'null' }] },
});

export const releaseBuildListResponse = obj({ release_builds: { type: 'array', items: releaseBuildSchema }, total: { type: 'integer' } });

export const idParams = { type: 'object', properties: { id: S.uuid }, required: ['id'], additionalProperties: false } as const;

// ---- Dashboard support (beyond the seed) ------------------------------------------------------

export const meResponse = obj({
  subject: { type: 'string', description: 'the token\'s sub' },
  username: { type: 'string', description: 'the name Forge records on what you do: the token\'s preferred_username, else sub' },
  roles: { type: 'array', items: { type: 'string', enum: ROLES } },
  permissions: { type: 'array', items: { type: 'string', enum: PERMISSIONS } },
}, undefined, { description: 'beyond the seed: who the bearer token says you are and what you may do' });

const deployedRelease = obj({
  environment: { type: 'string' }, deployment_id: S.uuid, id: S.uuid, release_id: S.uuid, release_number: { type: 'integer' },
  deployed_by: { type: 'string' }, deployed_at: S.time, gitops_commit_sha: S.nullableString, rollback: { type: 'boolean' },
  approved_by: { type: 'array', items: { type: 'string' }, description: 'distinct approvers of the release for the environment whose approval was not revoked (expired ones included), earliest first' },
});
export const projectsResponse = obj({
  projects: {
    type: 'array',
    items: obj({
      repository: { type: 'string' }, project: { type: 'string' },
      releases: { type: 'integer', description: 'how many releases the project has' },
      latest_release: {
        anyOf: [obj({ id: S.uuid, release_number: { type: 'integer' }, commit_sha: { type: 'string' }, created_at: S.time }), { type: 'null' }],
        description: 'the highest-numbered release',
      },
      deployments: { type: 'array', items: deployedRelease, description: 'the active deployments, one per environment at most, in the order of GET /v1/environments' },
    }),
  },
}, undefined, { description: 'beyond the seed: every project with at least one release, by repository then project' });

export const authConfigResponse = obj({
  mode: { type: 'string', enum: ['dev', 'oidc'], description: 'dev: the embedded dev issuer (tokens from `forge dev-token` or the server\'s dev login link); oidc: an OIDC issuer' },
  issuer: { ...S.nullableString, description: 'the OIDC issuer to log in with (authorization code + PKCE); null in dev mode' },
  client_id: { ...S.nullableString, description: 'the dashboard\'s public client id (FORGE_UI_CLIENT_ID); null: paste a token instead' },
  scopes: { type: 'string', description: 'space-separated scopes to request (FORGE_UI_SCOPES)' },
  resource: { ...S.nullableString, description: 'RFC 8707 resource indicator to send (FORGE_UI_RESOURCE), or null' },
}, undefined, { description: 'beyond the seed: how the dashboard logs in; public (no token)' });

// ---- Retention (issue 9) --------------------------------------------------------------------

export const retentionBody = obj({
  dry_run: { type: 'boolean', default: false, description: 'count what would be deleted, delete nothing' },
}, []);

const count = { type: 'integer', minimum: 0 } as const;
export const retentionResponse = obj({
  dry_run: { type: 'boolean' },
  runs_older_than: { ...S.nullableTime, description: 'finished runs that completed before this are deleted; null: run retention is off' },
  logs_older_than: { ...S.nullableTime, description: 'step logs of finished runs that completed before this are deleted; null: log retention is off' },
  runs_deleted: count, steps_deleted: count, runs_logs_expired: count, steps_logs_expired: count,
  objects_deleted: { ...count, description: 'objects (logs, log parts, job results) deleted from the object store' },
  bytes_deleted: count,
  started_at: S.time, finished_at: S.time,
}, undefined, { description: 'beyond the seed: what a retention pass deleted (or, dry, would delete); releases, deployments and approvals are never deleted' });
