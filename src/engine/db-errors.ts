/** Recognises PostgreSQL's unique-violation (SQLSTATE 23505) from pg and PGlite alike. */
export function uniqueViolation(error: unknown): string | undefined {
  const e = error as { code?: unknown; constraint?: unknown };
  if (e && e.code === '23505') return typeof e.constraint === 'string' ? e.constraint : '';
  return undefined;
}
