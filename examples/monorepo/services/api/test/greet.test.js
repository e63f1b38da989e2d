import { test } from 'node:test';
import assert from 'node:assert/strict';
import { greet, route } from '../src/greet.js';

test('greet uses the name, trimmed, or "world"', () => {
  assert.equal(greet('Ada'), 'Hello, Ada!');
  assert.equal(greet('  Grace Hopper '), 'Hello, Grace Hopper!');
  assert.equal(greet('Zoë'), 'Hello, Zoë!');
  assert.equal(greet(), 'Hello, world!');
});

test('greet refuses names that are not names', () => {
  for (const bad of ['', '   ', '<script>', '42', 'x'.repeat(51)]) {
    assert.throws(() => greet(bad), RangeError, JSON.stringify(bad));
  }
});

test('route answers health checks and greetings', () => {
  assert.deepEqual(route('GET', '/healthz'), { status: 200, body: { status: 'ok' } });
  assert.deepEqual(route('GET', '/greet?name=Ada'), { status: 200, body: { message: 'Hello, Ada!' } });
  assert.deepEqual(route('GET', '/greet'), { status: 200, body: { message: 'Hello, world!' } });
});

test('route reports bad input, wrong methods and unknown paths', () => {
  assert.equal(route('GET', '/greet?name=%3Cb%3E').status, 400);
  assert.equal(route('POST', '/greet').status, 405);
  assert.equal(route('DELETE', '/healthz').status, 405);
  assert.deepEqual(route('GET', '/nope'), { status: 404, body: { error: 'no route for /nope' } });
});
