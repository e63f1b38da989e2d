import { sql, type RawBuilder } from 'kysely';

/** jsonb parameter: sent as text and cast, which pg and PGlite both treat the same way. */
export function jsonb(value: unknown): RawBuilder<string | null> {
  return value === null || value === undefined ? sql<null>`NULL` : sql<string>`CAST(${JSON.stringify(value)} AS jsonb)`;
}
