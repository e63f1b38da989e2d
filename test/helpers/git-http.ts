/**
 * A smart-HTTP git server for tests: `git http-backend` behind node:http, as a hosted git remote
 * (GitHub, GitLab) would be. Options: Basic auth; a test hook that can refuse a request (a push that
 * the "server" rejects, a flaky network); `/strict/…` acts as an old server that refuses wants of
 * commits that are not a branch or tag tip (protocol v0 without uploadpack.allowReachableSHA1InWant);
 * `/hang/…` never answers.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { git } from '../gitops/git-helpers.ts';

export interface GitHttpRequest {
  method: string;
  /** The repository path and service, e.g. `/acme/gitops.git/git-receive-pack`. */
  path: string;
  /** True for the POST that carries a push. */
  push: boolean;
}

export interface GitHttpOptions {
  user?: string;
  password?: string;
  /** Return an HTTP status to answer with instead of serving the request (e.g. 503 for a push). */
  intercept?: (request: GitHttpRequest) => number | undefined;
}

export interface GitHttpServer {
  server: Server;
  origin: string;
  /** Requests served or refused so far. */
  requests: GitHttpRequest[];
  stop(): Promise<void>;
}

export async function startGitHttpServer(projectRoot: string, options: GitHttpOptions = {}): Promise<GitHttpServer> {
  const { user, password } = options;
  const expected = user !== undefined ? `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}` : undefined;
  const requests: GitHttpRequest[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/hang/')) return;
    if (expected !== undefined && req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="forge"' }).end();
      return;
    }
    const strict = url.pathname.startsWith('/strict/');
    const pathInfo = strict ? url.pathname.slice('/strict'.length) : url.pathname;
    const request = { method: req.method ?? 'GET', path: pathInfo, push: req.method === 'POST' && pathInfo.endsWith('/git-receive-pack') };
    requests.push(request);
    const refused = options.intercept?.(request);
    if (refused !== undefined) {
      req.resume();
      res.writeHead(refused).end('refused by the test\n');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (strict && req.method === 'POST') {
        const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('latin1');
        const tips = git(join(projectRoot, pathInfo.replace(/\/git-upload-pack$/, '')), 'for-each-ref', '--format=%(objectname)');
        if ([...text.matchAll(/want ([0-9a-f]{40})/g)].some(([, want]) => !tips.includes(want!))) {
          res.writeHead(500).end('not our ref');
          return;
        }
      }
      const backend = spawn('git', ['http-backend'], {
        env: {
          PATH: process.env.PATH,
          GIT_CONFIG_GLOBAL: '/dev/null',
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_PROJECT_ROOT: projectRoot,
          GIT_HTTP_EXPORT_ALL: '1',
          PATH_INFO: pathInfo,
          QUERY_STRING: url.search.slice(1),
          REQUEST_METHOD: req.method ?? 'GET',
          CONTENT_TYPE: req.headers['content-type'] ?? '',
          CONTENT_LENGTH: String(body.length),
          HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
          ...(typeof req.headers['git-protocol'] === 'string' ? { GIT_PROTOCOL: req.headers['git-protocol'] } : {}),
          // A user enables receive-pack (pushes), as an authenticated user would on a hosted remote.
          REMOTE_USER: user ?? 'forge-test',
          REMOTE_ADDR: '127.0.0.1',
        },
      });
      // git may answer (and exit) before it has read the whole request body.
      backend.stdin.on('error', () => undefined);
      backend.stdin.end(body);
      let head = Buffer.alloc(0);
      let inBody = false;
      backend.stdout.on('data', (chunk: Buffer) => {
        if (inBody) return void res.write(chunk);
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headers: Record<string, string> = {};
        for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        const { status = '200', ...rest } = headers;
        res.writeHead(Number.parseInt(status, 10), rest);
        res.write(head.subarray(end + 4));
        inBody = true;
      });
      backend.stdout.on('end', () => res.end());
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  return {
    server, requests, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((closed) => server.close(() => closed()));
    },
  };
}
