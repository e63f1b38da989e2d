/** The WWW-Authenticate challenges an OCI registry sends with a 401 (RFC 7235 auth-params). */

export type Challenge =
  | { scheme: 'basic' }
  | { scheme: 'bearer'; realm: string; service?: string; scope?: string; error?: string };

/** Parses a WWW-Authenticate header (`Bearer realm="…",service="…",scope="repository:a:pull,push"`). */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  const params: Record<string, string> = {};
  for (const [, key, quoted, bare] of match[2]!.matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    params[key!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare ?? '';
  }
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer' || !params.realm) return undefined;
  return {
    scheme: 'bearer',
    realm: params.realm,
    ...(params.service !== undefined ? { service: params.service } : {}),
    ...(params.scope !== undefined ? { scope: params.scope } : {}),
    ...(params.error !== undefined ? { error: params.error } : {}),
  };
}
