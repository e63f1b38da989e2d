/**
 * The resources layer, from bytes to documents: the tar reader on Forge's deterministic tar and on
 * GNU tar's pax and long-name archives; gzip by media type or magic bytes; documents split with
 * their text as written, empty ones dropped, a document without apiVersion or kind refused naming
 * file and number; the (kind, name) order with ties in file order; the stream parses back.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CmpError } from '../../src/cmp/cmp-error.ts';
import { layerDocuments, renderStream, selectResourcesLayer, sortResources, splitDocuments, unpackLayer } from '../../src/cmp/resources.ts';
import { readTar } from '../../src/cmp/tar-reader.ts';
import { RELEASE_MEDIA_TYPES } from '../../src/oci/release-image.ts';
import { deterministicTar } from '../../src/oci/tar.ts';
import { EXPECTED_ORDER, RESOURCE_FILES, resourcesTar } from './cmp-fixtures.ts';

const run = promisify(execFile);

const caught = (f: () => unknown): CmpError => {
  try {
    f();
  } catch (error) {
    if (error instanceof CmpError) return error;
    throw error;
  }
  throw new Error('no error');
};

describe('readTar', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forge-cmp-tar-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads back what deterministicTar writes, long ustar names included', () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}.yaml`;
    const files = [{ name: 'a.yaml', content: Buffer.from('a: 1\n') }, { name: long, content: Buffer.alloc(1500, 'x') }, { name: 'empty.yml', content: Buffer.alloc(0) }];
    expect(readTar(deterministicTar(files))).toEqual([...files].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name))));
  });

  it('reads GNU tar archives: pax and gnu long names, ./ prefixes; directories and links are skipped', async () => {
    const src = join(dir, 'src');
    const deep = `${'n'.repeat(80)}/${'m'.repeat(80)}/${'k'.repeat(60)}.yaml`;
    for (const [name, text] of [['top.yaml', 'kind: A\n'], [deep, 'kind: B\n']]) {
      await mkdir(dirname(join(src, name!)), { recursive: true });
      await writeFile(join(src, name!), text!);
    }
    await run('ln', ['-s', 'top.yaml', join(src, 'link.yaml')]);
    for (const format of ['pax', 'gnu']) {
      const archive = join(dir, `${format}.tar`);
      await run('tar', ['--format', format, '-cf', archive, '-C', src, '.']);
      const entries = readTar(await readFile(archive));
      expect(entries.map((e) => [e.name, e.content.toString()]).sort()).toEqual([[deep, 'kind: B\n'], ['top.yaml', 'kind: A\n']]);
    }
  });

  it('refuses what is not a tar, and a truncated one', () => {
    expect(() => readTar(Buffer.alloc(1024, 'y'))).toThrow(/checksum .* not a tar archive/);
    const tar = deterministicTar([{ name: 'a.yaml', content: Buffer.alloc(2000, 'a') }]);
    expect(() => readTar(tar.subarray(0, 1024))).toThrow(/run past the end .* truncated/);
    expect(() => readTar(tar.subarray(0, 300))).toThrow(/ends inside a header/);
    expect(readTar(Buffer.alloc(0))).toEqual([]);
  });
});

describe('the resources layer', () => {
  const descriptor = (mediaType: string) => ({ mediaType, digest: `sha256:${'0'.repeat(64)}`, size: 1 });

  it('is found by media type wherever it is; none or two is a permanent error listing the layers', () => {
    const gz = 'application/vnd.forge.resources.v1.tar+gzip';
    expect(selectResourcesLayer([descriptor(RELEASE_MEDIA_TYPES.resources), descriptor(RELEASE_MEDIA_TYPES.metadata)], {}).mediaType).toBe(RELEASE_MEDIA_TYPES.resources);
    expect(selectResourcesLayer([descriptor('text/plain'), descriptor(gz), descriptor(RELEASE_MEDIA_TYPES.metadata)], {}).mediaType).toBe(gz);
    const none = caught(() => selectResourcesLayer([descriptor(RELEASE_MEDIA_TYPES.metadata)], { ref: 'r' }));
    expect(none).toMatchObject({ failure: 'permanent', check: 'layer.resources', message: 'the release image has no resources layer' });
    expect(none.details).toEqual({ ref: 'r', layers: RELEASE_MEDIA_TYPES.metadata, accepted: `${RELEASE_MEDIA_TYPES.resources}, ${gz}` });
    expect(caught(() => selectResourcesLayer([descriptor(gz), descriptor(RELEASE_MEDIA_TYPES.resources)], {})).message).toMatch(/2 resources layers/);
  });

  it('is gunzipped when its media type says so or its bytes start with gzip magic', () => {
    const files = { 'a.yaml': 'kind: A\n' };
    const plain = resourcesTar(files);
    for (const [bytes, type] of [[plain, RELEASE_MEDIA_TYPES.resources], [gzipSync(plain), 'application/vnd.forge.resources.v1.tar+gzip'], [gzipSync(plain), RELEASE_MEDIA_TYPES.resources]] as const) {
      expect(unpackLayer(bytes, type, {}).map((f) => [f.name, f.content.toString()])).toEqual([['a.yaml', 'kind: A\n']]);
    }
    expect(caught(() => unpackLayer(plain, 'application/vnd.forge.resources.v1.tar+gzip', {})).message).toMatch(/\+gzip but its content is not gzip/);
    expect(caught(() => unpackLayer(gzipSync(plain).subarray(0, 20), 'application/vnd.forge.resources.v1.tar+gzip', {}))).toMatchObject({ check: 'layer.archive' });
    expect(caught(() => unpackLayer(Buffer.from('not a tar at all'.repeat(64)), RELEASE_MEDIA_TYPES.resources, {})).message).toMatch(/cannot read the resources layer as a tar archive/);
  });
});

describe('documents', () => {
  it('keep their text as written (comments, 0755, "on"), lose the markers and the empty documents', () => {
    const docs = splitDocuments('api.yaml', RESOURCE_FILES['api.yaml']!);
    expect(docs.map((d) => [d.index, d.kind, d.name])).toEqual([[1, 'Deployment', 'api'], [4, 'ConfigMap', 'api-config']]);
    expect(docs[0]!.text).toBe('# the api\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n');
    expect(docs[1]!.text).toBe('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api-config\ndata:\n  mode: 0755\n  flag: "on"\n');
    const marked = splitDocuments('m.yaml', '%YAML 1.2\n--- # first\nkind: A\napiVersion: v1\n...\n--- {kind: B, apiVersion: v1}\n');
    expect(marked.map((d) => d.text)).toEqual(['# first\nkind: A\napiVersion: v1\n', '{kind: B, apiVersion: v1}\n']);
  });

  it('without apiVersion or kind, not a mapping, or not YAML, are refused naming file and document', () => {
    const noKind = caught(() => splitDocuments('web.yaml', 'apiVersion: v1\nkind: A\n---\n---\napiVersion: v1\nmetadata: {name: x}\n', { ref: 'r' }));
    expect(noKind).toMatchObject({ failure: 'permanent', check: 'resources.document', message: 'web.yaml document 3 has no kind' });
    expect(noKind.details).toEqual({ ref: 'r', file: 'web.yaml', document: '3 (1-based, "---"-separated)' });
    expect(caught(() => splitDocuments('a.yaml', 'metadata: {}\n')).message).toBe('a.yaml document 1 has no apiVersion and no kind');
    expect(caught(() => splitDocuments('a.yaml', 'kind: ""\napiVersion: v1\n')).message).toBe('a.yaml document 1 has no kind');
    expect(caught(() => splitDocuments('a.yaml', '- kind: A\n')).message).toMatch(/document 1 is not a mapping/);
    expect(caught(() => splitDocuments('a.yaml', 'apiVersion: v1\nkind: A\n---\nkind: [\n'))).toMatchObject({ check: 'resources.yaml', message: 'a.yaml document 2 is not valid YAML' });
  });

  it('sort by (kind, name) with ties in file order, read from every .yaml/.yml file and nothing else', () => {
    const files = Object.entries(RESOURCE_FILES).map(([name, text]) => ({ name, content: Buffer.from(text) }));
    const sorted = sortResources(layerDocuments(files, {}));
    expect(sorted.map((d) => [d.kind, d.name])).toEqual(EXPECTED_ORDER.map(([kind, name]) => [kind, name]));
    expect(sorted.filter((d) => d.kind === 'Secret').map((d) => d.file)).toEqual(['a.yaml', 'b.yaml']);
  });

  it('print as one stream that parses back to the same objects', () => {
    const files = Object.entries(RESOURCE_FILES).map(([name, text]) => ({ name, content: Buffer.from(text) }));
    const sorted = sortResources(layerDocuments(files, {}));
    const stream = renderStream(sorted);
    const back = parseAllDocuments(stream).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    expect(back.map((o) => [o.kind, o.metadata.name])).toEqual(sorted.map((d) => [d.kind, d.name]));
    expect(stream.startsWith('---\n# the api\n') || stream.startsWith('---\napiVersion: v1\nkind: ConfigMap')).toBe(true);
    expect(stream).toContain('  mode: 0755\n  flag: "on"\n---\n');
  });
});
