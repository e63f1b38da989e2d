/**
 * Sliding-window rate limits (seed 06: run creation per repository, release lookups globally,
 * deployment creation per environment). In-process: each API replica counts its own requests.
 */
import { ForgeError } from '../domain/errors.ts';

export interface Limit {
  max: number;
  windowMs: number;
}

export class RateLimiter {
  /** key → [window start, count in this window, count in previous window] */
  private readonly windows = new Map<string, [number, number, number]>();

  constructor(private readonly name: string, private readonly limit: Limit, private readonly now: () => number = Date.now) {}

  /** Counts one request for `key`, or throws rate_limited with how long to wait. */
  take(key: string): void {
    const now = this.now();
    const { max, windowMs } = this.limit;
    const start = now - (now % windowMs);
    let w = this.windows.get(key);
    if (!w || w[0] !== start) {
      const previous = w && w[0] === start - windowMs ? w[1] : 0;
      w = [start, 0, previous];
      this.windows.set(key, w);
      if (this.windows.size > 10_000) this.prune(start);
    }
    // Weight the previous window by how much of it still overlaps the sliding window.
    const estimate = w[2] * ((windowMs - (now - start)) / windowMs) + w[1];
    if (estimate + 1 > max) {
      const retryAfterMs = Math.max(1000, start + windowMs - now);
      throw new ForgeError('rate_limited', `rate limit for ${this.name} reached: at most ${max} per ${windowMs / 1000}s${key ? ` for ${key}` : ''}`, {
        limit: max, window_seconds: windowMs / 1000, retry_after_seconds: Math.ceil(retryAfterMs / 1000),
      });
    }
    w[1] += 1;
  }

  private prune(currentStart: number) {
    for (const [key, w] of this.windows) if (w[0] < currentStart - this.limit.windowMs) this.windows.delete(key);
  }
}
