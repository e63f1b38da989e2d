/**
 * Argo Workflows as the run orchestrator (issue 9): submits a run's Workflow through the Argo Server
 * REST API, `POST {server}/api/v1/workflows/{namespace}` with `{"namespace", "workflow"}` and the
 * bearer token. Lives beside the job queues: like them it is how jobs get run, not what they do.
 *
 * 200 → submitted (its metadata.name is recorded on the run); 409 → a Workflow of that name exists
 * (an earlier submission whose answer was lost: deterministic names make that "done"); 5xx, 429 and
 * network errors → RetryableError (the dispatcher tries again); any other answer → refused.
 * The API's dispatcher also lists the run Workflows' phases (one paged GET, only the fields it
 * needs) to end a run whose Workflow failed, was stopped or was deleted in Argo (decision 210).
 */
import { RetryableError } from '../domain/errors.ts';
import type { PipelineRun } from '../domain/entities.ts';
import { WORKFLOW_LABELS, renderRunWorkflow, workflowName, type WorkflowOptions } from '../engine/argo-workflow.ts';
import type { RunOrchestrator, WorkflowState } from '../engine/ports.ts';

export interface ArgoOrchestratorOptions extends WorkflowOptions {
  /** The Argo Server, e.g. https://argo.example.com (its /api/v1 is appended). */
  serverUrl: string;
  /** Bearer token of a service account allowed to create, list and get Workflows in the namespace; undefined = none sent. */
  token: string | undefined;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

export function argoOrchestrator(options: ArgoOrchestratorOptions): RunOrchestrator {
  const endpoint = `${options.serverUrl.replace(/\/+$/, '')}/api/v1/workflows/${encodeURIComponent(options.namespace)}`;
  const call = async (url: string, init: RequestInit = {}): Promise<Response> => {
    try {
      return await fetch(url, {
        ...init,
        headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}), ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new RetryableError(`the Argo Server at ${options.serverUrl} did not answer: ${(error as Error).message}`, undefined, { cause: error });
    }
  };
  const refusal = (method: string, url: string, response: Response, text: string): Error => {
    const why = `${method} ${url}: ${response.status} ${parse(text)?.message ?? text.slice(0, 300)}`;
    return response.status >= 500 || response.status === 429 ? new RetryableError(why) : new Error(why);
  };
  return {
    kind: 'argo',
    workflowName,
    async workflowStates() {
      // Only the fields needed, a page at a time: the namespace keeps finished Workflows too.
      const states = new Map<string, WorkflowState>();
      let next = '';
      do {
        const query = new URLSearchParams({
          'listOptions.labelSelector': WORKFLOW_LABELS.run, 'listOptions.limit': '500',
          fields: 'metadata,items.metadata.name,items.status.phase,items.status.message',
          ...(next ? { 'listOptions.continue': next } : {}),
        });
        const url = `${endpoint}?${query.toString()}`;
        const response = await call(url);
        const text = await response.text();
        if (!response.ok) throw refusal('GET', endpoint, response, text);
        const list = parse(text) as { items?: { metadata?: { name?: unknown }; status?: { phase?: unknown; message?: unknown } }[] | null; metadata?: { continue?: unknown } } | undefined;
        for (const item of list?.items ?? []) {
          if (typeof item.metadata?.name !== 'string') continue;
          states.set(item.metadata.name, {
            phase: typeof item.status?.phase === 'string' ? item.status.phase : '',
            message: typeof item.status?.message === 'string' ? item.status.message : null,
          });
        }
        next = typeof list?.metadata?.continue === 'string' ? list.metadata.continue : '';
      } while (next);
      return states;
    },
    async workflowExists(name) {
      const url = `${endpoint}/${encodeURIComponent(name)}?${new URLSearchParams({ fields: 'metadata.name' }).toString()}`;
      const response = await call(url);
      const text = await response.text();
      if (response.status === 404) return false;
      if (!response.ok) throw refusal('GET', `${endpoint}/${name}`, response, text);
      return true;
    },
    async submit(run: PipelineRun): Promise<string> {
      const workflow = renderRunWorkflow(run, options);
      const response = await call(endpoint, { method: 'POST', body: JSON.stringify({ namespace: options.namespace, workflow }) });
      const text = await response.text();
      const body = parse(text);
      const name = workflowName(run);
      if (response.ok) return typeof body?.metadata?.name === 'string' ? body.metadata.name : name;
      if (response.status === 409) return name;
      throw refusal('POST', endpoint, response, text);
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
