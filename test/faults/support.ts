/**
 * What the fault tests share. Each prints one JSON line per test, `{"fault": <n>, "case": ...,
 * ...figures}`, so docs/reliability.md can be filled from a test run's output (grep '"fault":').
 */
import { createServer } from 'node:net';

export function reportFigures(fault: number, name: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ fault, case: name, ...figures }));
}

/** Milliseconds since `start`, to the nearest millisecond. */
export const since = (start: number): number => Math.round(performance.now() - start);

/** How many of `values` are each value: `{"201": 1, "200": 9}`. */
export function tally(values: readonly (string | number)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[String(value)] = (counts[String(value)] ?? 0) + 1;
  return counts;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on loopback, for a server that is started again on the same port after a kill. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The error code under fetch's "fetch failed" (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET, …). */
export function networkCode(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as Error).message;
}
