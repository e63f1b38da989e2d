/**
 * A local stand-in for api.github.com: a real HTTP server that records every request and answers
 * with the status the test sets (201 by default, or an error with GitHub's `{message}` body).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PeerRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface GitHubPeer {
  url: string;
  requests: PeerRequest[];
  /** The status every request gets from now on; >= 400 answers `{message: "<status> from the test peer"}`. */
  answer: number;
  close(): Promise<void>;
}

export async function startGitHubPeer(): Promise<GitHubPeer> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      peer.requests.push({
        method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization,
        body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
      });
      const status = peer.answer;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status >= 400 ? { message: `${status} from the test peer` } : { id: peer.requests.length }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const peer: GitHubPeer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: [],
    answer: 201,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    }),
  };
  return peer;
}
