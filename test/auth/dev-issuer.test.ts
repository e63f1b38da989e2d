import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader, type JWK, type JWTPayload } from 'jose';
import { DEV_AUDIENCE, DEV_ISSUER, devIssuerKeyPath, openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { ROLES } from '../../src/domain/identity.ts';
import {
  expectRefusal, hs256WithPublicKey, keyFromJwk, makeKey, nowSeconds, signToken, tamper, unsecuredToken, type TestKey,
} from './tokens.ts';

const dirs: string[] = [];
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'forge-dev-issuer-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The dev issuer's own key, read back from its file, to sign what `sign` would refuse to. */
async function devKey(dir: string): Promise<TestKey> {
  return keyFromJwk(JSON.parse(await readFile(devIssuerKeyPath(dir), 'utf8')) as JWK & { kid: string });
}

function claims(extra: JWTPayload = {}): JWTPayload {
  const iat = nowSeconds();
  return { sub: 'alice', iss: DEV_ISSUER, aud: DEV_AUDIENCE, iat, exp: iat + 600, realm_access: { roles: ['developer'] }, ...extra };
}

describe('dev issuer', () => {
  it('signs tokens its verifier turns back into the identity', async () => {
    const dev = await openDevIssuer(await dataDir());
    const token = await dev.sign({ sub: 'alice', roles: ['developer', 'approver'] });

    expect(await dev.verifier.verify(token)).toEqual({
      subject: 'alice',
      actor: 'alice',
      roles: ['developer', 'approver'],
      issuer: 'urn:forge:dev-issuer',
    });
    expect(dev.verifier.mode).toBe('dev');
    expect(dev.verifier.issuer).toBe(DEV_ISSUER);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: expect.any(String) });
    const payload = decodeJwt(token);
    expect(payload).toMatchObject({ iss: DEV_ISSUER, aud: 'forge', preferred_username: 'alice', realm_access: { roles: ['developer', 'approver'] } });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(12 * 60 * 60);
  });

  it('takes the actor from preferred_username and roles from realm and client access, ignoring unknown roles', async () => {
    const dir = await dataDir();
    const dev = await openDevIssuer(dir);
    const signed = await dev.sign({ sub: 'u-123', preferredUsername: 'bob', roles: ['operator'], ttlSeconds: 60 });
    expect(await dev.verifier.verify(signed)).toMatchObject({ subject: 'u-123', actor: 'bob', roles: ['operator'] });

    const keycloakShaped = await signToken(await devKey(dir), claims({
      realm_access: { roles: ['developer', 'offline_access', 'uma_authorization'] },
      resource_access: { forge: { roles: ['approver', 'developer'] }, account: { roles: ['operator', 'manage-account'] } },
    }));
    expect((await dev.verifier.verify(keycloakShaped)).roles).toEqual(['developer', 'approver']);

    const noRoles = await signToken(await devKey(dir), claims({ realm_access: undefined, resource_access: { forge: 'junk' } }));
    expect(await dev.verifier.verify(noRoles)).toMatchObject({ actor: 'alice', roles: [] });
  });

  it('keeps the key as a private JWK in <dataDir>/dev-issuer/key.json and reuses it', async () => {
    const dir = await dataDir();
    const first = await openDevIssuer(dir);
    const token = await first.sign({ sub: 'alice', roles: [] });

    const file = await stat(devIssuerKeyPath(dir));
    expect(file.mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'dev-issuer'))).mode & 0o077).toBe(0);
    expect(JSON.parse(await readFile(devIssuerKeyPath(dir), 'utf8'))).toMatchObject({ kty: 'EC', crv: 'P-256', d: expect.any(String), kid: expect.any(String) });

    const reopened = await openDevIssuer(dir);
    expect((await reopened.verifier.verify(token)).subject).toBe('alice');
  });

  it('refuses expired and not-yet-valid tokens, forgiving 30 s of clock skew', async () => {
    const dir = await dataDir();
    const { verifier } = await openDevIssuer(dir);
    const key = await devKey(dir);
    const now = nowSeconds();

    await expectRefusal(verifier.verify(await signToken(key, claims({ iat: now - 600, exp: now - 60 }))), 'authentication_required', 'expired');
    await expectRefusal(verifier.verify(await signToken(key, claims({ nbf: now + 120 }))), 'authentication_required', 'not_yet_valid');
    expect(await verifier.verify(await signToken(key, claims({ iat: now - 600, exp: now - 10 })))).toMatchObject({ subject: 'alice' });
  });

  it('refuses a token signed by another data dir\'s key, or by another key claiming this key\'s kid', async () => {
    const dev = await openDevIssuer(await dataDir());
    const other = await openDevIssuer(await dataDir());
    const foreign = await other.sign({ sub: 'mallory', roles: ['operator'] });
    await expectRefusal(dev.verifier.verify(foreign), 'authentication_required', 'unknown_key');

    const ownKid = decodeProtectedHeader(await dev.sign({ sub: 'x', roles: [] })).kid;
    const impostor = await signToken(await makeKey(), claims(), { kid: ownKid });
    await expectRefusal(dev.verifier.verify(impostor), 'authentication_required', 'bad_signature');
  });

  it('refuses a tampered signature and a tampered payload', async () => {
    const dev = await openDevIssuer(await dataDir());
    const token = await dev.sign({ sub: 'alice', roles: ['developer'] });
    await expectRefusal(dev.verifier.verify(tamper(token)), 'authentication_required', 'bad_signature');

    const [header, , signature] = token.split('.');
    const promoted = Buffer.from(JSON.stringify({ ...decodeJwt(token), realm_access: { roles: ['operator'] } })).toString('base64url');
    await expectRefusal(dev.verifier.verify(`${header}.${promoted}.${signature}`), 'authentication_required', 'bad_signature');
  });

  it('refuses alg none and HS256 "signed" with the public key', async () => {
    const dir = await dataDir();
    const { verifier } = await openDevIssuer(dir);
    await expectRefusal(verifier.verify(unsecuredToken(claims())), 'authentication_required', 'algorithm_not_allowed');
    for (const token of await hs256WithPublicKey(await devKey(dir), claims())) {
      await expectRefusal(verifier.verify(token), 'authentication_required', 'algorithm_not_allowed');
    }
  });

  it('refuses wrong audience, wrong issuer, missing exp and malformed tokens', async () => {
    const dir = await dataDir();
    const { verifier } = await openDevIssuer(dir);
    const key = await devKey(dir);
    await expectRefusal(verifier.verify(await signToken(key, claims({ aud: 'not-forge' }))), 'authentication_required', 'wrong_audience');
    await expectRefusal(verifier.verify(await signToken(key, claims({ iss: 'https://elsewhere' }))), 'authentication_required', 'wrong_issuer');
    await expectRefusal(verifier.verify(await signToken(key, claims({ exp: undefined }))), 'authentication_required', 'missing_claim');
    await expectRefusal(verifier.verify(await signToken(key, claims({ sub: undefined }))), 'authentication_required', 'missing_claim');
    for (const junk of ['', 'not-a-token', 'a.b.c', `${unsecuredToken(claims())}extra.parts`]) {
      await expectRefusal(verifier.verify(junk), 'authentication_required', 'malformed');
    }
  });

  it('refuses to sign unknown roles, naming the allowed ones, and nonsense lifetimes', async () => {
    const dev = await openDevIssuer(await dataDir());
    const error = await dev.sign({ sub: 'alice', roles: ['developer', 'admin'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('admin');
    for (const role of ROLES) expect((error as Error).message).toContain(role);

    await expect(dev.sign({ sub: 'alice', roles: [], ttlSeconds: 0 })).rejects.toThrow(/ttlSeconds/);
    await expect(dev.sign({ sub: '', roles: [] })).rejects.toThrow(/subject/);
  });

  it('ends with one key when opened many times at once', async () => {
    const dir = await dataDir();
    const issuers = await Promise.all(Array.from({ length: 8 }, () => openDevIssuer(dir)));
    const tokens = await Promise.all(issuers.map((dev, i) => dev.sign({ sub: `user-${i}`, roles: [] })));
    for (const dev of issuers) {
      for (const token of tokens) await dev.verifier.verify(token);
    }
    expect(new Set(tokens.map((token) => decodeProtectedHeader(token).kid)).size).toBe(1);
    expect(await readdir(join(dir, 'dev-issuer'))).toEqual(['key.json']);
  });

  it('ends with one key when separate processes start at once', async () => {
    const dir = await dataDir();
    const module = new URL('../../src/auth/dev-issuer.ts', import.meta.url).href;
    // Each child loads the module, says "ready", and opens the issuer only when told, so the opens overlap.
    const script = `const { openDevIssuer } = await import(${JSON.stringify(module)});
      process.stdout.write('ready\\n');
      await new Promise((go) => process.stdin.once('data', go));
      const dev = await openDevIssuer(${JSON.stringify(dir)});
      process.stdout.write(await dev.sign({ sub: 'p', roles: [] }));`;
    const children = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out === 'ready\n') resolve();
        });
        child.on('exit', () => reject(new Error('child exited before it was ready')));
      });
      const token = new Promise<string>((resolve, reject) => {
        child.on('exit', (code) => (code === 0 ? resolve(out.slice('ready\n'.length)) : reject(new Error(`child exited ${code}`))));
      });
      token.catch(() => undefined); // reported through `ready` or awaited below
      return { ready, token, go: () => child.stdin.end('go\n') };
    });
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.go();
    const tokens = await Promise.all(children.map((child) => child.token));

    expect(new Set(tokens.map((token) => decodeProtectedHeader(token).kid)).size).toBe(1);
    const here = await openDevIssuer(dir);
    for (const token of tokens) expect((await here.verifier.verify(token)).subject).toBe('p');
  });
});
