/** Waiting for a run to finish, as the end-to-end tests do. */
import type { EngineContext } from '../../src/engine/context.ts';
import { getRunTree, type RunTree } from '../../src/engine/runs.ts';
import { isRunTerminal } from '../../src/domain/statuses.ts';

/** The run's tree once it is success, failed or cancelled; throws after `timeoutMs`. */
export async function finishedRun(ctx: EngineContext, id: string, timeoutMs = 120_000): Promise<RunTree> {
  const start = Date.now();
  for (;;) {
    const tree = await getRunTree(ctx, id);
    if (isRunTerminal(tree.status)) return tree;
    if (Date.now() - start > timeoutMs) throw new Error(`run ${id} still ${tree.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `read` until `done` holds for its value; returns that value, throws after `timeoutMs`. */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met after ${timeoutMs} ms; last value: ${String(JSON.stringify(value)).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A deployment once it is no longer pending (GET /v1/deployments/{id} through `get`). */
export function settledDeployment<T extends { status: string }>(get: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  return eventually(get, (d) => d.status !== 'pending', timeoutMs);
}
