import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.ts';

describe('sliding-window rate limiter', () => {
  it('allows max per window per key and tells how long to wait', () => {
    let now = 60_000 * 10;
    const limiter = new RateLimiter('test', { max: 2, windowMs: 60_000 }, () => now);
    limiter.take('a');
    limiter.take('a');
    limiter.take('b');
    expect(() => limiter.take('a')).toThrow(/at most 2 per 60s for a/);
    now += 60_000; // the full previous window still weighs in at the start of the next
    expect(() => limiter.take('a')).toThrow();
    now += 45_000; // a quarter of the previous window left: 2 * 0.25 = 0.5 < 1 allowed
    limiter.take('a');
    now += 120_000;
    limiter.take('a');
    limiter.take('a');
  });
});
