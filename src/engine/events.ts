/**
 * The outbox relay: moves committed events from the outbox to the publisher. It runs when a use
 * case reports that it wrote events (so delivery is prompt) and on a timer (so events written by
 * another process, or left by a crash between commit and publish, are delivered too).
 *
 * States: idle → draining (until a pass finds nothing) → idle; stopped is final.
 */
import type { EventPublisher, Store } from './ports.ts';

export interface EventRelay {
  nudge(): void;
  /** Resolves once everything committed so far has been handed to the publisher. */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

export function startEventRelay(store: Store, publisher: EventPublisher, options: { intervalMs?: number; batch?: number; onError?: (error: unknown) => void } = {}): EventRelay {
  const batch = options.batch ?? 500;
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;

  const pass = async (): Promise<void> => {
    do {
      again = false;
      try {
        while (!stopped && (await store.relayEvents(batch, (events) => publisher.publish(events.map((e) => e.envelope)))) === batch);
      } catch (error) {
        options.onError?.(error);
        return;
      }
    } while (again && !stopped);
  };

  const nudge = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = undefined;
    });
  };

  const timer = setInterval(nudge, options.intervalMs ?? 1000);
  timer.unref();

  return {
    nudge,
    async drain() {
      nudge();
      while (running) await running;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
