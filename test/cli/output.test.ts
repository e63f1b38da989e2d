/** The CLI's pure parts: output formatting, argument parsing, error rendering, paths; and the client on a non-Forge answer. */
import { createServer } from 'node:http';
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { artifact, repository } from '../../src/cli/args.ts';
import { ApiClient, CliError, EXIT, apiPath, detailLines, repoSegments } from '../../src/cli/client.ts';
import { ansiStyle, elapsed, fields, iso, pageFooter, plainStyle, status, styleFor, table, treeRows } from '../../src/cli/output.ts';

describe('output', () => {
  it('formats durations as 450ms, 12s, 1m03s, 2h05m09s', () => {
    expect([450, 12_400, 63_000, 7_509_000].map(elapsed)).toEqual(['450ms', '12s', '1m03s', '2h05m09s']);
    expect(iso('2024-01-02T03:04:05.678Z')).toBe('2024-01-02T03:04:05Z');
    expect(iso(null)).toBe('-');
  });

  it('aligns table columns on visible text, colour or not, with no trailing blanks', () => {
    const rows = [['a', status('success'), null], ['longer', status('failed'), 'x']];
    expect(table(['NAME', 'STATUS', 'NOTE'], rows, plainStyle)).toEqual([
      'NAME    STATUS   NOTE',
      'a       success  -',
      'longer  failed   x',
    ]);
    const coloured = table(['NAME', 'STATUS', 'NOTE'], rows, ansiStyle);
    expect(coloured[1]).toBe('a       \u001b[32msuccess\u001b[0m  -');
    expect(fields([['id', 'r1'], ['commit', undefined]], plainStyle)).toEqual(['  id      r1', '  commit  -']);
  });

  it('colours only a TTY without NO_COLOR', () => {
    expect(styleFor({ isTTY: true }, {})).toBe(ansiStyle);
    expect(styleFor({ isTTY: true }, { NO_COLOR: '1' })).toBe(plainStyle);
    expect(styleFor({ isTTY: false }, {})).toBe(plainStyle);
  });

  it('draws trees with guides', () => {
    const leaf = (name: string) => ({ cells: [name], children: [] });
    const rows = treeRows([{ cells: ['p1'], children: [{ cells: ['t1'], children: [leaf('s1'), leaf('s2')] }, { cells: ['t2'], children: [leaf('s3')] }] }, leaf('p2')]);
    expect(rows.map((r) => (r[0] as { text: string }).text)).toEqual(['p1', '├─ t1', '│  ├─ s1', '│  └─ s2', '└─ t2', '   └─ s3', 'p2']);
  });

  it('says where a page sits', () => {
    expect(pageFooter({ total: 0, limit: 20, offset: 0 }, 0, 'runs')).toEqual(['no runs']);
    expect(pageFooter({ total: 3, limit: 20, offset: 0 }, 3, 'runs')).toEqual([]);
    expect(pageFooter({ total: 45, limit: 20, offset: 20 }, 20, 'runs')).toEqual(['runs 21-40 of 45; next page: --offset 40']);
  });
});

describe('arguments', () => {
  it('splits artifacts whose URIs hold colons (schemes, ports, tags, digests)', () => {
    const uris = (spec: string) => { const a = artifact(spec); return [a.tracking_oci_uri, a.primary_published_uri]; };
    expect(artifact('api:container:reg/t/api:v1:ghcr.io/acme/api:v1')).toEqual({
      name: 'api', type: 'container', tracking_oci_uri: 'reg/t/api:v1', primary_published_uri: 'ghcr.io/acme/api:v1',
    });
    expect(uris('api:container:oci://reg:5000/t/api:v1:oci://reg:5000/p/api:v1')).toEqual(['oci://reg:5000/t/api:v1', 'oci://reg:5000/p/api:v1']);
    expect(uris('api:container:localhost:5000/t@sha256:abcd:localhost:5000/p:1.0')).toEqual(['localhost:5000/t@sha256:abcd', 'localhost:5000/p:1.0']);
    expect(uris('cli:binary:file:///tmp/a:file:///tmp/b')).toEqual(['file:///tmp/a', 'file:///tmp/b']);
    expect(uris('cli:archive:tracking:published')).toEqual(['tracking', 'published']);
    expect(() => artifact('api:container:only-one')).toThrow(InvalidArgumentError);
    expect(() => artifact('api:tarball:a:b')).toThrow(/type must be one of container, binary, archive/);
    expect(() => artifact('API:container:a:b')).toThrow(/name must be/);
  });

  it('checks repositories locally', () => {
    expect(repository('acme/shop')).toBe('acme/shop');
    expect(() => repository('acme')).toThrow(/expected owner\/name/);
  });

  it('encodes path segments; a repository is two', () => {
    expect(apiPath('releases', ...repoSegments('acme/shop'), 'api', 'feature/x-1')).toBe('/v1/releases/acme/shop/api/feature%2Fx-1');
  });
});

describe('error rendering', () => {
  it('renders validation problems, policy violations and plain details as lines', () => {
    expect(detailLines({
      errors: [{ field: 'trigger_type', message: 'must be equal to one of the allowed values', allowed: ['push', 'manual'] }],
      violations: [{ requirement: 'allowed_triggers', required: ['tag', 'manual'], actual: 'branch_push' }],
      roles_granting: ['operator'],
      expires_at: null,
    })).toEqual([
      'trigger_type: must be equal to one of the allowed values (allowed: push, manual)',
      'violation: allowed_triggers requires tag, manual; actual: branch_push',
      'roles granting: operator',
      'expires at: -',
    ]);
  });

  it('reports an answer that is not Forge\'s error shape (a proxy) as an API error', async () => {
    const proxy = createServer((_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad gateway</html>'));
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = proxy.address() as { port: number };
      const error = await new ApiClient(`http://127.0.0.1:${port}`, 'token').get('/v1/runs').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CliError);
      expect(error).toMatchObject({ exitCode: EXIT.api, lines: ['<html>Bad gateway</html>'] });
      expect((error as CliError).message).toBe(`HTTP 502 Bad Gateway from GET http://127.0.0.1:${port}/v1/runs`);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
