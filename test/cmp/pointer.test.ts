/**
 * Behaviour 49: CMP discover succeeds only for a valid ReleasePointer with a 40-hex `spec.release`
 * (a missing file, bad YAML, another kind or apiVersion, a short, uppercase or non-hex SHA all fail
 * with the check that failed), and where the release's repository and project are read from: spec,
 * else the path per the GitOps layout, else metadata.namespace `<repo>-<project>`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CmpError } from '../../src/cmp/cmp-error.ts';
import { discover, readPointer, releaseTarget, targetFromPath, type PointerDocument } from '../../src/cmp/pointer.ts';
import { DEFAULT_POINTER_LAYOUT } from '../../src/gitops/release-pointer.ts';
import { sha, writeAppFile, writePointer } from './cmp-fixtures.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'forge-cmp-pointer-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
/** A fresh directory holding `release.yaml` with `text` (nothing when undefined). */
async function appDir(text: string | undefined): Promise<string> {
  const dir = join(root, `app-${++counter}`);
  await mkdir(dir, { recursive: true });
  if (text !== undefined) await writeAppFile(dir, 'release.yaml', text);
  return dir;
}

const pointerText = (fields: { apiVersion?: string; kind?: string; release?: string } = {}) => [
  `apiVersion: ${fields.apiVersion ?? 'forge.projectcatalyst.io/v1'}`,
  `kind: ${fields.kind ?? 'ReleasePointer'}`,
  'metadata:',
  '  name: shop',
  'spec:',
  `  release: ${fields.release ?? sha(1)}`,
  '',
].join('\n');

describe('discover (behaviour 49)', () => {
  it('accepts the pointer Forge writes, and the v1alpha1 apiVersion', async () => {
    const written = await writePointer(root, { commit: sha(0xab) });
    const result = await discover(written);
    expect(result).toMatchObject({ matched: true, pointer: { release: sha(0xab), apiVersion: 'forge.projectcatalyst.io/v1', spec: { repository: 'Acme/Monorepo', project: 'shop' } } });
    expect(await discover(await appDir(pointerText({ apiVersion: 'forge.projectcatalyst.io/v1alpha1' })))).toMatchObject({ matched: true });
    expect(await discover(await appDir(`# pointer\n---\n${pointerText()}---\n`))).toMatchObject({ matched: true });
  });

  const refused: [string, string | undefined, string, RegExp][] = [
    ['no release.yaml', undefined, 'pointer.file', /no release\.yaml in /],
    ['YAML that does not parse', 'apiVersion: [\nkind: x\n', 'pointer.yaml', /not valid YAML/],
    ['a YAML list', '- a\n- b\n', 'pointer.yaml', /not a YAML mapping/],
    ['two documents', `${pointerText()}---\n${pointerText()}`, 'pointer.yaml', /exactly one YAML document, it holds 2/],
    ['an empty file', '', 'pointer.yaml', /it holds 0/],
    ['an alias bomb', `a: &a [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `b${i}: &b${i} [${Array(10).fill(i === 0 ? '*a' : `*b${i - 1}`).join(', ')}]`).join('\n')}\n`, 'pointer.yaml', /cannot be read: Excessive alias count/],
    ['only markers and comments', '---\n# nothing\n---\n', 'pointer.yaml', /it holds 0/],
    ['another kind', pointerText({ kind: 'Release' }), 'pointer.kind', /kind "Release", expected ReleasePointer/],
    ['another apiVersion', pointerText({ apiVersion: 'forge.projectcatalyst.io/v2' }), 'pointer.apiVersion', /apiVersion "forge\.projectcatalyst\.io\/v2"/],
    ['another group', pointerText({ apiVersion: 'argoproj.io/v1alpha1' }), 'pointer.apiVersion', /expected forge\.projectcatalyst\.io\/v1 or forge\.projectcatalyst\.io\/v1alpha1/],
    ['a short SHA', pointerText({ release: 'abc1234' }), 'pointer.release', /spec\.release "abc1234"/],
    ['an uppercase SHA', pointerText({ release: 'A'.repeat(40) }), 'pointer.release', /40 lowercase hexadecimal/],
    ['a non-hex SHA', pointerText({ release: 'g'.repeat(40) }), 'pointer.release', /spec\.release/],
    ['a 41-character SHA', pointerText({ release: 'a'.repeat(41) }), 'pointer.release', /spec\.release/],
    ['a SHA-256 commit', pointerText({ release: 'a'.repeat(64) }), 'pointer.release', /spec\.release/],
    ['a numeric release', pointerText({ release: '1234567890123456789012345678901234567890' }), 'pointer.release', /spec\.release 1\.2345678901234568e\+39 \(YAML read it as a number: quote it\)/],
    ['no spec.release', 'apiVersion: forge.projectcatalyst.io/v1\nkind: ReleasePointer\nspec: {}\n', 'pointer.release', /spec\.release missing/],
    ['no spec at all', 'apiVersion: forge.projectcatalyst.io/v1\nkind: ReleasePointer\n', 'pointer.release', /spec\.release missing/],
  ];
  for (const [label, text, check, reason] of refused) {
    it(`refuses ${label}`, async () => {
      const result = await discover(await appDir(text));
      if (result.matched) throw new Error(`${label} was accepted`);
      expect(result.error.check).toBe(check);
      expect(result.reason).toMatch(reason);
      expect(result.error.exitCode).toBe(1);
      expect(result.error.details.pointer).toMatch(/release\.yaml$/);
    });
  }
});

describe('the release a pointer names', () => {
  const pointer = (fields: Partial<PointerDocument>): PointerDocument => ({ path: '/x/release.yaml', apiVersion: 'forge.projectcatalyst.io/v1', release: sha(2), metadata: {}, spec: {}, ...fields });
  const layout = DEFAULT_POINTER_LAYOUT;

  it('comes from spec.repository and spec.project first', () => {
    expect(releaseTarget(pointer({ spec: { repository: 'acme/shop', project: 'web' } }), { layout, directory: 'environments/dev/other/repo/api' }))
      .toEqual({ repository: 'acme/shop', project: 'web', from: { repository: 'spec', project: 'spec' } });
  });

  it('else from the path per the layout (owner/name is two segments), relative or absolute, field by field', () => {
    expect(targetFromPath(layout, 'environments/dev/acme/shop/web')).toEqual({ repository: 'acme/shop', project: 'web' });
    expect(targetFromPath(layout, '/tmp/_argocd-repo/abc/environments/prod/acme/shop/web/')).toEqual({ repository: 'acme/shop', project: 'web' });
    expect(targetFromPath(layout, 'environments/dev/shop/web')).toBeUndefined();
    expect(targetFromPath(layout, 'elsewhere/dev/acme/shop/web')).toBeUndefined();
    expect(targetFromPath('{environment}/apps/{repository}-{project}/release.yaml', 'dev/apps/acme/shop-api-web')).toEqual({ repository: 'acme/shop-api', project: 'web' });
    expect(targetFromPath('{environment}/{repository}/{project}.yaml', 'dev/acme/shop')).toBeUndefined();
    expect(releaseTarget(pointer({ spec: { project: 'api' } }), { layout, directory: 'environments/dev/acme/shop/web' }))
      .toEqual({ repository: 'acme/shop', project: 'api', from: { repository: 'path', project: 'spec' } });
  });

  it('else from metadata.namespace <repo>-<project>, the project being metadata.name', () => {
    expect(releaseTarget(pointer({ metadata: { name: 'web-ui', namespace: 'shop-app-web-ui' } }), { layout, directory: '.' }))
      .toEqual({ repository: 'shop-app', project: 'web-ui', from: { repository: 'namespace', project: 'namespace' } });
  });

  it('fails permanently when nothing names them, or a name is invalid', () => {
    const fails = (p: PointerDocument, directory = '.') => {
      try {
        releaseTarget(p, { layout, directory });
      } catch (error) {
        expect(error).toBeInstanceOf(CmpError);
        return error as CmpError;
      }
      throw new Error('no error');
    };
    expect(fails(pointer({ metadata: { name: 'web', namespace: 'other' } }))).toMatchObject({ failure: 'permanent', check: 'pointer.target', message: expect.stringMatching(/no repository in spec, in the path or in metadata\.namespace/) });
    expect(fails(pointer({ spec: { repository: 'acme/shop' } })).message).toMatch(/no project/);
    expect(fails(pointer({ spec: { repository: 'acme/shop', project: 'Web' } })).message).toMatch(/invalid project "Web" \(from spec\)/);
    expect(fails(pointer({ spec: { repository: '../etc', project: 'web' } })).message).toMatch(/invalid repository "\.\.\/etc"/);
  });

  it('refuses a layout that is not one (a usage error)', () => {
    try {
      releaseTarget(pointer({}), { layout: '{environment}/release.yaml', directory: '.' });
      throw new Error('accepted');
    } catch (error) {
      expect(error).toMatchObject({ failure: 'usage', check: 'settings', exitCode: 2 });
    }
  });

  it('reads the fields it uses from a pointer file and nothing more', async () => {
    const dir = await writePointer(root, { commit: sha(3), environment: 'staging' });
    const read = await readPointer(dir);
    expect(read).toEqual({
      path: join(dir, 'release.yaml'),
      apiVersion: 'forge.projectcatalyst.io/v1',
      release: sha(3),
      metadata: { name: 'shop' },
      spec: { repository: 'Acme/Monorepo', project: 'shop', ociUri: `forge.local/releases/acme/monorepo/shop:${sha(3)}` },
    });
  });
});
