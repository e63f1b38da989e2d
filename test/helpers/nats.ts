/** Real NATS for tests: NATS_URL or nats://127.0.0.1:4222. Missing → skip locally, FAIL when CI=true. */
import { connect } from '@nats-io/transport-node';

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
