/**
 * Where step logs live in the object store (digest §2.6): `pipeline-runs/{run}/logs/{phase}/{project}/{step}.log`.
 * A task run again (redelivery, retry) writes attempt n ≥ 2 beside it as `{step}.attempt-{n}.log`,
 * so an earlier attempt's log is kept. While a step runs, its output is flushed as numbered part
 * objects under `{key}.parts/`; when it ends, the whole log is written to `{key}` and the parts go.
 */
export function stepLogKey(runId: string, phase: string, project: string, step: string, attempt: number): string {
  const base = `${runLogsPrefix(runId)}${phase}/${project}/${step}`;
  return attempt <= 1 ? `${base}.log` : `${base}.attempt-${attempt}.log`;
}

export const logPartsPrefix = (key: string) => `${key}.parts/`;
export const logPartKey = (key: string, seq: number) => `${logPartsPrefix(key)}${String(seq).padStart(8, '0')}`;

/** Every object of a run (logs, log parts, job results: domain/jobs.ts resultKey): what retention deletes with the run. */
export const runObjectsPrefix = (runId: string) => `pipeline-runs/${runId}/`;
/** The run's step logs (every attempt, and parts): what log retention deletes. */
export const runLogsPrefix = (runId: string) => `${runObjectsPrefix(runId)}logs/`;
