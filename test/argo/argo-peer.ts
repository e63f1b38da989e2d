/**
 * A local stand-in for the Argo Server's REST API (no Argo can run here): it records every request
 * (method, path, headers, parsed body) and answers as the test says, by default like Argo does for
 * a created Workflow (200 with the Workflow, metadata.name as submitted).
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface ArgoPeer {
  url: string;
  requests: RecordedRequest[];
  /** What the next requests are answered with (status and JSON body); undefined = the default. */
  answer: ((request: RecordedRequest) => { status: number; body: unknown }) | undefined;
  close(): Promise<void>;
}

export async function startArgoPeer(): Promise<ArgoPeer> {
  const requests: RecordedRequest[] = [];
  const peer: ArgoPeer = { url: '', requests, answer: undefined, close: async () => undefined };
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // recorded as text
      }
      const request: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
      requests.push(request);
      const { status, body: reply } = peer.answer?.(request) ?? { status: 200, body: (body as { workflow?: unknown }).workflow ?? {} };
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  peer.close = () => new Promise((resolve) => server.close(() => resolve()));
  return peer;
}
