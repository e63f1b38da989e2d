// Request handling for the api service, kept free of I/O so it can be tested directly.

const NAME = /^[\p{L}][\p{L} '-]{0,49}$/u;

/** A greeting for `name`; throws RangeError for names that are empty, too long or not letters. */
export function greet(name = 'world') {
  const trimmed = String(name).trim();
  if (!NAME.test(trimmed)) {
    throw new RangeError('name must be 1-50 letters, spaces, hyphens or apostrophes');
  }
  return `Hello, ${trimmed}!`;
}

/**
 * Routes one request to a response: { status, body } where body is a JSON-serialisable value.
 *   GET /healthz             -> 200 { status: "ok" }
 *   GET /greet?name=Ada      -> 200 { message: "Hello, Ada!" }
 */
export function route(method, url) {
  const { pathname, searchParams } = new URL(url, 'http://localhost');
  if (pathname === '/healthz') {
    return method === 'GET' ? { status: 200, body: { status: 'ok' } } : notAllowed();
  }
  if (pathname === '/greet') {
    if (method !== 'GET') return notAllowed();
    try {
      return { status: 200, body: { message: greet(searchParams.get('name') ?? undefined) } };
    } catch (error) {
      return { status: 400, body: { error: error.message } };
    }
  }
  return { status: 404, body: { error: `no route for ${pathname}` } };
}

function notAllowed() {
  return { status: 405, body: { error: 'method not allowed' } };
}
