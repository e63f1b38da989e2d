/**
 * A real OCI registry for tests: Debian's docker-registry (distribution 2.8), started per test file
 * on 127.0.0.1:<free port> with filesystem storage in a temporary directory and delete enabled, and
 * stopped (its process ended, its directory removed) by `stop()`. Optional auth: htpasswd (Basic) or
 * token (Bearer) with a local token server signing ES256 JWTs whose x5c certificate the registry
 * trusts. Also skopeo to read what was pushed, and a fault-injecting proxy in front of a registry.
 *
 * Missing /usr/bin/docker-registry or /usr/bin/skopeo: `registryUnavailable` says why (the suites
 * skip); with CI=true that is an error instead (`apt-get install docker-registry skopeo`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID, sign, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const DOCKER_REGISTRY_BIN = '/usr/bin/docker-registry';
export const SKOPEO_BIN = '/usr/bin/skopeo';

const HOW_TO_INSTALL = 'apt-get install docker-registry skopeo (.ci/run installs them)';
const unavailable = (bin: string) => (existsSync(bin) ? undefined : `${bin} not found: ${HOW_TO_INSTALL}`);
export const registryUnavailable = unavailable(DOCKER_REGISTRY_BIN) ?? unavailable(SKOPEO_BIN);
/** skopeo alone (the layout store's images are read with it too). */
export const skopeoUnavailable = unavailable(SKOPEO_BIN);
/** The token server's signing certificate is made with openssl. */
export const opensslUnavailable = existsSync('/usr/bin/openssl') ? undefined : '/usr/bin/openssl not found (apt-get install openssl): no token server for Bearer-auth tests';
if (registryUnavailable && process.env.CI === 'true') {
  throw new Error(`CI=true and the real-registry suites cannot run: ${registryUnavailable}`);
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}

export type RegistryAuth =
  | { htpasswd: string }
  | { token: { realm: string; service: string; issuer: string; rootCertBundle: string } };

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** The registry's output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function configYaml(dataDir: string, port: number, auth?: RegistryAuth): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(dataDir)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (auth && 'htpasswd' in auth) {
    lines.push('auth:', '  htpasswd:', '    realm: forge-test', `    path: ${JSON.stringify(auth.htpasswd)}`);
  } else if (auth) {
    const { realm, service, issuer, rootCertBundle } = auth.token;
    lines.push('auth:', '  token:', `    realm: ${JSON.stringify(realm)}`, `    service: ${JSON.stringify(service)}`,
      `    issuer: ${JSON.stringify(issuer)}`, `    rootcertbundle: ${JSON.stringify(rootCertBundle)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Starts docker-registry and resolves once it answers /v2/. */
export async function startRegistry(options: { auth?: RegistryAuth } = {}): Promise<TestRegistry> {
  if (registryUnavailable) throw new Error(registryUnavailable);
  const dir = await mkdtemp(join(tmpdir(), 'forge-registry-'));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    await writeFile(config, configYaml(join(dir, 'data'), port, options.auth));
    const child = spawn(DOCKER_REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => {
      running.delete(child);
      resolve();
    }));
    let ended = false;
    void exited.then(() => { ended = true; });
    const host = `127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (!ended && !ready && Date.now() < deadline) {
      try {
        const response = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
        await response.body?.cancel();
        ready = response.status === 200 || response.status === 401;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const stop = async () => {
      if (!ended) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(killer);
      }
    };
    if (ready) {
      return {
        host,
        output: () => output,
        stop: async () => {
          await stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await stop();
    // Another process may have taken the free port between our probe and the registry's bind.
    if (attempt < 3 && output.includes('address already in use')) continue;
    await rm(dir, { recursive: true, force: true });
    throw new Error(`docker-registry did not answer on ${host} within 15 s:\n${output}`);
  }
}

/** `skopeo inspect` of a reference (`docker://…` or `oci:…`), parsed; `--raw` gives the manifest. */
export async function skopeoInspect(reference: string, args: string[] = []): Promise<Record<string, unknown>> {
  const tls = reference.startsWith('docker://') ? ['--tls-verify=false'] : [];
  const { stdout } = await run(SKOPEO_BIN, ['inspect', ...tls, ...args, reference], { timeout: 30_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/**
 * An htpasswd line with a bcrypt hash of cost 4 (fast: the registry checks it on every request), without npm: `htpasswd -nbB` (apache2-utils) when installed,
 * else Python's crypt module (libxcrypt; gone from Python 3.13); `unavailable` says why neither works.
 */
export async function htpasswdLine(user: string, password: string): Promise<{ line: string } | { unavailable: string }> {
  const attempts: [string, string[]][] = [
    ['htpasswd', ['-nbB', '-C', '4', user, password]],
    ...['/usr/bin/python3', 'python3'].map((python): [string, string[]] => [python, ['-W', 'ignore', '-c',
      'import crypt, sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))', user, password]]),
  ];
  const failures: string[] = [];
  for (const [command, args] of attempts) {
    try {
      const line = (await run(command, args, { timeout: 30_000 })).stdout.trim();
      if (/^[^:]+:\$2[aby]\$/.test(line)) return { line };
      failures.push(`${command}: no bcrypt hash`);
    } catch (error) {
      failures.push(`${command}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return { unavailable: `no bcrypt htpasswd generator (${failures.join('; ')}): apt-get install apache2-utils` };
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate the registry trusts (its rootcertbundle). */
  certPath: string;
  /** Every token request: the scope asked for and the user who asked (undefined: anonymous). */
  requests: { scope: string | null; user: string | undefined }[];
  /** The JWT's lifetime (exp - now) for tokens issued from now on; the answer always says 300 s. */
  lifetimeSeconds: number;
  close(): Promise<void>;
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/**
 * A Docker-registry token server: checks Basic credentials against `users` and issues a JWT (ES256,
 * x5c header) granting the requested repository actions that the user is allowed. Unknown users and
 * wrong passwords get 401. Needs the openssl command for the certificate.
 */
export async function startTokenServer(users: Record<string, { password: string; actions: string[] }>): Promise<TokenServer | { unavailable: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'forge-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-subj', '/CN=forge-test-token', '-days', '2', '-keyout', keyPath, '-out', certPath], { timeout: 30_000 });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    return { unavailable: `openssl could not make a token-signing certificate: ${(error as Error).message.split('\n')[0]}` };
  }
  const key = await readFile(keyPath);
  const cert = new X509Certificate(await readFile(certPath));
  const service = 'forge-test-registry';
  const issuer = 'forge-test-issuer';
  const requests: TokenServer['requests'] = [];

  const server = createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://token').searchParams;
    const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
    const [user, ...rest] = scheme === 'Basic' && encoded ? Buffer.from(encoded, 'base64').toString('utf8').split(':') : [];
    requests.push({ scope: query.get('scope'), user });
    const known = user === undefined ? undefined : users[user];
    if (!known || known.password !== rest.join(':')) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
      return;
    }
    const access = (query.get('scope') ?? '').split(' ').filter(Boolean).map((scope) => {
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: (actions ?? '').split(',').filter((a) => known.actions.includes(a)) };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [cert.raw.toString('base64')] };
    const claims = { iss: issuer, sub: user, aud: query.get('service'), exp: now + tokens.lifetimeSeconds, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${input}.${base64url(signature)}`, expires_in: 300 }));
  });
  const port = await listen(server);
  const tokens: TokenServer = {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    lifetimeSeconds: 300,
    close: async () => {
      await closeServer(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return tokens;
}

/** What the fault proxy does with one request: answer it itself, or forward it (after a delay). */
export type Fault = { status: number; headers?: Record<string, string>; body?: string } | { delayMs: number };

export interface FaultProxy {
  host: string;
  /** Every request that reached the proxy, in order. */
  requests: { method: string; path: string }[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of a real registry that lets `fault` answer or delay chosen requests
 * (by their order and path); everything else is forwarded as is, Host header included, so the
 * registry's Location headers point back at the proxy.
 */
export async function startFaultProxy(target: string, fault: (req: { method: string; path: string }, index: number) => Fault | undefined): Promise<FaultProxy> {
  const requests: FaultProxy['requests'] = [];
  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const [hostname, port] = target.split(':');
    const upstream = request({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry = { method: req.method ?? '', path: req.url ?? '' };
      requests.push(entry);
      const action = fault(entry, requests.length - 1);
      if (action && 'status' in action) {
        res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
        res.end(action.body ?? '');
      } else if (action) {
        setTimeout(() => { if (!res.destroyed) forward(req, Buffer.concat(chunks), res); }, action.delayMs);
      } else {
        forward(req, Buffer.concat(chunks), res);
      }
    });
  });
  const port = await listen(server);
  return { host: `127.0.0.1:${port}`, requests, close: () => closeServer(server) };
}

/**
 * A registry behind Basic auth for one user (htpasswd in a temp dir), or why none can run (no bcrypt
 * generator). `stop()` ends the registry and removes the dir.
 */
export async function startBasicAuthRegistry(user: string, password: string, prefix = 'forge-htpasswd-'): Promise<{ registry: TestRegistry; stop(): Promise<void> } | { unavailable: string }> {
  const htpasswd = await htpasswdLine(user, password);
  if ('unavailable' in htpasswd) return htpasswd;
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'htpasswd'), `${htpasswd.line}\n`);
  const registry = await startRegistry({ auth: { htpasswd: join(dir, 'htpasswd') } }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    registry,
    async stop() {
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
