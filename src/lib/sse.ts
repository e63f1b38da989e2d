/**
 * Server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html) read from a
 * byte stream: `event:` names the event (default `message`), `data:` lines are joined with `\n`, a
 * blank line dispatches, lines starting with `:` are comments (heartbeats). `id:` and `retry:` are
 * not used by Forge and are ignored.
 */

export interface ServerSentEvent {
  event: string;
  data: string;
}

export async function* parseEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffered = '';
  let event = '';
  let data: string[] = [];
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end of a chunk may be the first half of \r\n: wait for the next chunk.
      if (buffered[end] === '\r' && end === buffered.length - 1) break;
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + (buffered.startsWith('\r\n', end) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n') };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
  }
}
