/**
 * Argo Workflows as the run orchestrator (issue 9): submits a run's Workflow through the Argo Server
 * REST API, `POST {server}/api/v1/workflows/{namespace}` with `{"namespace", "workflow"}` and the
 * bearer token. Lives beside the job queues: like them it is how jobs get run, not what they do.
 *
 * 200 → submitted (its metadata.name is recorded on the run); 409 → a Workflow of that name exists
 * (an earlier submission whose answer was lost: deterministic names make that "done"); 5xx, 429 and
 * network errors → RetryableError (the dispatcher tries again); any other answer → refused.
 */
import { RetryableError } from '../domain/errors.ts';
import type { PipelineRun } from '../domain/entities.ts';
import { renderRunWorkflow, workflowName, type WorkflowOptions } from '../engine/argo-workflow.ts';
import type { RunOrchestrator } from '../engine/ports.ts';

export interface ArgoOrchestratorOptions extends WorkflowOptions {
  /** The Argo Server, e.g. https://argo.example.com (its /api/v1 is appended). */
  serverUrl: string;
  /** Bearer token of a service account allowed to create Workflows in the namespace; undefined = none sent. */
  token: string | undefined;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

export function argoOrchestrator(options: ArgoOrchestratorOptions): RunOrchestrator {
  const endpoint = `${options.serverUrl.replace(/\/+$/, '')}/api/v1/workflows/${encodeURIComponent(options.namespace)}`;
  return {
    kind: 'argo',
    workflowName,
    async submit(run: PipelineRun): Promise<string> {
      const workflow = renderRunWorkflow(run, options);
      let response: Response;
      try {
        response = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
          body: JSON.stringify({ namespace: options.namespace, workflow }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
      } catch (error) {
        throw new RetryableError(`the Argo Server at ${options.serverUrl} did not answer: ${(error as Error).message}`, undefined, { cause: error });
      }
      const text = await response.text();
      const body = parse(text);
      const name = workflowName(run);
      if (response.ok) return typeof body?.metadata?.name === 'string' ? body.metadata.name : name;
      if (response.status === 409) return name;
      const why = `POST ${endpoint}: ${response.status} ${body?.message ?? text.slice(0, 300)}`;
      if (response.status >= 500 || response.status === 429) throw new RetryableError(why);
      throw new Error(why);
    },
  };
}

function parse(text: string): { metadata?: { name?: unknown }; message?: string } | undefined {
  try {
    return JSON.parse(text) as { metadata?: { name?: unknown }; message?: string };
  } catch {
    return undefined;
  }
}
