/**
 * Fault 3: SIGKILL the API during release creation → release numbers stay contiguous, no orphan rows.
 *
 * `forge server` runs as a separate process (node bin/forge.mjs server) on its own PostgreSQL
 * database, always on the same port. Eight clients create releases as fast as the server answers,
 * on two projects of one repository, each release with two artifacts and a branch trigger. Four times,
 * once enough releases exist, the server is SIGKILLed in the middle of that load (requests are in
 * flight, some inside their transaction) and started again on the same database; meanwhile the
 * clients are refused and keep trying. A client whose request died with the server sends the same
 * request again: it gets the release if its transaction had committed (200), a new one if not (201).
 *
 * Pass: every answer is 201 or 200 (never a 5xx); per project the numbers are exactly 1..n; the
 * counter equals the highest number; every release has its trigger, its two artifacts, its numeric
 * and branch aliases and one release.created event; no alias, artifact or trigger without its
 * release; every acknowledged release is there with the number the client was told.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDevIssuer } from '../../src/auth/dev-issuer.ts';
import { killAllForgeProcesses, spawnForgeProcess, type ForgeProcess } from '../helpers/forge-process.ts';
import { postgresAdapter, type TestStore } from '../helpers/stores.ts';
import { freePort, networkCode, reportFigures, since, sleep, tally } from './support.ts';

const REPOSITORY = 'acme/kill';
const PROJECTS = ['api', 'web'];
const CLIENTS = 8;
/** Acknowledged releases at which the server is killed, and when the load ends. */
const KILL_AT = [100, 200, 300, 400];
const TOTAL = 500;

interface Sent {
  project: string;
  commit: string;
  body: string;
  /** The request may have reached the server before it died. */
  uncertain: boolean;
}

describe.skipIf(postgresAdapter.unavailable !== undefined)('fault 3: SIGKILL the API during release creation (PostgreSQL)', () => {
  let test: TestStore;
  let dataDir: string;
  let token = '';
  let port = 0;

  beforeAll(async () => {
    test = await postgresAdapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault3-'));
    // The server reads the dev issuer key this writes: the test mints the release bot's token.
    token = await (await openDevIssuer(dataDir)).sign({ sub: 'release-bot', roles: ['service-account'] });
    port = await freePort();
  });

  afterAll(async () => {
    await killAllForgeProcesses();
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const startApi = (n: number): ForgeProcess => spawnForgeProcess(`api-${n}`, ['server'], {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), TMPDIR: tmpdir(),
    DATABASE_URL: test.url!, FORGE_PORT: String(port), FORGE_DATA_DIR: dataDir, FORGE_WORKERS: 'none',
    FORGE_LOG_LEVEL: 'warn', FORGE_RATE_LIMITS: 'off', FORGE_RELEASE_REGISTRY: 'registry.test/releases',
  }, /is serving (http:\/\/\S+)/);

  it('keeps numbers gap-free per project, no orphan rows, no lost acknowledged release, across four SIGKILLs mid-load', async () => {
    const url = `http://127.0.0.1:${port}`;
    let api = startApi(0);
    await api.ready;

    const acked = new Map<string, { project: string; number: number; status: number }>();
    const answers: number[] = [];
    const failures: string[] = [];
    let refused = 0;
    let lostInFlight = 0;
    let retriedUncertain = 0;
    let uncertainCommitted = 0;
    let done = false;

    const newRequest = (project: string): Sent => {
      const commit = randomBytes(20).toString('hex');
      const artifact = (name: string) => ({
        name, type: 'container', tracking_oci_uri: `tracking.test/${REPOSITORY}/${project}/${name}:sha-${commit}`,
        tracking_oci_digest: `sha256:${randomBytes(32).toString('hex')}`, primary_published_uri: `registry.test/${project}-${name}:${commit}`,
      });
      const body = JSON.stringify({
        repository: REPOSITORY, project, commit_sha: commit, artifacts: [artifact('server'), artifact('migrations')],
        trigger: { type: 'branch_push', branch: 'main' },
      });
      return { project, commit, body, uncertain: false };
    };

    const client = async (i: number) => {
      let pending: Sent | undefined;
      for (let n = 0; !done || pending; n++) {
        const request = pending ?? newRequest(PROJECTS[(i + n) % PROJECTS.length]!);
        let res: Response;
        try {
          res = await fetch(`${url}/v1/releases`, {
            method: 'POST', body: request.body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          });
        } catch (error) {
          const code = networkCode(error);
          if (code === 'ECONNREFUSED') {
            refused += 1;
          } else {
            // Sent, and the server died before answering: did its transaction commit?
            lostInFlight += 1;
            request.uncertain = true;
          }
          pending = request;
          await sleep(50);
          continue;
        }
        answers.push(res.status);
        const answer = (await res.json()) as { release_number?: number };
        if (res.status !== 201 && res.status !== 200) {
          failures.push(`${res.status} ${JSON.stringify(answer)}`);
        } else {
          if (request.uncertain) {
            retriedUncertain += 1;
            if (res.status === 200) uncertainCommitted += 1;
          } else if (res.status !== 201) {
            failures.push(`a new commit answered ${res.status}`);
          }
          acked.set(request.commit, { project: request.project, number: answer.release_number!, status: res.status });
        }
        pending = undefined;
        if (acked.size >= TOTAL) done = true;
      }
    };

    const started = performance.now();
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    const kills: { acked_at_kill: number; restart_ms: number; first_ack_ms: number }[] = [];
    for (const [n, threshold] of KILL_AT.entries()) {
      while (acked.size < threshold && failures.length === 0) await sleep(5);
      api.signal('SIGKILL');
      const killedAt = performance.now();
      const atKill = acked.size;
      expect(await api.exited).toMatchObject({ signal: 'SIGKILL' });
      api = startApi(n + 1);
      await api.ready;
      const restartMs = since(killedAt);
      while (acked.size === atKill) await sleep(5);
      kills.push({ acked_at_kill: atKill, restart_ms: restartMs, first_ack_ms: since(killedAt) });
    }
    await Promise.all(clients);
    const loadMs = since(started);
    expect(failures).toEqual([]);

    // Gap-free per project; the counter is exactly at the highest number.
    const perProject = await sql<{ project: string; n: number; distinct_numbers: number; min: number; max: number; counter: number }>`
      SELECT r.project, count(*)::int AS n, count(DISTINCT r.release_number)::int AS distinct_numbers,
             min(r.release_number) AS min, max(r.release_number) AS max, c.last_number AS counter
      FROM releases r JOIN release_counters c ON c.repository = r.repository AND c.project = r.project
      GROUP BY r.project, c.last_number ORDER BY r.project`.execute(test.db);
    expect(perProject.rows.map((r) => r.project)).toEqual(PROJECTS);
    for (const row of perProject.rows) expect(row).toEqual({ project: row.project, n: row.n, distinct_numbers: row.n, min: 1, max: row.n, counter: row.n });
    // No counter for a project without releases, none ahead of its releases.
    expect(Number((await sql<{ n: string }>`SELECT count(*) AS n FROM release_counters`.execute(test.db)).rows[0]!.n)).toBe(PROJECTS.length);

    // Every release whole: trigger, both artifacts, numeric and branch alias, one creation event.
    const incomplete = await sql<{ id: string }>`
      SELECT r.id FROM releases r
      WHERE (SELECT count(*) FROM release_triggers t WHERE t.release_id = r.id) <> 1
         OR (SELECT count(*) FROM release_artifacts a WHERE a.release_id = r.id) <> 2
         OR NOT EXISTS (SELECT 1 FROM release_aliases a WHERE a.release_id = r.id AND a.alias_type = 'numeric' AND a.alias = r.release_number::text)
         OR NOT EXISTS (SELECT 1 FROM release_aliases a WHERE a.release_id = r.id AND a.alias_type = 'branch' AND a.alias = 'main-' || r.release_number)
         OR (SELECT count(*) FROM event_outbox e WHERE e.event_type = 'release.created' AND e.envelope->'data'->>'release_id' = r.id::text) <> 1`.execute(test.db);
    expect(incomplete.rows).toEqual([]);
    // Nothing without its release (the foreign keys say so; checked, not assumed).
    const orphans = await sql<{ n: string }>`
      SELECT (SELECT count(*) FROM release_aliases a WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.id = a.release_id))
           + (SELECT count(*) FROM release_artifacts a WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.id = a.release_id))
           + (SELECT count(*) FROM release_triggers t WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.id = t.release_id))
           + (SELECT count(*) FROM event_outbox e WHERE e.event_type = 'release.created'
                AND NOT EXISTS (SELECT 1 FROM releases r WHERE r.id::text = e.envelope->'data'->>'release_id')) AS n`.execute(test.db);
    expect(Number(orphans.rows[0]!.n)).toBe(0);

    // Every acknowledged release is there, with the number its client was told; nothing else is.
    const rows = await test.db.selectFrom('releases').select(['commit_sha', 'project', 'release_number']).execute();
    expect(rows).toHaveLength(acked.size);
    for (const row of rows) expect(acked.get(row.commit_sha)).toMatchObject({ project: row.project, number: row.release_number });

    await api.stop();
    reportFigures(3, 'SIGKILL the API during release creation', {
      clients: CLIENTS, kills: kills.length, releases: rows.length, per_project: Object.fromEntries(perProject.rows.map((r) => [r.project, r.max])),
      answers: tally(answers), refused_while_down: refused, lost_in_flight: lostInFlight, in_flight_retried: retriedUncertain,
      in_flight_had_committed: uncertainCommitted, restarts: kills, gaps: 0, orphans: 0, load_ms: loadMs,
    });
  }, 90_000);
});
