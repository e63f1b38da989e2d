/**
 * Producers (digest §3.2): build one artifact of a project on this worker and describe what they
 * left. They never publish.
 * - `script`: `/bin/sh -c <run>` in the project directory (runStep: own process group, timeout,
 *   cancel, the caller's clean environment) with `STAGING` and `FORGE_STAGING_DIR` naming the job's
 *   staging directory, plus `FORGE_ARTIFACT` and `FORGE_ARTIFACT_TYPE`.
 * - `earthly`: `earthly <target> [args…]` the same way, when `earthly` is on PATH; else a failed
 *   outcome saying so.
 * Collecting. The configured `artifact` path (relative) is looked up in the staging directory first,
 * then in the project directory (`dist/app.tgz` left by `tar -czf dist/app.tgz …`). A `container`
 * is an OCI image layout directory: `artifact`, else the staging directory itself. A directory given
 * for an `archive` is packed reproducibly into `<staging>/<name>.tar.gz` (sorted names, zero mtimes
 * and owners, gzip without a name or time), so the same tree gives the same digest.
 * Outcome. Never throws for a producer that fails: the outcome is `failed` with the reason and the
 * build output's tail; whatever the producer left in the staging directory is removed then.
 */
import { execFile } from 'node:child_process';
import { open, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { Artifact, Producer, Step } from '../config/project-config.ts';
import type { ArchiveOutput, ArtifactOutput, BinaryOutput, ProducedArtifact } from '../engine/ports.ts';
import { fileDigest } from '../lib/file-digest.ts';
import { isLayoutDir, readLayoutImage } from '../oci/layout-source.ts';
import { findExecutable, runStep } from './steps.ts';

const run = promisify(execFile);

/** Default producer timeout (digest §3.2). */
export const PRODUCER_TIMEOUT_MS = 30 * 60_000;
/** How much of the build output a failed outcome carries. */
const OUTPUT_TAIL_CHARS = 8_000;

export interface ProduceRequest {
  /** The artifact's name in project.cue. */
  name: string;
  /** The artifact's config; `producer.args` are Earthly arguments. */
  artifact: Artifact & { producer: Producer & { args?: string[] } };
  repository: string;
  project: string;
  commitSha: string;
  /** The version it will be published under (`artifactVersion`). */
  version: string;
  /** The project's checked-out directory. */
  projectDir: string;
  /** This job's staging directory (created when missing); the caller removes it after publishing. */
  stagingDir: string;
  /** The environment to start from (workers pass a clean one); default the worker's own. */
  baseEnv?: Record<string, string | undefined>;
  env?: Record<string, string>;
  /** Default PRODUCER_TIMEOUT_MS. */
  timeoutMs?: number;
  signal?: AbortSignal;
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

export type ProduceOutcome =
  | { status: 'success'; artifact: ProducedArtifact; durationMs: number }
  | { status: 'failed'; error: string; exitCode: number | null; durationMs: number; output: string };

/** POSIX shell quoting. */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

class CollectError extends Error {}

export async function produceArtifact(request: ProduceRequest): Promise<ProduceOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const { artifact, name, stagingDir } = request;
  const producer = artifact.producer;
  let output = '';
  const failed = async (error: string, exitCode: number | null = null): Promise<ProduceOutcome> => {
    await rm(stagingDir, { recursive: true, force: true }).catch(() => undefined);
    return { status: 'failed', error: `artifact ${name}: ${error}`, exitCode, durationMs: elapsed(), output: output.slice(-OUTPUT_TAIL_CHARS) };
  };

  await mkdir(stagingDir, { recursive: true });
  const env: Record<string, string> = {
    ...request.env,
    STAGING: stagingDir,
    FORGE_STAGING_DIR: stagingDir,
    FORGE_ARTIFACT: name,
    FORGE_ARTIFACT_TYPE: artifact.type,
  };
  const baseEnv = request.baseEnv ?? process.env;

  let step: Step;
  if (producer.type === 'script') {
    if (!producer.run) return failed('a script producer needs run: "<shell command>"');
    step = { name: `artifact ${name}`, action: 'script', run: producer.run };
  } else {
    if (!producer.target) return failed('an earthly producer needs a target, e.g. target: "+image"');
    const earthly = findExecutable('earthly', { ...baseEnv, ...env }.PATH, request.projectDir);
    if (!earthly) {
      return failed(`earthly is not installed on this worker: no executable "earthly" on PATH (${baseEnv.PATH || 'empty'}) to run ${producer.target}; ` +
        'install Earthly (https://earthly.dev/get-earthly) on the artifact workers, or use a script producer');
    }
    // Through the shell, so the arguments reach Earthly as given.
    step = { name: `artifact ${name}`, action: 'script', run: `exec ${[earthly, producer.target, ...(producer.args ?? [])].map(quote).join(' ')}` };
  }

  const outcome = await runStep(step, {
    cwd: request.projectDir,
    baseEnv,
    env,
    timeoutMs: request.timeoutMs ?? PRODUCER_TIMEOUT_MS,
    timeoutReason: `producer timed out after ${Math.round((request.timeoutMs ?? PRODUCER_TIMEOUT_MS) / 1000)} s`,
    ...(request.signal ? { signal: request.signal } : {}),
    onOutput: (chunk, stream) => {
      output = (output + chunk).slice(-OUTPUT_TAIL_CHARS);
      request.onOutput?.(chunk, stream);
    },
  });
  if (outcome.status === 'failed') return failed(`producer ${producer.type} failed: ${outcome.error ?? 'failed'}`, outcome.exitCode);

  try {
    const collected = await collect(request);
    return {
      status: 'success',
      durationMs: elapsed(),
      artifact: {
        name,
        type: artifact.type,
        repository: request.repository,
        project: request.project,
        commit_sha: request.commitSha,
        version: request.version,
        output: collected,
        metadata: {
          producer: producer.type,
          ...(producer.type === 'script' ? { command: producer.run } : { target: producer.target, args: producer.args ?? [] }),
          duration_ms: outcome.durationMs,
        },
      },
    };
  } catch (error) {
    if (error instanceof CollectError || (error as { code?: string }).code === 'validation_error') return failed((error as Error).message);
    throw error;
  }
}

/** A relative artifact path inside `base`, or undefined when it would leave it. */
function inside(base: string, path: string): string | undefined {
  const full = resolve(base, path);
  const rel = relative(base, full);
  return rel.startsWith('..') || isAbsolute(rel) ? undefined : full;
}

async function find(request: ProduceRequest, path: string): Promise<{ path: string; directory: boolean }> {
  if (isAbsolute(path)) throw new CollectError(`artifact: ${JSON.stringify(path)} must be relative (to the staging directory or the project)`);
  for (const base of [request.stagingDir, request.projectDir]) {
    const full = inside(base, path);
    if (!full) throw new CollectError(`artifact: ${JSON.stringify(path)} leaves the project directory`);
    const found = await stat(full).catch(() => undefined);
    if (found) return { path: full, directory: found.isDirectory() };
  }
  throw new CollectError(`the producer left no ${JSON.stringify(path)}: looked in the staging directory ($STAGING) and in the project directory ${request.projectDir}`);
}

async function collect(request: ProduceRequest): Promise<ArtifactOutput> {
  const { artifact } = request;
  const configured = artifact.producer.artifact;
  switch (artifact.type) {
    case 'container': {
      const dir = configured ? (await find(request, configured)).path : request.stagingDir;
      if (!(await isLayoutDir(dir))) {
        throw new CollectError(`no OCI image layout at ${dir}: the producer must write one (oci-layout, index.json, blobs/) into $STAGING or the artifact path, ` +
          'e.g. `docker buildx build --output type=oci,tar=false,dest=$STAGING .` or `skopeo copy … oci:$STAGING`; images left in a Docker daemon are not supported: no Docker daemon is configured for this worker');
      }
      const image = await readLayoutImage(dir, artifact.ref);
      return {
        location_type: 'oci-layout',
        path: dir,
        ...(artifact.ref ? { image_ref: artifact.ref } : {}),
        image_id: image.imageId,
        digest: image.top.digest,
        media_type: image.top.mediaType,
        size: image.size,
        layers: image.layers,
      };
    }
    case 'binary': {
      if (!configured) throw new CollectError('a binary artifact needs artifact: "<path of the file the producer leaves>"');
      const found = await find(request, configured);
      if (found.directory) throw new CollectError(`${configured} is a directory; a binary artifact is one file`);
      return binaryOutput(found.path);
    }
    case 'archive': {
      if (!configured) throw new CollectError('an archive artifact needs artifact: "<path of the archive or directory the producer leaves>"');
      const found = await find(request, configured);
      let path = found.path;
      if (found.directory) {
        if (artifact.compression === 'zip') throw new CollectError(`${configured} is a directory and packing as zip is not supported; leave a .zip file, or use compression: "gzip"`);
        path = join(request.stagingDir, `${request.name}.tar.gz`);
        await packDirectory(found.path, path);
      }
      const archive = await archiveOutput(path);
      const wanted = artifact.compression === 'zip' ? 'zip' : artifact.compression === 'gzip' ? 'tar.gz' : undefined;
      if (wanted && archive.format !== wanted && !(wanted === 'tar.gz' && archive.format === 'gzip')) {
        throw new CollectError(`compression is "${artifact.compression}" but ${configured} is ${archive.format}`);
      }
      return archive;
    }
  }
}

/** The first bytes of a file. */
async function head(path: string, bytes: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await file.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

const ELF_MACHINES: Record<number, string> = { 3: '386', 8: 'mips', 20: 'ppc', 21: 'ppc64', 22: 's390x', 40: 'arm', 62: 'amd64', 183: 'arm64', 243: 'riscv64', 258: 'loong64' };
const MACHO_CPUS: Record<number, string> = { 7: '386', 0x01000007: 'amd64', 12: 'arm', 0x0100000c: 'arm64' };
const PE_MACHINES: Record<number, string> = { 0x14c: '386', 0x8664: 'amd64', 0xaa64: 'arm64', 0x1c0: 'arm' };

/** os, arch and static-ness from an executable's header: ELF, Mach-O (thin) or PE. */
export function executableFormat(bytes: Buffer): { os: string; arch: string; static: boolean } {
  const unknown = { os: 'unknown', arch: 'unknown', static: false };
  if (bytes.length >= 64 && bytes.readUInt32BE(0) === 0x7f454c46) {
    const is64 = bytes[4] === 2;
    const little = bytes[5] === 1;
    const u16 = (at: number) => (little ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at));
    const u32 = (at: number) => (little ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
    const machine = u16(18);
    const phoff = is64 ? Number(little ? bytes.readBigUInt64LE(32) : bytes.readBigUInt64BE(32)) : u32(28);
    const phentsize = u16(is64 ? 54 : 42);
    const phnum = u16(is64 ? 56 : 44);
    let interp = false;
    let complete = true;
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + 4 > bytes.length) { complete = false; break; }
      if (u32(at) === 3) interp = true; // PT_INTERP
    }
    const os = bytes[7] === 9 ? 'freebsd' : 'linux';
    return { os, arch: ELF_MACHINES[machine] ?? 'unknown', static: complete && !interp };
  }
  if (bytes.length >= 8) {
    const magic = bytes.readUInt32LE(0);
    if (magic === 0xfeedface || magic === 0xfeedfacf) return { os: 'darwin', arch: MACHO_CPUS[bytes.readUInt32LE(4)] ?? 'unknown', static: false };
    if (bytes.readUInt32BE(0) === 0xcafebabe) return { os: 'darwin', arch: 'universal', static: false };
  }
  if (bytes.length >= 64 && bytes[0] === 0x4d && bytes[1] === 0x5a) {
    const pe = bytes.readUInt32LE(60);
    if (pe + 6 <= bytes.length && bytes.readUInt32BE(pe) === 0x50450000) return { os: 'windows', arch: PE_MACHINES[bytes.readUInt16LE(pe + 4)] ?? 'unknown', static: false };
    return { ...unknown, os: 'windows' };
  }
  return unknown;
}

async function binaryOutput(path: string): Promise<BinaryOutput> {
  const info = await stat(path);
  const { digest, size } = await fileDigest(path);
  const format = executableFormat(await head(path, 64 * 1024));
  return { location_type: 'file', path, executable: (info.mode & 0o111) !== 0, ...format, size, digest, media_type: 'application/octet-stream' };
}

const ARCHIVE_TYPES: Record<ArchiveOutput['format'], string> = {
  'tar.gz': 'application/gzip',
  gzip: 'application/gzip',
  zip: 'application/zip',
  'tar.bz2': 'application/x-bzip2',
  tar: 'application/x-tar',
};

/** The archive's format from its first bytes (and name, for gzip: a .tar.gz / .tgz is tar.gz). */
async function archiveOutput(path: string): Promise<ArchiveOutput> {
  const bytes = await head(path, 512);
  let format: ArchiveOutput['format'];
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) format = /\.(tar\.gz|tgz)$/i.test(path) ? 'tar.gz' : 'gzip';
  else if (bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')) || bytes.subarray(0, 4).equals(Buffer.from('PK\x05\x06', 'latin1'))) format = 'zip';
  else if (bytes.subarray(0, 3).toString('latin1') === 'BZh') format = 'tar.bz2';
  else if (bytes.subarray(257, 262).toString('latin1') === 'ustar') format = 'tar';
  else throw new CollectError(`${path} is not an archive Forge knows (tar.gz, zip, tar.bz2, tar)`);
  const { digest, size } = await fileDigest(path);
  return { location_type: 'file', path, format, size, digest, media_type: ARCHIVE_TYPES[format] };
}

/** A reproducible tar.gz of `dir`'s contents (GNU tar). */
async function packDirectory(dir: string, target: string): Promise<void> {
  const entries = (await readdir(dir)).sort();
  if (entries.length === 0) throw new CollectError(`${dir} is empty: nothing to pack`);
  const tarball = `${target.replace(/\.gz$/, '')}`;
  await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-cf', tarball, '-C', dir, '.']);
  await run('gzip', ['-n', '-f', tarball]); // -n: no name or time in the header
}
