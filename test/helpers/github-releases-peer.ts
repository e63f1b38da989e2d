/**
 * A local stand-in for GitHub's releases API (api.github.com and uploads.github.com on one HTTP
 * server), with state: releases by tag, assets with their bytes and sha256 `digest` (as github.com
 * reports it; `reportDigests = false` acts like an older GitHub Enterprise). `fail(...)` makes the
 * next matching requests answer an error with GitHub's `{message}` body; every request is recorded.
 * (test/helpers/github-peer.ts answers one fixed status and parses every body as JSON, so it
 * cannot hold releases or take binary uploads.)
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PeerAsset { id: number; name: string; body: Buffer; contentType: string }
export interface PeerRelease { id: number; tag: string; commitish: string; assets: PeerAsset[] }

export interface GitHubReleasesPeer {
  url: string;
  requests: { method: string; path: string; authorization: string | undefined }[];
  releases: Map<string, PeerRelease>;
  reportDigests: boolean;
  /**
   * The next `times` requests matching `method path-prefix` (e.g. `POST /uploads`) answer `status`;
   * with `processed` the request is carried out first and only its answer is replaced (a lost answer).
   */
  fail(status: number, times: number, match?: string, options?: { headers?: Record<string, string>; processed?: boolean }): void;
  /** Forgets requests, releases and faults; digests are reported again. */
  reset(): void;
  close(): Promise<void>;
}

export async function startGitHubReleasesPeer(): Promise<GitHubReleasesPeer> {
  let nextId = 1;
  const faults: { status: number; times: number; match: string; headers: Record<string, string>; processed: boolean }[] = [];

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', peer.url);
      const method = req.method ?? '';
      peer.requests.push({ method, path: url.pathname + url.search, authorization: req.headers.authorization });
      const answer = (status: number, data?: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(data === undefined ? '' : JSON.stringify(data));
      };
      const fault = faults.find((f) => `${method} ${url.pathname}`.startsWith(f.match) && f.times > 0);
      if (fault) fault.times -= 1;
      const faulty = () => answer(fault!.status, { message: `${fault!.status} from the test peer` }, fault!.headers);
      if (fault && !fault.processed) return faulty();
      const send: typeof answer = (...args) => (fault ? faulty() : answer(...args));
      const releaseJson = (r: PeerRelease, owner: string, repo: string) => ({
        id: r.id, tag_name: r.tag, html_url: `${peer.url}/${owner}/${repo}/releases/tag/${r.tag}`,
        upload_url: `${peer.url}/uploads/repos/${owner}/${repo}/releases/${r.id}/assets{?name,label}`,
      });
      const assetJson = (a: PeerAsset, owner: string, repo: string, r: PeerRelease) => ({
        id: a.id, name: a.name, size: a.body.length,
        browser_download_url: `${peer.url}/${owner}/${repo}/releases/download/${r.tag}/${a.name}`,
        digest: peer.reportDigests ? `sha256:${createHash('sha256').update(a.body).digest('hex')}` : null,
      });
      const byId = (id: number) => [...peer.releases.values()].find((r) => r.id === id);
      let m: RegExpMatchArray | null;
      const path = url.pathname;
      if (method === 'GET' && (m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/releases\/tags\/(.+)$/))) {
        const r = peer.releases.get(decodeURIComponent(m[3]!));
        return r ? send(200, releaseJson(r, m[1]!, m[2]!)) : send(404, { message: 'Not Found' });
      }
      if (method === 'POST' && (m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/releases$/))) {
        const input = JSON.parse(body.toString('utf8')) as { tag_name: string; target_commitish: string };
        if (peer.releases.has(input.tag_name)) return send(422, { message: 'Validation Failed', errors: [{ code: 'already_exists', field: 'tag_name' }] });
        const r: PeerRelease = { id: nextId++, tag: input.tag_name, commitish: input.target_commitish, assets: [] };
        peer.releases.set(r.tag, r);
        return send(201, releaseJson(r, m[1]!, m[2]!));
      }
      if (method === 'GET' && (m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/releases\/(\d+)\/assets$/))) {
        const r = byId(Number(m[3]));
        if (!r) return send(404, { message: 'Not Found' });
        const perPage = Number(url.searchParams.get('per_page') ?? 30);
        const page = Number(url.searchParams.get('page') ?? 1);
        return send(200, r.assets.slice((page - 1) * perPage, page * perPage).map((a) => assetJson(a, m![1]!, m![2]!, r)));
      }
      if (method === 'POST' && (m = path.match(/^\/uploads\/repos\/([^/]+)\/([^/]+)\/releases\/(\d+)\/assets$/))) {
        const r = byId(Number(m[3]));
        const name = url.searchParams.get('name');
        if (!r || !name) return send(404, { message: 'Not Found' });
        if (r.assets.some((a) => a.name === name)) return send(422, { message: 'Validation Failed', errors: [{ code: 'already_exists', field: 'name' }] });
        const asset: PeerAsset = { id: nextId++, name, body, contentType: req.headers['content-type'] ?? '' };
        r.assets.push(asset);
        return send(201, assetJson(asset, m[1]!, m[2]!, r));
      }
      if (method === 'DELETE' && (m = path.match(/^\/repos\/([^/]+)\/([^/]+)\/releases\/assets\/(\d+)$/))) {
        for (const r of peer.releases.values()) r.assets = r.assets.filter((a) => a.id !== Number(m![3]));
        return send(204);
      }
      send(404, { message: `the test peer has no ${method} ${path}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const peer: GitHubReleasesPeer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: [],
    releases: new Map(),
    reportDigests: true,
    fail(status, times, match = '', options = {}) {
      faults.push({ status, times, match, headers: options.headers ?? {}, processed: options.processed ?? false });
    },
    reset() {
      peer.requests.length = 0;
      peer.releases.clear();
      peer.reportDigests = true;
      faults.length = 0;
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    }),
  };
  return peer;
}
