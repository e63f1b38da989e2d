// HTTP server for the api service: `node src/server.js` listens on $PORT (default 8080).
import { createServer as createHttpServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { route } from './greet.js';

export function createServer() {
  return createHttpServer((req, res) => {
    const { status, body } = route(req.method ?? 'GET', req.url ?? '/');
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
}

// Started directly (not imported by the tests): listen, and stop cleanly on SIGTERM (Kubernetes).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 8080);
  const server = createServer().listen(port, () => console.log(`api listening on :${port}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
