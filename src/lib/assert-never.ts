/** Exhaustiveness check for closed unions: a new member that is not handled fails type-checking. */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
