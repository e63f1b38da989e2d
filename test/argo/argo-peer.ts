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
  /**
   * The Workflows it holds, by name, as Argo would: each submitted one is added as Running (status
   * phase and message); a test fails, stops or deletes one here. Lists and GETs by name answer from it.
   */
  workflows: Map<string, { phase: string; message: string | null; labels: Record<string, string> }>;
  /** What the next requests are answered with (status and JSON body); undefined (or an answer of undefined) = the default. */
  answer: ((request: RecordedRequest) => { status: number; body: unknown } | undefined) | undefined;
  close(): Promise<void>;
}

export async function startArgoPeer(): Promise<ArgoPeer> {
  const requests: RecordedRequest[] = [];
  const peer: ArgoPeer = { url: '', requests, workflows: new Map(), answer: undefined, close: async () => undefined };
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
      const { status, body: reply } = peer.answer?.(request) ?? argoAnswer(peer, request);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  peer.close = () => new Promise((resolve) => server.close(() => resolve()));
  return peer;
}

/** What Argo answers by default: a created Workflow (and it is held as Running), a list (label selector of one key), a Workflow by name or 404. */
function argoAnswer(peer: ArgoPeer, request: RecordedRequest): { status: number; body: unknown } {
  const url = new URL(request.path, 'http://peer');
  const parts = url.pathname.split('/').filter(Boolean); // api v1 workflows <namespace> [name]
  if (request.method === 'POST') {
    const workflow = (request.body as { workflow?: { metadata?: { name?: string; labels?: Record<string, string> } } }).workflow ?? {};
    const name = workflow.metadata?.name;
    if (name) {
      if (peer.workflows.has(name)) return { status: 409, body: { code: 6, message: `workflows.argoproj.io "${name}" already exists` } };
      peer.workflows.set(name, { phase: 'Running', message: null, labels: workflow.metadata?.labels ?? {} });
    }
    return { status: 200, body: workflow };
  }
  if (request.method === 'GET' && parts.length === 4) {
    const selector = url.searchParams.get('listOptions.labelSelector');
    const items = [...peer.workflows].filter(([, w]) => !selector || selector in w.labels)
      .map(([name, w]) => ({ metadata: { name }, status: { phase: w.phase, ...(w.message ? { message: w.message } : {}) } }));
    return { status: 200, body: { metadata: {}, items } };
  }
  if (request.method === 'GET' && parts.length === 5) {
    const name = decodeURIComponent(parts[4]!);
    return peer.workflows.has(name) ? { status: 200, body: { metadata: { name } } } : { status: 404, body: { code: 5, message: `workflows.argoproj.io "${name}" not found` } };
  }
  return { status: 404, body: { message: 'not found' } };
}
