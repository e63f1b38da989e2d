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
