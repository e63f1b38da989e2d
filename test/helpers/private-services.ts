/**
 * Services of a test's own, on their own ports and directories, for tests that stop or kill them:
 * the machine's shared PostgreSQL (5432) and NATS (4222) are never touched.
 * - privateNats: nats-server with JetStream, file storage in `storeDir`.
 * - privatePostgres: a throwaway PostgreSQL 15 cluster (initdb as the postgres user, trust auth,
 *   fsync off), which needs root and the Debian server binaries; `privatePostgresMissing` says why not.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const NATS_SERVER = '/usr/sbin/nats-server';
export const natsServerMissing = existsSync(NATS_SERVER) ? undefined : `${NATS_SERVER} is not installed`;

/** A nats-server of a test's own; `stop` ends it (SIGTERM, or SIGKILL), `start` runs it again on the same port and store. */
export function privateNats(port: number, storeDir: string) {
  let child: ChildProcess | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      const proc = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let log = '';
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          log += chunk.toString();
          if (log.includes('Server is ready')) resolve();
        };
        proc.stdout!.on('data', onData);
        proc.stderr!.on('data', onData);
        proc.once('exit', (code) => reject(new Error(`nats-server exited (${code}):\n${log}`)));
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill(signal);
      await exited;
    },
  };
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

export const privatePostgresMissing = !existsSync(`${PG_BIN}/initdb`) ? `${PG_BIN}/initdb is not installed`
  : userInfo().uid !== 0 ? 'a private PostgreSQL cluster is made with initdb as the postgres user, which needs root' : undefined;

/**
 * A PostgreSQL cluster of a test's own on `port`, in a temporary directory owned by postgres:
 * `init` once, then `start`, `stop` (`fast`: clients disconnected cleanly; `immediate`: a crash,
 * recovered from WAL at the next start), `remove` at the end.
 */
export function privatePostgres(port: number) {
  const dir = mkdtempSync(join(tmpdir(), 'forge-pg-'));
  const asPostgres = (args: string[]) => run('runuser', ['-u', 'postgres', '--', ...args], { cwd: '/' });
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async init() {
      const { uid, gid } = await run('id', ['-u', 'postgres']).then(async ({ stdout }) => ({ uid: Number(stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) }));
      chownSync(dir, uid, gid);
      await asPostgres([`${PG_BIN}/initdb`, '-D', dir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    },
    async start() {
      await asPostgres([`${PG_BIN}/pg_ctl`, '-D', dir, '-w', '-l', `${dir}/server.log`,
        '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=200`, 'start']);
    },
    async stop(mode: 'fast' | 'immediate' = 'fast') {
      await asPostgres([`${PG_BIN}/pg_ctl`, '-D', dir, '-w', '-m', mode, 'stop']).catch(() => undefined);
    },
    /** Stops the cluster (a crash: nothing is kept) and deletes its directory. */
    async remove() {
      await this.stop('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
