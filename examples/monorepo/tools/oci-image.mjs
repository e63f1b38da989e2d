#!/usr/bin/env node
/**
 * oci-image.mjs: builds a deterministic one-layer OCI image layout from a directory, with Node's
 * built-ins only (no Docker, no Earthly, no registry). Forge's `script` producer runs it for the
 * example's container artifacts; the layout it writes is what Forge reads and publishes.
 *
 *   node tools/oci-image.mjs --from <dir> --prefix <path-in-image> --out <layout-dir>
 *        [--include <path>]... [--exclude <name-glob>]...
 *        [--cmd node,src/server.js] [--entrypoint python3,-m,worker] [--workdir /app]
 *        [--env K=V]... [--tag <name>]
 *
 *   --from        the directory whose files go into the layer
 *   --prefix      where they land in the image (`/app`: <from>/src/a.js → /app/src/a.js)
 *   --out         the OCI image layout directory to write (oci-layout, index.json, blobs/sha256/…);
 *                 an existing layout there is replaced, any other non-empty directory is refused
 *   --include     only these paths of <from> (files or directories, relative); default everything
 *   --exclude     leave out files and directories whose name matches (`__pycache__`, `*.pyc`; `*`
 *                 is the only wildcard); the --out directory is always left out
 *   --cmd, --entrypoint
 *                 the config's Cmd / Entrypoint: words separated by commas, or a JSON array
 *   --workdir     the config's WorkingDir; default the prefix
 *   --env         K=V, repeatable; PATH defaults to the usual
 *                 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
 *   --tag         an `org.opencontainers.image.ref.name` annotation in index.json (`oci:<dir>:<tag>`)
 *
 * What is written. One layer: a ustar tar of the files (names in byte order, each directory before
 * its contents, parent directories of the prefix included; regular files 0644, or 0755 when any
 * execute bit is set; directories 0755; symbolic links kept as links; uid/gid 0, no user or group
 * names, mtime 0), gzipped at level 9 with no file name, mtime 0 and OS byte 255 ("unknown"). An
 * image config (amd64/linux, rootfs.diff_ids = the sha256 of the uncompressed tar, `created` the
 * Unix epoch), an image manifest, index.json and oci-layout. Same files and flags → the same bytes,
 * so the same manifest digest. The compressed layer depends on the zlib build inside Node: another
 * Node version may compress differently (other layer and manifest digests); the diff_id does not.
 *
 * What it is not. The image holds the application files only: there is no base image, so no Node.js
 * or Python runtime inside it. It is a real, inspectable and publishable image (skopeo, crane and
 * Forge read it), not one that runs as is; the Earthfiles beside the projects build runnable ones
 * on top of node/python base images where Earthly is installed.
 *
 * Prints the manifest digest and the layout directory; exits 1 with a message on bad flags or input.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { constants as zlibConstants, gzipSync } from 'node:zlib';

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};
const EPOCH = '1970-01-01T00:00:00Z';
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const USAGE = 'usage: node oci-image.mjs --from <dir> --prefix <path-in-image> --out <layout-dir> ' +
  '[--include <path>]... [--exclude <name-glob>]... [--cmd a,b] [--entrypoint a,b] [--workdir /app] [--env K=V]... [--tag <name>]';

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Flags

const SINGLE = new Set(['from', 'prefix', 'out', 'cmd', 'entrypoint', 'workdir', 'tag']);
const REPEATED = new Set(['include', 'exclude', 'env']);

function parseFlags(argv) {
  const flags = { include: [], exclude: [], env: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    const match = /^--([a-z]+)(?:=(.*))?$/s.exec(arg);
    if (!match || (!SINGLE.has(match[1]) && !REPEATED.has(match[1]))) throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    const name = match[1];
    let value = match[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      value = argv[++i];
    }
    if (REPEATED.has(name)) flags[name].push(value);
    else if (flags[name] !== undefined) throw new UsageError(`--${name} given twice`);
    else flags[name] = value;
  }
  for (const required of ['from', 'prefix', 'out']) if (flags[required] === undefined) throw new UsageError(`--${required} is required`);
  return flags;
}

/** `a,b,c` or a JSON array of strings. */
function words(flag, value) {
  if (value.trimStart().startsWith('[')) {
    let parsed;
    try {
      parsed = JSON.parse(value);
    } catch (error) {
      throw new UsageError(`--${flag}: not a JSON array (${error.message})`);
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((w) => typeof w === 'string')) throw new UsageError(`--${flag}: give a non-empty JSON array of strings`);
    return parsed;
  }
  const list = value.split(',');
  if (list.some((w) => w === '')) throw new UsageError(`--${flag} ${JSON.stringify(value)}: empty word (use a JSON array for words with commas)`);
  return list;
}

/** `/app/` → `app`; `/` or `` → `` (the image root). Refuses `..`. */
function imagePath(prefix) {
  const parts = prefix.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UsageError(`--prefix ${JSON.stringify(prefix)}: no ".." allowed`);
  return parts.join('/');
}

const globToRegExp = (glob) => new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');

// ---------------------------------------------------------------------------------------------
// The layer: a deterministic ustar archive

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Entries {path (in the image), kind, mode, data | link} in archive order. */
function collectEntries({ from, prefix, include, exclude, skip }) {
  const entries = [];
  const dirsDone = new Set();
  const addDir = (path) => {
    if (path === '' || dirsDone.has(path)) return;
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    addDir(parent);
    dirsDone.add(path);
    entries.push({ path, kind: 'dir', mode: 0o755 });
  };
  const excluded = (name) => exclude.some((re) => re.test(name));
  const inImage = (rel) => [prefix, rel.split(sep).join('/')].filter((p) => p !== '').join('/');

  const visit = (abs) => {
    if (skip.some((s) => abs === s)) return;
    const rel = relative(from, abs);
    const target = inImage(rel);
    const info = lstatSync(abs);
    if (info.isSymbolicLink()) {
      entries.push({ path: target, kind: 'link', mode: 0o777, link: readlinkSync(abs) });
    } else if (info.isDirectory()) {
      addDir(target);
      const names = readdirSync(abs).filter((n) => !excluded(n)).sort(byteOrder);
      for (const name of names) visit(join(abs, name));
    } else if (info.isFile()) {
      entries.push({ path: target, kind: 'file', mode: info.mode & 0o111 ? 0o755 : 0o644, data: readFileSync(abs) });
    } else {
      throw new UsageError(`${abs}: not a regular file, directory or symbolic link`);
    }
  };

  addDir(prefix);
  const roots = include.length === 0 ? [from] : include.map((p) => {
    const abs = resolve(from, p);
    const rel = relative(from, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new UsageError(`--include ${JSON.stringify(p)} leaves --from ${from}`);
    if (!lstatSync(abs, { throwIfNoEntry: false })) throw new UsageError(`--include ${JSON.stringify(p)}: no such file or directory in ${from}`);
    return abs;
  });
  for (const root of new Set(roots)) {
    const parts = relative(from, root).split(sep).filter((part) => part !== '');
    if (parts.some(excluded)) continue;
    if (parts.length > 1) addDir(inImage(parts.slice(0, -1).join(sep)));
    visit(root);
  }
  // One order whatever the walk or --include order: by path, each directory before its contents
  // (comparing with "/" as the lowest byte), an entry reached twice kept once.
  const seen = new Set();
  return entries.filter((e) => (seen.has(e.path) ? false : (seen.add(e.path), true)))
    .sort((a, b) => byteOrder(a.path.split('/').join('\0'), b.path.split('/').join('\0')));
}

function octal(value, width) {
  const text = value.toString(8);
  if (text.length > width - 1) throw new UsageError(`value ${value} does not fit a ustar field of ${width} bytes`);
  return text.padStart(width - 1, '0') + '\0';
}

function writeString(block, offset, width, text, what) {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > width) throw new UsageError(`${what} ${JSON.stringify(text)} is longer than ${width} bytes (ustar limit)`);
  bytes.copy(block, offset);
}

/** ustar name/prefix split: name ≤ 100 bytes, prefix ≤ 155 bytes, split at a slash. */
function splitName(path) {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: '' };
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') return { name, prefix };
  }
  throw new UsageError(`path ${JSON.stringify(path)} is too long for a ustar header`);
}

function header(entry) {
  const block = Buffer.alloc(512);
  const path = entry.kind === 'dir' ? `${entry.path}/` : entry.path;
  const { name, prefix } = splitName(path);
  const size = entry.kind === 'file' ? entry.data.length : 0;
  writeString(block, 0, 100, name, 'name');
  block.write(octal(entry.mode, 8), 100, 'ascii');
  block.write(octal(0, 8), 108, 'ascii'); // uid
  block.write(octal(0, 8), 116, 'ascii'); // gid
  block.write(octal(size, 12), 124, 'ascii');
  block.write(octal(0, 12), 136, 'ascii'); // mtime
  block.write(' '.repeat(8), 148, 'ascii'); // checksum placeholder
  block.write(entry.kind === 'dir' ? '5' : entry.kind === 'link' ? '2' : '0', 156, 'ascii');
  if (entry.kind === 'link') writeString(block, 157, 100, entry.link, `link target of ${entry.path}`);
  block.write('ustar\0', 257, 'ascii');
  block.write('00', 263, 'ascii');
  block.write(octal(0, 8), 329, 'ascii'); // devmajor
  block.write(octal(0, 8), 337, 'ascii'); // devminor
  writeString(block, 345, 155, prefix, 'path prefix');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return block;
}

function tar(entries) {
  const chunks = [];
  for (const entry of entries) {
    chunks.push(header(entry));
    if (entry.kind === 'file' && entry.data.length > 0) {
      chunks.push(entry.data);
      const pad = (512 - (entry.data.length % 512)) % 512;
      if (pad) chunks.push(Buffer.alloc(pad));
    }
  }
  chunks.push(Buffer.alloc(1024)); // end of archive: two zero blocks
  return Buffer.concat(chunks);
}

/** gzip with a fixed header: no name, mtime 0, OS 255 (zlib writes the build's OS code there). */
function gzip(data) {
  const out = gzipSync(data, { level: 9, memLevel: 8, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  out.writeUInt32LE(0, 4);
  out[9] = 255;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The layout

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function prepareOut(out) {
  let entries;
  try {
    entries = readdirSync(out);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    mkdirSync(out, { recursive: true });
    return;
  }
  if (entries.length > 0) {
    let isLayout = false;
    try {
      isLayout = statSync(join(out, 'oci-layout')).isFile();
    } catch {}
    if (!isLayout) throw new UsageError(`--out ${out} is a non-empty directory that is not an OCI image layout; refusing to replace it`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
  }
}

function main(argv) {
  const flags = parseFlags(argv);
  const from = resolve(flags.from);
  if (!statSync(from, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--from ${flags.from}: not a directory`);
  const out = resolve(flags.out);
  const fromInOut = relative(out, from);
  if (!fromInOut.startsWith('..') && !isAbsolute(fromInOut)) throw new UsageError(`--out ${flags.out} must not be --from or contain it`);
  const prefix = imagePath(flags.prefix);

  const env = flags.env.map((kv) => {
    if (!/^[^=]+=/s.test(kv)) throw new UsageError(`--env ${JSON.stringify(kv)}: expected K=V`);
    return kv;
  });
  if (!env.some((kv) => kv.startsWith('PATH='))) env.unshift(`PATH=${DEFAULT_PATH}`);
  const config = { Env: env };
  if (flags.entrypoint !== undefined) config.Entrypoint = words('entrypoint', flags.entrypoint);
  if (flags.cmd !== undefined) config.Cmd = words('cmd', flags.cmd);
  config.WorkingDir = flags.workdir ?? `/${prefix}`;

  const entries = collectEntries({ from, prefix, include: flags.include, exclude: flags.exclude.map(globToRegExp), skip: [out] });
  const layerTar = tar(entries);
  const layer = gzip(layerTar);

  const configBytes = Buffer.from(JSON.stringify({
    created: EPOCH,
    architecture: 'amd64',
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    history: [{ created: EPOCH, created_by: `oci-image.mjs: ${entries.filter((e) => e.kind !== 'dir').length} files under /${prefix}` }],
  }));
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: sha256(configBytes), size: configBytes.length },
    layers: [{ mediaType: MEDIA.layer, digest: sha256(layer), size: layer.length }],
  }));
  const manifestDigest = sha256(manifestBytes);
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{
      mediaType: MEDIA.manifest,
      digest: manifestDigest,
      size: manifestBytes.length,
      platform: { architecture: 'amd64', os: 'linux' },
      ...(flags.tag !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': flags.tag } } : {}),
    }],
  };

  prepareOut(out);
  const blobs = join(out, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  for (const blob of [layer, configBytes, manifestBytes]) writeFileSync(join(blobs, sha256(blob).slice('sha256:'.length)), blob);
  writeFileSync(join(out, 'index.json'), JSON.stringify(index));
  writeFileSync(join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  console.log(`${manifestDigest} ${out}`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`oci-image: ${error.message}\n${USAGE}`);
  } else {
    console.error(`oci-image: ${error.stack ?? error}`);
  }
  process.exit(1);
}
