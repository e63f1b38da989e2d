/** How the dashboard writes durations and elapsed times. */
import { describe, expect, it } from 'vitest';
import { elapsed, formatDuration, shortDigest, shortSha } from '../../web/src/format.ts';

describe('dashboard formatting', () => {
  it('writes durations with tenths under 10 s, then seconds, minutes and hours', () => {
    expect(formatDuration(0)).toBe('0.0s');
    expect(formatDuration(449)).toBe('0.4s');
    expect(formatDuration(9_999)).toBe('9.9s');
    expect(formatDuration(10_000)).toBe('10s');
    expect(formatDuration(61_000)).toBe('1m 01s');
    expect(formatDuration(3_725_000)).toBe('1h 02m');
    expect(formatDuration(-1)).toBe('–');
    expect(formatDuration(Number.NaN)).toBe('–');
  });

  it('measures running things against the clock and never goes negative', () => {
    const start = '2026-11-21T10:00:00.000Z';
    expect(elapsed(start, '2026-11-21T10:00:02.500Z', 0)).toBe('2.5s');
    expect(elapsed(start, null, Date.parse('2026-11-21T10:01:30Z'))).toBe('1m 30s');
    expect(elapsed(start, null, Date.parse('2026-11-21T09:59:59Z'))).toBe('0.0s');
    expect(elapsed(null, null, 0)).toBe('–');
  });

  it('shortens commits and digests', () => {
    expect(shortSha('0123456789abcdef')).toBe('0123456');
    expect(shortDigest(`sha256:${'ab'.repeat(32)}`)).toBe('abababababab');
    expect(shortSha(null)).toBe('–');
  });
});
