import { describe, expect, it } from 'vitest';
import { MASK, Masker, maskedForms } from './masker.ts';

/** `text` written to a masking stream in pieces cut at `cuts`. */
function streamed(masker: Masker, text: string, cuts: number[]): string {
  const stream = masker.stream();
  let out = '';
  let at = 0;
  for (const cut of [...cuts, text.length]) {
    out += stream.write(text.slice(at, cut));
    at = cut;
  }
  return out + stream.end();
}

describe('Masker', () => {
  const secret = 's3cr3t-value-42';

  it('masks the value and its Base64, URL-encoded and JSON-escaped forms, and lines of a multi-line value', () => {
    const odd = 'p@ss word/"quoted"';
    const pem = '-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----';
    const masker = new Masker([secret, odd, pem]);
    expect(masker.mask(`token=${secret} basic=${Buffer.from(secret).toString('base64')}`)).toBe('token=*** basic=***');
    expect(masker.mask(`url=https://u:${encodeURIComponent(odd)}@host json=${JSON.stringify({ p: odd })}`)).toBe('url=https://u:***@host json={"p":"***"}');
    expect(masker.mask(`key:\n  AAAABBBBCCCC\n`)).toBe(`key:\n  ${MASK}\n`);
    expect(maskedForms([''])).toEqual([]);
    expect(new Masker([]).mask(secret)).toBe(secret);
  });

  it('masks the value inside a longer Base64 text at any offset (Basic user:value, docker auth), but not a short value\'s Base64 inside others', () => {
    const masker = new Masker([secret]);
    for (const user of ['', 'u', 'ci', 'bot', 'robot-account']) {
      const basic = Buffer.from(`${user}:${secret}`).toString('base64');
      const masked = masker.mask(`Authorization: Basic ${basic}`);
      expect(masked, user).toContain(MASK);
      // At most two bytes of the value at each edge stay encoded: never a run that decodes to 4+ of its characters.
      const left = masked.split(MASK).join(' ');
      expect(Buffer.from(left.replace(/^Authorization: Basic /, ''), 'base64').toString('latin1'), user).not.toContain(secret.slice(2, 6));
    }
    const docker = JSON.stringify({ auths: { 'r.example': { auth: Buffer.from(`bot:${secret}`).toString('base64') } } });
    expect(masker.mask(docker)).toContain(MASK);
    // A 5-byte value is masked as is and as Base64 alone, not as runs inside other Base64.
    expect(new Masker(['abcde']).mask(Buffer.from('xxabcdexx').toString('base64'))).toBe(Buffer.from('xxabcdexx').toString('base64'));
  });

  it('masks a value split across chunks at every position, and keeps the rest of the text as is', () => {
    const masker = new Masker([secret]);
    const text = `before ${secret} middle ${secret}${secret} after s3cr3t`;
    const expected = `before ${MASK} middle ${MASK}${MASK} after s3cr3t`;
    for (let a = 0; a <= text.length; a++) {
      expect(streamed(masker, text, [a])).toBe(expected);
      for (let b = a; b <= text.length; b += 3) expect(streamed(masker, text, [a, b])).toBe(expected);
    }
    // One character at a time.
    expect(streamed(masker, text, Array.from({ length: text.length }, (_, i) => i))).toBe(expected);
  });

  it('keeps back only what could begin a value, and gives it at the end', () => {
    const stream = new Masker([secret]).stream();
    expect(stream.write('line one\n')).toBe('line one\n');
    expect(stream.write('x s3cr')).toBe('x ');
    expect(stream.write('ew')).toBe('s3crew');
    expect(stream.write('s3c')).toBe('');
    expect(stream.end()).toBe('s3c');
  });
});
