/** Real NATS for tests: NATS_URL or nats://127.0.0.1:4222. Missing → skip locally, FAIL when CI=true. */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { DeadLetter } from '../../src/queue/delivery.ts';
import { deadLetterStreamName } from '../../src/queue/jobs.nats.ts';

export const TEST_NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

async function probe(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: TEST_NATS_URL, timeout: 2000, reconnect: false });
    await nc.close();
    return undefined;
  } catch (error) {
    return `NATS at ${TEST_NATS_URL} is not reachable: ${(error as Error).message}`;
  }
}

export const natsUnavailable = await probe();
if (natsUnavailable && process.env.CI === 'true') {
  throw new Error(`CI=true and the real-NATS suites cannot run: ${natsUnavailable}`);
}

/** Every message of a namespace's dead-letter stream, oldest first. */
export async function readDeadLetters(url: string, namespace: string): Promise<DeadLetter[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const { stream } = deadLetterStreamName(namespace);
    const { state } = await jsm.streams.info(stream);
    const letters: DeadLetter[] = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const stored = await jsm.streams.getMessage(stream, { seq });
      if (stored) letters.push(stored.json<DeadLetter>());
    }
    return letters;
  } finally {
    await nc.close();
  }
}
