/** Submitting a run's Workflow through the Argo Server REST API, against a local peer that records the request. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RetryableError } from '../../src/domain/errors.ts';
import type { PipelineRun } from '../../src/domain/entities.ts';
import { argoOrchestrator, type ArgoOrchestratorOptions } from '../../src/queue/argo.orchestrator.ts';
import { startArgoPeer, type ArgoPeer } from './argo-peer.ts';
import { dagInOrder, validateWorkflow } from './workflow.ts';
import { freePort } from '../faults/support.ts';

const RUN = {
  id: '5d1e6f2a-3b4c-4d5e-8f90-a1b2c3d4e5f6', attempt: 1, repository: 'acme/mono', commit_sha: 'b'.repeat(40), branch: 'main',
} as PipelineRun;

describe('Argo Workflow submission (local recording peer)', () => {
  let peer: ArgoPeer;
  let options: ArgoOrchestratorOptions;
  beforeAll(async () => {
    peer = await startArgoPeer();
    options = {
      serverUrl: `${peer.url}/`, token: 'argo-token-1', namespace: 'catalyst-forge-pipelines', serviceAccount: 'pipeline-workflow-runner',
      image: 'ghcr.io/acme/forge:1.2.3', parallelism: 100, activeDeadlineSeconds: 86_400, env: [{ name: 'NATS_URL', value: 'nats://nats:4222' }],
    };
  });
  afterAll(() => peer.close());
  beforeEach(() => {
    peer.requests.length = 0;
    peer.answer = undefined;
  });

  it('POSTs {namespace, workflow} to /api/v1/workflows/<namespace> with the bearer token; the answer\'s metadata.name is the name', async () => {
    peer.answer = (request) => ({ status: 200, body: { ...(request.body as { workflow: object }).workflow, metadata: { name: 'as-argo-named-it', namespace: 'catalyst-forge-pipelines' } } });
    const name = await argoOrchestrator(options).submit(RUN);
    expect(name).toBe('as-argo-named-it');
    expect(peer.requests).toHaveLength(1);
    const [request] = peer.requests;
    expect(request!.method).toBe('POST');
    expect(request!.path).toBe('/api/v1/workflows/catalyst-forge-pipelines');
    expect(request!.headers.authorization).toBe('Bearer argo-token-1');
    expect(request!.headers['content-type']).toBe('application/json');
    const body = request!.body as { namespace: string; workflow: { metadata: { name: string } } };
    expect(body.namespace).toBe('catalyst-forge-pipelines');
    expect(body.workflow.metadata.name).toBe(`forge-run-${RUN.id}`);
    expect(() => validateWorkflow(body.workflow)).not.toThrow();
    expect(dagInOrder(body.workflow).map((n) => n.name)).toEqual(['discovery', 'ci', 'artifact', 'release', 'deployment']);
  });

  it('sends no Authorization header without a token', async () => {
    await argoOrchestrator({ ...options, token: undefined }).submit(RUN);
    expect(peer.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('409 (the Workflow exists: an earlier submission whose answer was lost) counts as submitted under the deterministic name', async () => {
    peer.answer = () => ({ status: 409, body: { code: 6, message: 'workflows.argoproj.io "x" already exists' } });
    await expect(argoOrchestrator(options).submit({ ...RUN, attempt: 3 })).resolves.toBe(`forge-run-${RUN.id}-a3`);
  });

  it('5xx and 429 are retryable; a refusal (403) is not, and says what Argo said', async () => {
    peer.answer = () => ({ status: 503, body: { message: 'server is starting' } });
    const unavailable = await argoOrchestrator(options).submit(RUN).catch((error: unknown) => error);
    expect(unavailable).toBeInstanceOf(RetryableError);
    expect((unavailable as Error).message).toMatch(/503 server is starting/);
    peer.answer = () => ({ status: 429, body: { message: 'slow down' } });
    await expect(argoOrchestrator(options).submit(RUN)).rejects.toBeInstanceOf(RetryableError);
    peer.answer = () => ({ status: 403, body: { code: 7, message: 'workflows.argoproj.io is forbidden: User "system:serviceaccount:x" cannot create resource' } });
    const refused = await argoOrchestrator(options).submit(RUN).catch((error: unknown) => error);
    expect(refused).not.toBeInstanceOf(RetryableError);
    expect((refused as Error).message).toMatch(/403 workflows\.argoproj\.io is forbidden/);
  });

  it('an Argo Server that does not answer is retryable', async () => {
    const port = await freePort();
    const error = await argoOrchestrator({ ...options, serverUrl: `http://127.0.0.1:${port}` }).submit(RUN).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toMatch(/did not answer/);
  });
});
