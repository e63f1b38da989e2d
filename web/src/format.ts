/** Durations, times and short ids as the dashboard shows them. */

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  // Steps often take under a second: tenths below 10 s, so "0s" does not hide the difference.
  if (ms < 10_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, '0')}m`;
}

/** Elapsed time of something that started and may have ended; `now` ticks for running things. */
export function elapsed(startedAt: string | null, completedAt: string | null, now: number): string {
  if (!startedAt) return '–';
  const end = completedAt ? Date.parse(completedAt) : now;
  // A run that started after the clock's last tick is 0s old, not negative.
  return formatDuration(Math.max(0, end - Date.parse(startedAt)));
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function relativeTime(iso: string | null | undefined, now: number): string {
  if (!iso) return '–';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

export const shortSha = (sha: string | null | undefined) => (sha ? sha.slice(0, 7) : '–');
export const shortDigest = (digest: string | null | undefined) => (digest ? digest.replace(/^sha256:/, '').slice(0, 12) : '–');
