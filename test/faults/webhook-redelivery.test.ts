/**
 * Fault 9: the same GitHub webhook delivered 10× at once → one run.
 *
 * A real listening `forge server` (startServer, no workers) on each store adapter (PGlite, PostgreSQL)
 * gets GitHub's own push example payload, signed with the webhook secret, over HTTP:
 * - 10 concurrent POSTs with the same X-GitHub-Delivery (GitHub retrying one delivery): exactly one
 *   run row and one delivery row; one answer is 201 "created", the other nine 200 "duplicate"; no 5xx.
 * - 10 concurrent POSTs of the same push with different delivery ids (the hook configured twice,
 *   a manual "redeliver" of an event GitHub also retried): still one run, since a run is unique per
 *   repository + commit; one 201 "created", nine 200 "exists", ten delivery rows.
 * Each round is repeated with fresh commits so that a race has several chances to show.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/bin/server.ts';
import { parseServerSettings } from '../../src/settings/settings.ts';
import { STORE_ADAPTERS, type TestStore } from '../helpers/stores.ts';
import { reportFigures, since, tally } from './support.ts';

const SECRET = 'webhook secret of the fault test';
const ROUNDS = 40;
const CONCURRENCY = 10;
type Payload = Record<string, unknown>;
const definitions = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('@octokit/webhooks-examples'), 'utf8')) as { name: string; examples: Payload[] }[];
const pushExample = definitions.find((d) => d.name === 'push')!.examples.find((p) => p.ref === 'refs/heads/master')!;

describe.each(STORE_ADAPTERS)('fault 9: one GitHub push delivered 10× at once, on $name', (adapter) => {
  let test: TestStore;
  let running: RunningServer;
  let dataDir: string;

  beforeAll(async () => {
    if (adapter.unavailable) return;
    test = await adapter.open();
    dataDir = mkdtempSync(join(tmpdir(), 'forge-fault9-'));
    const settings = parseServerSettings({}, {
      FORGE_WORKERS: 'none', FORGE_PORT: '0', FORGE_LOG_LEVEL: 'silent', FORGE_DATA_DIR: dataDir, FORGE_RATE_LIMITS: 'off',
      FORGE_GITHUB_WEBHOOK_SECRET: SECRET,
    });
    running = await startServer(settings, { store: test.store, announce: false });
  });

  afterAll(async () => {
    await running?.close();
    await test?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** GitHub's push example for a new commit on main of acme/hooks, as the exact bytes GitHub would sign. */
  const push = () => {
    const commit = randomBytes(20).toString('hex');
    const body = JSON.stringify({ ...structuredClone(pushExample), ref: 'refs/heads/main', after: commit, repository: { ...(pushExample.repository as object), full_name: 'acme/hooks' } });
    return { commit, body };
  };
  const deliver = async (body: string, delivery: string) => {
    const res = await fetch(`${running.url}/v1/webhooks/github`, {
      method: 'POST', body,
      headers: {
        'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery,
        'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
      },
    });
    return { code: res.status, body: (await res.json()) as { status: string; run_id?: string } };
  };
  const runsOf = async (commit: string) => test.db.selectFrom('pipeline_runs').select('id').where('commit_sha', '=', commit).execute();
  const deliveriesOf = async (runId: string) => test.db.selectFrom('github_deliveries').select('delivery_id').where('run_id', '=', runId).execute();

  it.skipIf(adapter.unavailable !== undefined)('the same X-GitHub-Delivery 10× at once: one run, one 201 "created", nine 200 "duplicate", no 5xx', async () => {
    const answers: string[] = [];
    const started = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      const { commit, body } = push();
      const delivery = randomUUID();
      const replies = await Promise.all(Array.from({ length: CONCURRENCY }, () => deliver(body, delivery)));
      answers.push(...replies.map((r) => `${r.code} ${r.body.status}`));
      const runs = await runsOf(commit);
      expect(runs).toHaveLength(1);
      expect(replies.every((r) => r.body.run_id === runs[0]!.id)).toBe(true);
      expect(await deliveriesOf(runs[0]!.id)).toHaveLength(1);
      expect(tally(replies.map((r) => `${r.code} ${r.body.status}`))).toEqual({ '201 created': 1, '200 duplicate': CONCURRENCY - 1 });
    }
    reportFigures(9, `same delivery id ×${CONCURRENCY} concurrently (${adapter.name})`, {
      rounds: ROUNDS, requests: ROUNDS * CONCURRENCY, answers: tally(answers), runs_per_round: 1, ms: since(started),
    });
  });

  it.skipIf(adapter.unavailable !== undefined)('the same push 10× at once under different delivery ids: one run, one 201 "created", nine 200 "exists", ten deliveries', async () => {
    const answers: string[] = [];
    const started = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      const { commit, body } = push();
      const replies = await Promise.all(Array.from({ length: CONCURRENCY }, () => deliver(body, randomUUID())));
      answers.push(...replies.map((r) => `${r.code} ${r.body.status}`));
      const runs = await runsOf(commit);
      expect(runs).toHaveLength(1);
      expect(replies.every((r) => r.body.run_id === runs[0]!.id)).toBe(true);
      expect(await deliveriesOf(runs[0]!.id)).toHaveLength(CONCURRENCY);
      expect(tally(replies.map((r) => `${r.code} ${r.body.status}`))).toEqual({ '201 created': 1, '200 exists': CONCURRENCY - 1 });
    }
    reportFigures(9, `same push ×${CONCURRENCY} concurrently, distinct delivery ids (${adapter.name})`, {
      rounds: ROUNDS, requests: ROUNDS * CONCURRENCY, answers: tally(answers), runs_per_round: 1, ms: since(started),
    });
  });
});
