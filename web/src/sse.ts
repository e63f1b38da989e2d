/**
 * Server-sent events over fetch (EventSource cannot send the Authorization header), parsed by the
 * parser the CLI uses (src/lib/sse.ts); reconnects with backoff and reports whether it is
 * connected, so the page can say so.
 */
import { parseEventStream, type ServerSentEvent } from '../../src/lib/sse.ts';
import { authHeaders } from './api.ts';

/** A fetch body as the async iterable the shared parser reads (not every browser iterates streams). */
async function* chunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

export function subscribe(path: string, onMessage: (message: ServerSentEvent) => void, onState: (connected: boolean) => void = () => {}): () => void {
  const controller = new AbortController();
  let delay = 1000;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(path, { headers: { accept: 'text/event-stream', ...(await authHeaders()) }, signal: controller.signal });
        if (!response.ok || !response.body) throw new Error(`${response.status}`);
        onState(true);
        delay = 1000;
        for await (const message of parseEventStream(chunks(response.body))) onMessage(message);
      } catch {
        if (controller.signal.aborted) return;
      }
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15_000);
    }
  };
  void run();
  return () => controller.abort();
}
