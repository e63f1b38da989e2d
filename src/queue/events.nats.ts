/**
 * NATS event publisher: each event goes to `forge.events.<event_type>`. The same connection
 * subscribes to `forge.events.>` and feeds the local bus, so SSE clients of every API replica see
 * every replica's events.
 */
import { ForgeError } from '../domain/errors.ts';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EventEnvelope } from '../domain/entities.ts';
import type { EventPublisher } from '../engine/ports.ts';
import type { EventBus } from './events.memory.ts';

export const EVENT_SUBJECT_PREFIX = 'forge.events';

export async function connectNatsEvents(url: string, bus: EventBus, name = 'forge-api'): Promise<EventPublisher> {
  const nc: NatsConnection = await connect({ servers: url, name, maxReconnectAttempts: -1 }).catch((error: unknown) => {
    throw new ForgeError('service_unavailable', `cannot connect to NATS at ${url}: ${(error as Error).message}`, {}, { cause: error });
  });
  const sub = nc.subscribe(`${EVENT_SUBJECT_PREFIX}.>`);
  // Subscribed at the server before this resolves: events another replica publishes from now on arrive.
  await nc.flush();
  void (async () => {
    for await (const msg of sub) {
      try {
        bus.emit(msg.json<EventEnvelope>());
      } catch {
        // Not a Forge envelope: ignore it.
      }
    }
  })();
  return {
    async publish(events) {
      for (const event of events) nc.publish(`${EVENT_SUBJECT_PREFIX}.${event.event_type}`, JSON.stringify(event));
      // The outbox marks events published only once NATS has them.
      await nc.flush();
    },
    async close() {
      await nc.drain();
    },
  };
}
