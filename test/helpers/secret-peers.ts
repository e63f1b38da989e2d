/**
 * Local HTTP peers for the secret providers that have no server on this machine:
 *
 * - AWS Secrets Manager's JSON 1.1 protocol as the real AWS SDK speaks it: POST / with
 *   `X-Amz-Target: secretsmanager.GetSecretValue` and a JSON body {SecretId, VersionId?,
 *   VersionStage?}; the answer {ARN, Name, VersionId, SecretString, VersionStages, CreatedDate}, or
 *   400 {__type: "ResourceNotFoundException" | "AccessDeniedException", message}. A request without a
 *   SigV4 Authorization header (no credentials) is refused like AWS does.
 * - Vault's KV v2 read: GET /v1/<mount>/data/<path>[?version=n] with X-Vault-Token; 404 {errors: []}
 *   when there is no such entry, 403 {errors: ["permission denied"]} for another token.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SecretPeer {
  url: string;
  /** What was asked, in order: secret ids (aws) or paths with mount (vault). */
  asked: string[];
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const close = (server: Server) => new Promise<void>((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
});

async function bodyOf(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text;
}

/** `secrets`: SecretId → SecretString (AWSCURRENT), or versions by id (the last one is AWSCURRENT). `denied`: ids answered AccessDeniedException. */
export async function startAwsSecretsPeer(secrets: Record<string, string | Record<string, string>>, options: { denied?: string[] } = {}): Promise<SecretPeer> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const body = await bodyOf(req);
      const fail = (status: number, type: string, message: string) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() }).end(JSON.stringify({ __type: type, message }));
      };
      if (req.method !== 'POST' || req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') return fail(400, 'UnknownOperationException', `unknown operation ${String(req.headers['x-amz-target'])}`);
      if (!/^AWS4-HMAC-SHA256 Credential=/.test(req.headers.authorization ?? '')) return fail(400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      const input = JSON.parse(body) as { SecretId: string; VersionId?: string; VersionStage?: string };
      asked.push(input.SecretId);
      if (options.denied?.includes(input.SecretId)) return fail(400, 'AccessDeniedException', `User is not authorized to perform: secretsmanager:GetSecretValue on resource: ${input.SecretId}`);
      const entry = secrets[input.SecretId];
      if (entry === undefined) return fail(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      const versions = typeof entry === 'string' ? { v1: entry } : entry;
      const ids = Object.keys(versions);
      const current = ids[ids.length - 1]!;
      const previous = ids[ids.length - 2];
      const id = input.VersionId ?? (input.VersionStage === 'AWSPREVIOUS' ? previous : input.VersionStage === undefined || input.VersionStage === 'AWSCURRENT' ? current : undefined);
      const value = id === undefined ? undefined : versions[id];
      if (id === undefined || value === undefined) return fail(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret value for VersionId or VersionStage.");
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() }).end(JSON.stringify({
        ARN: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${input.SecretId}-AbCdEf`, Name: input.SecretId, VersionId: id,
        SecretString: value, VersionStages: [id === current ? 'AWSCURRENT' : 'AWSPREVIOUS'], CreatedDate: 1_700_000_000,
      }));
    })();
  });
  const url = await listen(server);
  return { url, asked, close: () => close(server) };
}

/** `entries`: "<mount>/<path>" → the KV data, or data by version number (the highest is the current one). */
export async function startVaultPeer(token: string, entries: Record<string, Record<string, unknown> | Record<number, Record<string, unknown> | null>>): Promise<SecretPeer> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://vault');
    const answer = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const match = /^\/v1\/(.+?)\/data\/(.+)$/.exec(url.pathname);
    if (req.method !== 'GET' || !match) return answer(404, { errors: [] });
    if (req.headers['x-vault-token'] !== token) return answer(403, { errors: ['permission denied'] });
    const key = `${match[1]}/${decodeURIComponent(match[2]!)}`;
    asked.push(key);
    const entry = entries[key];
    if (entry === undefined) return answer(404, { errors: [] });
    const versioned = Object.keys(entry).every((k) => /^\d+$/.test(k));
    const versions = (versioned ? entry : { 1: entry }) as Record<number, Record<string, unknown> | null>;
    const latest = Math.max(...Object.keys(versions).map(Number));
    const version = Number(url.searchParams.get('version') ?? latest);
    if (!(version in versions)) return answer(404, { errors: [] });
    const data = versions[version] ?? null;
    return answer(200, {
      request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0,
      data: { data, metadata: { created_time: '2026-01-01T00:00:00Z', deletion_time: data ? '' : '2026-01-02T00:00:00Z', destroyed: false, version } },
    });
  });
  const url = await listen(server);
  return { url, asked, close: () => close(server) };
}
