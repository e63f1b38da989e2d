/** GET /v1/events: the event stream over Server-Sent Events, optionally filtered by type. */
import type { FastifyPluginAsync } from 'fastify';
import { EVENT_TYPES, type EventType } from '../domain/entities.ts';
import type { RouteDeps } from './app.ts';
import { errorResponses } from './schemas.ts';

const HEARTBEAT_MS = 15_000;
/** Bytes a stream may fall behind (written, not yet taken by the client) before it is dropped. */
export const MAX_BEHIND_BYTES = 1024 * 1024;
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

export const eventRoutes = ({ bus }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.get<{ Querystring: { types?: EventType[] } }>('/v1/events', {
    config: { permission: 'read' },
    schema: {
      summary: 'Stream events (text/event-stream): pipeline.run.created, pipeline.run.completed, release.created, deployment.created',
      tags: ['events'],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { types: { type: 'array', items: { type: 'string', enum: EVENT_TYPES }, description: 'comma-separated or repeated' } },
      },
      response: { 200: { description: 'text/event-stream of {event_type, timestamp, data} envelopes', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errorResponses },
    },
    preValidation: async (request) => {
      // Accept ?types=a,b as well as ?types=a&types=b.
      const q = request.query as { types?: string | string[] };
      if (typeof q.types === 'string') q.types = q.types.split(',').filter(Boolean);
    },
  }, async (request, reply) => {
    // A HEAD response has no body, and Node sends its headers only with the end: a stream would never answer.
    if (request.method === 'HEAD') return reply.status(200).headers(SSE_HEADERS).send();
    const wanted = request.query.types && request.query.types.length > 0 ? new Set(request.query.types) : undefined;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...SSE_HEADERS, connection: 'keep-alive' });
    res.write(': connected\n\n');
    // A client that stops reading is dropped once its socket holds MAX_BEHIND_BYTES unsent:
    // kept, it would grow the server by every event (EventSource reconnects by itself).
    const send = (text: string) => {
      if (res.writableLength > MAX_BEHIND_BYTES) {
        close();
        res.destroy();
        return;
      }
      res.write(text);
    };
    const unsubscribe = bus.subscribe((event) => {
      if (wanted && !wanted.has(event.event_type)) return;
      send(`event: ${event.event_type}\ndata: ${JSON.stringify(event)}\n\n`);
    });
    const heartbeat = setInterval(() => send(': heartbeat\n\n'), HEARTBEAT_MS);
    function close() {
      clearInterval(heartbeat);
      unsubscribe();
    }
    request.raw.on('close', close);
    res.on('error', close);
  });
};
