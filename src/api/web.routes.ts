/**
 * The dashboard (beyond the seed): the built single-page app under `root` (index.html + assets/),
 * served at `/`, and GET /v1/auth/config telling it how to log in.
 *
 * - Files under assets/ have content hashes in their names: cached for a year, immutable. Anything
 *   else (index.html, favicon…) is revalidated on every use (no-cache).
 * - A GET/HEAD that no route or file answers, outside the API (/v1, /healthz, /readyz, /metrics)
 *   and assets/, whose last segment has no file extension, is a dashboard route: index.html.
 * - HTML carries a strict Content-Security-Policy (the OIDC issuer's origin is let in for the login).
 * - With no index.html (the dashboard not built), those pages answer 503 saying how to build it;
 *   the API keeps working. index.html is read on each request, so building later needs no restart.
 * Path checks (traversal, NUL, dot files) are @fastify/static's; whatever it refuses is a 404.
 */
import { readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, handleError } from './errors.ts';
import { authConfigResponse, errorResponses } from './schemas.ts';

/** GET /v1/auth/config: how the dashboard logs in (authorization code + PKCE as a public client, or a pasted token). */
export interface UiAuthConfig {
  mode: 'dev' | 'oidc';
  issuer: string | null;
  client_id: string | null;
  scopes: string;
  resource: string | null;
}

export interface WebOptions {
  /** The built dashboard: index.html and assets/. */
  root: string;
  authConfig: UiAuthConfig;
}

const NOT_APP = ['/v1', '/healthz', '/readyz', '/metrics', '/assets'];
/** A last path segment ending like `.js`, `.png`, `.map` names a file; `v1.2.0` (a release alias) does not. */
const FILE_EXTENSION = /\.[A-Za-z][A-Za-z0-9]*$/;

export function contentSecurityPolicy(issuer: string | null): string {
  const login = issuer ? ` ${new URL(issuer).origin}` : '';
  return [
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
    `connect-src 'self'${login}`, "frame-ancestors 'none'", "base-uri 'none'", `form-action 'self'${login}`,
  ].join('; ');
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Forge: dashboard not built</title></head>
<body><h1>The Forge dashboard is not built</h1>
<p>Run <code>npm run build:web</code>, then reload this page. The API (<a href="/v1/openapi.json">/v1</a>) works meanwhile.</p>
</body></html>
`;

/** Whether a path (decoded, without query) is one of the dashboard's own routes. */
export function isDashboardRoute(path: string): boolean {
  if (NOT_APP.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return false;
  // Nothing of the app looks like an attempt to leave the root: such paths stay 404s.
  if (/[\0\\]|(^|\/)\.\.(\/|$)/.test(path)) return false;
  return !FILE_EXTENSION.test(path.slice(path.lastIndexOf('/') + 1));
}

function decodedPath(url: string): string | undefined {
  try {
    return decodeURIComponent(url.split('?')[0] ?? '');
  } catch {
    return undefined;
  }
}

export function webRoutes(options: WebOptions) {
  const csp = contentSecurityPolicy(options.authConfig.issuer);
  const htmlHeaders = { 'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

  async function sendIndex(reply: FastifyReply): Promise<FastifyReply> {
    let html: Buffer;
    try {
      html = await readFile(join(options.root, 'index.html'));
    } catch {
      return reply.status(503).headers({ ...htmlHeaders, 'cache-control': 'no-store' }).type('text/html; charset=utf-8').send(NOT_BUILT);
    }
    return reply.headers({ ...htmlHeaders, 'cache-control': 'no-cache' }).type('text/html; charset=utf-8').send(html);
  }

  /** What @fastify/static's checks refuse (400 bad path, 403 traversal or dot file) is a plain 404. */
  function fileError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const status = error.statusCode ?? (error as { status?: number }).status ?? 500;
    if (status === 400 || status === 403 || status === 404) {
      return reply.status(404).send(errorBody('not_found', `no file ${request.url.split('?')[0]}`, {}));
    }
    if (status > 400 && status < 500) return reply.status(status).send(errorBody('validation_error', error.message, {}));
    return handleError(error, request, reply);
  }

  const routes: FastifyPluginAsync = async (app) => {
    app.get('/v1/auth/config', {
      config: { public: true },
      schema: { summary: 'How the dashboard logs in (beyond the seed; no token needed)', tags: ['auth'], security: [], response: { 200: authConfigResponse, ...errorResponses } },
    }, async () => options.authConfig);

    await app.register(async (files) => {
      files.setErrorHandler(fileError);
      await files.register(fastifyStatic, {
        root: options.root,
        index: false,
        dotfiles: 'ignore',
        // The build writes .br and .gz beside each JS/CSS file; sent when the browser accepts them.
        preCompressed: true,
        cacheControl: false,
        setHeaders(res, path) {
          const file = relative(options.root, path);
          res.setHeader('x-content-type-options', 'nosniff');
          res.setHeader('referrer-policy', 'no-referrer');
          res.setHeader('cache-control', file.startsWith(`assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
          if (file.endsWith('.html')) res.setHeader('content-security-policy', csp);
        },
      });
      files.get('/', { schema: { hide: true } }, (_request, reply) => sendIndex(reply));
    });
  };

  /** The app's not-found handler: dashboard routes get index.html, everything else `otherwise`. */
  const notFound = (otherwise: (request: FastifyRequest, reply: FastifyReply) => FastifyReply) =>
    (request: FastifyRequest, reply: FastifyReply) => {
      const path = decodedPath(request.url);
      if ((request.method === 'GET' || request.method === 'HEAD') && path !== undefined && isDashboardRoute(path)) return sendIndex(reply);
      return otherwise(request, reply);
    };

  return { routes, notFound };
}
