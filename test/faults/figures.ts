/**
 * What every fault test prints: one JSON line per test, `{"fault": <n>, "case": ..., ...figures}`,
 * so docs/reliability.md can be filled from a test run's output (grep '"fault":').
 */
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
