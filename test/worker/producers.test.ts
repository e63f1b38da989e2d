/** Producers with real scripts (and a stand-in `earthly` on PATH) in temporary project directories. */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact } from '../../src/config/project-config.ts';
import { fileDigest } from '../../src/lib/file-digest.ts';
import { executableFormat, produceArtifact, type ProduceRequest } from '../../src/worker/producers.ts';
import { writeLayout } from '../publishers/layouts.ts';

const SHA = 'c'.repeat(40);
let scratch: string;
let projectDir: string;
let n = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'forge-producers-'));
  projectDir = join(scratch, 'project');
  await mkdir(join(projectDir, 'src'), { recursive: true });
  await writeFile(join(projectDir, 'src', 'a.txt'), 'alpha\n');
  await writeFile(join(projectDir, 'src', 'b.txt'), 'beta\n');
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

const cleanEnv = { PATH: '/usr/bin:/bin', HOME: '/nonexistent' };

function request(artifact: Artifact & { producer: { args?: string[] } }, overrides: Partial<ProduceRequest> = {}): ProduceRequest {
  n += 1;
  return {
    name: 'app', artifact, repository: 'acme/shop', project: 'api', commitSha: SHA, version: SHA,
    projectDir, stagingDir: join(scratch, `staging-${n}`), baseEnv: cleanEnv, ...overrides,
  };
}

describe('script producer', () => {
  it('collects a binary the script writes into $STAGING, with its digest, size, os/arch and executable bit', async () => {
    const outcome = await produceArtifact(request({
      type: 'binary', publishers: [],
      producer: { type: 'script', run: 'cp /bin/true "$STAGING/app" && echo "built in $FORGE_STAGING_DIR for $FORGE_ARTIFACT"', artifact: 'app' },
    }));
    expect(outcome.status, JSON.stringify(outcome)).toBe('success');
    if (outcome.status !== 'success') return;
    const { output } = outcome.artifact;
    expect(output.location_type).toBe('file');
    if (output.location_type !== 'file' || !('executable' in output)) throw new Error('binary output expected');
    const expected = await fileDigest('/bin/true');
    expect(output).toMatchObject({ digest: expected.digest, size: expected.size, executable: true, os: 'linux', static: false, media_type: 'application/octet-stream' });
    expect(output.arch).toBe(process.arch === 'x64' ? 'amd64' : process.arch);
    expect(outcome.artifact).toMatchObject({ name: 'app', type: 'binary', repository: 'acme/shop', project: 'api', version: SHA });
    expect(outcome.artifact.metadata).toMatchObject({ producer: 'script' });
  });

  it('collects an archive the script leaves in the project directory (as the example does)', async () => {
    const outcome = await produceArtifact(request({
      type: 'archive', publishers: [], compression: 'gzip',
      producer: { type: 'script', run: 'mkdir -p dist && tar -czf dist/app.tgz src', artifact: 'dist/app.tgz' },
    }));
    expect(outcome.status, JSON.stringify(outcome)).toBe('success');
    if (outcome.status !== 'success') return;
    expect(outcome.artifact.output).toMatchObject({ location_type: 'file', format: 'tar.gz', media_type: 'application/gzip', path: join(projectDir, 'dist', 'app.tgz') });
  });

  it('packs a directory reproducibly: the same tree gives the same digest', async () => {
    const artifact: Artifact = { type: 'archive', publishers: [], producer: { type: 'script', run: 'mkdir -p "$STAGING/site" && cp src/*.txt "$STAGING/site/" && touch "$STAGING/site/a.txt"', artifact: 'site' } };
    const first = await produceArtifact(request(artifact));
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a different mtime must not matter
    const second = await produceArtifact(request(artifact));
    expect(first.status).toBe('success');
    expect(second.status).toBe('success');
    if (first.status !== 'success' || second.status !== 'success') return;
    expect(first.artifact.output).toMatchObject({ format: 'tar.gz' });
    expect(first.artifact.output.digest).toBe(second.artifact.output.digest);
    expect(first.artifact.output.path).not.toBe(second.artifact.output.path);
  });

  it('collects a container from the OCI image layout the script writes', async () => {
    const fixture = join(scratch, 'layout-fixture');
    const image = await writeLayout(fixture, 'v1');
    const outcome = await produceArtifact(request({
      type: 'container', publishers: [], ref: 'acme/api',
      producer: { type: 'script', run: `cp -R ${fixture}/. "$STAGING/"` },
    }));
    expect(outcome.status, JSON.stringify(outcome)).toBe('success');
    if (outcome.status !== 'success') return;
    expect(outcome.artifact.output).toMatchObject({
      location_type: 'oci-layout', digest: image.digest, image_id: image.configDigest, image_ref: 'acme/api', layers: 1,
      media_type: 'application/vnd.oci.image.manifest.v1+json', size: image.size,
    });
  });

  it('fails with the reason and the output when the script fails, and removes what it staged', async () => {
    const req = request({ type: 'binary', publishers: [], producer: { type: 'script', run: 'echo half > "$STAGING/app"; echo "compiler exploded" >&2; exit 3', artifact: 'app' } });
    const outcome = await produceArtifact(req);
    expect(outcome).toMatchObject({ status: 'failed', exitCode: 3 });
    if (outcome.status !== 'failed') return;
    expect(outcome.error).toMatch(/artifact app: producer script failed: exited with code 3/);
    expect(outcome.output).toContain('compiler exploded');
    expect(existsSync(req.stagingDir)).toBe(false);
  });

  it('fails clearly when the artifact is missing, not an archive, or no OCI layout', async () => {
    const missing = await produceArtifact(request({ type: 'binary', publishers: [], producer: { type: 'script', run: 'true', artifact: 'nothing' } }));
    expect(missing).toMatchObject({ status: 'failed', error: expect.stringMatching(/left no "nothing"/) });
    const escape = await produceArtifact(request({ type: 'binary', publishers: [], producer: { type: 'script', run: 'true', artifact: '../../etc/passwd' } }));
    expect(escape).toMatchObject({ status: 'failed', error: expect.stringMatching(/leaves the project directory/) });
    const notArchive = await produceArtifact(request({ type: 'archive', publishers: [], producer: { type: 'script', run: 'echo hi > "$STAGING/x.tgz"', artifact: 'x.tgz' } }));
    expect(notArchive).toMatchObject({ status: 'failed', error: expect.stringMatching(/not an archive/) });
    const wrong = await produceArtifact(request({ type: 'archive', publishers: [], compression: 'zip', producer: { type: 'script', run: 'mkdir -p dist && tar -czf dist/w.tgz src', artifact: 'dist/w.tgz' } }));
    expect(wrong).toMatchObject({ status: 'failed', error: expect.stringMatching(/compression is "zip" but dist\/w.tgz is tar.gz/) });
    const noLayout = await produceArtifact(request({ type: 'container', publishers: [], producer: { type: 'script', run: 'true' } }));
    expect(noLayout).toMatchObject({ status: 'failed', error: expect.stringMatching(/no OCI image layout .* no Docker daemon is configured/) });
  });

  it('stops a producer at its timeout', async () => {
    const outcome = await produceArtifact(request({ type: 'binary', publishers: [], producer: { type: 'script', run: 'sleep 30', artifact: 'x' } }, { timeoutMs: 300 }));
    expect(outcome).toMatchObject({ status: 'failed', error: expect.stringMatching(/timed out/) });
  });
});

describe('earthly producer', () => {
  it('says Earthly is not installed when it is not on PATH', async () => {
    const outcome = await produceArtifact(request({ type: 'binary', publishers: [], producer: { type: 'earthly', target: '+build', artifact: 'out' } }));
    expect(outcome).toMatchObject({ status: 'failed', error: expect.stringMatching(/earthly is not installed on this worker.*\+build/) });
  });

  it('runs `earthly <target> [args]` from PATH and collects what it saved', async () => {
    const bin = join(scratch, 'bin');
    await mkdir(bin, { recursive: true });
    // A stand-in that records its arguments and saves an artifact, as `SAVE ARTIFACT … AS LOCAL` does.
    await writeFile(join(bin, 'earthly'), '#!/bin/sh\nprintf "%s\\n" "$@" > args.txt\nmkdir -p out && cp /bin/true out/app\n');
    await chmod(join(bin, 'earthly'), 0o755);
    const outcome = await produceArtifact(request(
      { type: 'binary', publishers: [], producer: { type: 'earthly', target: '+build', args: ['--VERSION=1 2', '--push'], artifact: 'out/app' } },
      { baseEnv: { ...cleanEnv, PATH: `${bin}:/usr/bin:/bin` } },
    ));
    expect(outcome.status, JSON.stringify(outcome)).toBe('success');
    expect(await readFile(join(projectDir, 'args.txt'), 'utf8')).toBe('+build\n--VERSION=1 2\n--push\n');
    if (outcome.status === 'success') expect(outcome.artifact.metadata).toMatchObject({ producer: 'earthly', target: '+build' });
  });
});

describe('executable headers', () => {
  it('reads os, arch and static-ness from ELF, Mach-O and PE headers', async () => {
    const elf = await readFile('/bin/true');
    expect(executableFormat(elf)).toMatchObject({ os: 'linux', static: false });
    const macho = Buffer.alloc(64);
    macho.writeUInt32LE(0xfeedfacf, 0);
    macho.writeUInt32LE(0x0100000c, 4);
    expect(executableFormat(macho)).toEqual({ os: 'darwin', arch: 'arm64', static: false });
    const pe = Buffer.alloc(256);
    pe.write('MZ', 0, 'latin1');
    pe.writeUInt32LE(128, 60);
    pe.writeUInt32BE(0x50450000, 128);
    pe.writeUInt16LE(0x8664, 132);
    expect(executableFormat(pe)).toEqual({ os: 'windows', arch: 'amd64', static: false });
    expect(executableFormat(Buffer.from('#!/bin/sh\necho hi\n'))).toEqual({ os: 'unknown', arch: 'unknown', static: false });
    // A static ELF: the same header without a PT_INTERP program header.
    const staticElf = Buffer.from(elf.subarray(0, 4096));
    const phoff = Number(staticElf.readBigUInt64LE(32));
    const phnum = staticElf.readUInt16LE(56);
    for (let i = 0; i < phnum; i++) if (staticElf.readUInt32LE(phoff + i * 56) === 3) staticElf.writeUInt32LE(1, phoff + i * 56);
    expect(executableFormat(staticElf)).toMatchObject({ os: 'linux', static: true });
  });
});
