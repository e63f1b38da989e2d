// The real HTTP server on an ephemeral port, exercised with fetch (Node 20 builtin).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from '../src/server.js';

let server;
let base;

before(async () => {
  server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test('GET /greet returns JSON', async () => {
  const res = await fetch(`${base}/greet?name=Linus`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /application\/json/);
  assert.deepEqual(await res.json(), { message: 'Hello, Linus!' });
});

test('unknown paths are 404', async () => {
  const res = await fetch(`${base}/missing`);
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { error: 'no route for /missing' });
});
