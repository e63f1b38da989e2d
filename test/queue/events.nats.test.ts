/** Events over real NATS: forge.events.<event_type>, fanned back into every replica's local bus. */
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { envelope, type EventEnvelope } from '../../src/domain/entities.ts';
import { EventBus } from '../../src/queue/events.memory.ts';
import { connectNatsEvents } from '../../src/queue/events.nats.ts';
import { TEST_NATS_URL, natsUnavailable } from '../helpers/nats.ts';

describe('NATS event publisher', () => {
  it('publishes each event to forge.events.<event_type> and feeds the local bus of every replica', async (context) => {
    if (natsUnavailable) context.skip(natsUnavailable);
    const watcher = await connect({ servers: TEST_NATS_URL });
    const runId = crypto.randomUUID();
    const sub = watcher.subscribe('forge.events.pipeline.run.created');
    await watcher.flush(); // the subscription is at the server before anything is published
    const received = (async () => {
      for await (const msg of sub) {
        const event = msg.json<EventEnvelope>();
        if ((event.data as { run_id: string }).run_id === runId) return { subject: msg.subject, event };
      }
      return undefined;
    })();
    const busA = new EventBus();
    const busB = new EventBus();
    const a = await connectNatsEvents(TEST_NATS_URL, busA, 'test-a');
    const b = await connectNatsEvents(TEST_NATS_URL, busB, 'test-b');
    const onB = new Promise<EventEnvelope>((resolve) => busB.subscribe((e) => {
      if ((e.data as { run_id?: string }).run_id === runId) resolve(e);
    }));
    const event = envelope('pipeline.run.created', { run_id: runId, repository: 'acme/shop', commit_sha: 'c'.repeat(40) }, new Date());
    await a.publish([event]);
    const got = await received;
    expect(got).toEqual({ subject: 'forge.events.pipeline.run.created', event });
    expect(await onB).toEqual(event);
    sub.unsubscribe();
    await Promise.all([a.close(), b.close(), watcher.close()]);
  });
});
