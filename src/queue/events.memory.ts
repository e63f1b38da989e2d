/** In-process event bus: the embedded publisher, and the fan-out point for SSE subscribers. */
import type { EventEnvelope } from '../domain/entities.ts';
import type { EventPublisher, EventStream } from '../engine/ports.ts';

export type EventListener = (event: EventEnvelope) => void;

export class EventBus implements EventPublisher, EventStream {
  private readonly listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Delivers to every listener; one failing listener does not stop the others. */
  emit(event: EventEnvelope): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A subscriber's own failure (a closed SSE socket) is its business.
      }
    }
  }

  async publish(events: EventEnvelope[]): Promise<void> {
    for (const event of events) this.emit(event);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
