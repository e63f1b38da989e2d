/** Small hooks: data loading with refresh, a ticking clock, live events, the signed-in user. */
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';
import { api, ApiError } from './api.ts';
import { subscribe } from './sse.ts';
import type { ForgeEvent, Me } from './types.ts';

export interface Loaded<T> { data: T | undefined; error: ApiError | undefined; loading: boolean; reload: () => void }

/**
 * GET `path` (undefined: nothing to load), again on reload() and every `pollMs` while `poll` holds.
 * Keeps the last good data while reloading, so the page does not blink.
 */
export function useApi<T>(path: string | undefined, options: { pollMs?: number; poll?: (data: T | undefined) => boolean } = {}): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: ApiError | undefined; loading: boolean; path: string | undefined }>({ data: undefined, error: undefined, loading: path !== undefined, path });
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const pollRef = useRef(options.poll);
  pollRef.current = options.poll;

  useEffect(() => {
    if (path === undefined) return undefined;
    const controller = new AbortController();
    setState((s) => (s.path === path ? { ...s, loading: true } : { data: undefined, error: undefined, loading: true, path }));
    api<T>(path, { signal: controller.signal }).then(
      (data) => setState({ data, error: undefined, loading: false, path }),
      (error: unknown) => {
        if ((error as Error).name === 'AbortError') return;
        setState((s) => ({ ...s, error: error instanceof ApiError ? error : new ApiError(0, 'client_error', String(error)), loading: false }));
      },
    );
    return () => controller.abort();
  }, [path, tick]);

  const { pollMs } = options;
  const data = state.path === path ? state.data : undefined;
  useEffect(() => {
    if (!pollMs || path === undefined) return undefined;
    if (pollRef.current && !pollRef.current(data)) return undefined;
    const timer = setTimeout(reload, pollMs);
    return () => clearTimeout(timer);
  }, [pollMs, path, data, reload, state.error]);

  return { data, error: state.path === path ? state.error : undefined, loading: state.loading, reload };
}

/** The current time, re-rendered every `ms` (for durations of running things). */
export function useNow(ms = 1000, active = true): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms, active]);
  return now;
}

/**
 * Live events from GET /v1/events, filtered by type; returns whether the stream is up. The server
 * keeps no event ids to resume from, so `onReconnect` runs when the stream comes back after a drop:
 * the page reloads what it shows, since events may have been missed meanwhile.
 */
export function useEvents(types: string[], onEvent: (event: ForgeEvent) => void, onReconnect?: () => void): boolean {
  const [connected, setConnected] = useState(false);
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const reconnected = useRef(onReconnect);
  reconnected.current = onReconnect;
  const key = types.join(',');
  useEffect(() => {
    let wasUp = false;
    let dropped = false;
    return subscribe(`/v1/events?types=${encodeURIComponent(key)}`, (message) => {
      try {
        handler.current(JSON.parse(message.data) as ForgeEvent);
      } catch {
        // a heartbeat or a malformed event: nothing to do
      }
    }, (up) => {
      setConnected(up);
      if (up && dropped) reconnected.current?.();
      if (!up && wasUp) dropped = true;
      if (up) { wasUp = true; dropped = false; }
    });
  }, [key]);
  return connected;
}

/** Retry a failed first load every 5 s (a page whose data came once keeps it while live events update it). */
export const RETRY_UNTIL_LOADED = { pollMs: 5000, poll: (data: unknown) => data === undefined } as const;

export const MeContext = createContext<Me | undefined>(undefined);
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe outside the signed-in app');
  return me;
}
export function useCan(permission: string): boolean {
  return useMe().permissions.includes(permission);
}

/** Sets document.title while the page is shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Forge`;
  }, [title]);
}
