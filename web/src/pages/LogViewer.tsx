/**
 * A step's log, never loaded whole: the server's line index (a byte offset every N lines) sizes a
 * virtual scroll area, and only the N-line chunks in view are fetched as byte ranges. It follows a
 * running step, searches on the server, keeps ANSI colours, links to lines (#L123), and shows the
 * worker's final marker line (`--- step stopped: …`, `--- step failed after …`).
 */
import { useCallback, useEffect, useLayoutEffect, useReducer, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { api, ApiError, enc, query } from '../api.ts';
import { AnsiLine } from '../components/Ansi.tsx';
import { ErrorBanner } from '../components/ErrorBanner.tsx';
import type { ExecutionStatus, LogIndex, LogRange, LogSearch, RunStatus } from '../types.ts';

const LINE_HEIGHT = 18;
const OVERSCAN = 40;
const MAX_CHUNKS = 40;
const MAX_RANGE = 1_048_576;
const POLL_MS = 1000;
const MARKER = /^--- step (stopped|failed after)/;

interface Chunk { lines: string[]; endByte: number }

function lineFromHash(): number | undefined {
  const match = /^#L(\d+)$/.exec(location.hash);
  return match?.[1] ? Number(match[1]) : undefined;
}

export function LogViewer({ stepId, stepStatus, runStatus }: { stepId: string; stepStatus: ExecutionStatus; runStatus: RunStatus }) {
  const base = `/v1/steps/${enc(stepId)}/logs`;
  const [index, setIndex] = useState<LogIndex | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const chunks = useRef(new Map<number, Chunk>());
  const loading = useRef(new Set<number>());
  const [version, bump] = useReducer((n: number) => n + 1, 0);
  /** The chunks in view (first, last): never evicted. */
  const inView = useRef<[number, number]>([0, 0]);
  const viewport = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(480);
  const [highlight, setHighlight] = useState<number | undefined>(lineFromHash);
  const pendingJump = useRef<number | 'end' | undefined>(lineFromHash());
  const stepRunning = stepStatus === 'running' || stepStatus === 'pending';
  const [follow, setFollow] = useState(stepRunning && lineFromHash() === undefined);
  const followRef = useRef(follow);
  followRef.current = follow;

  // The index: fetched once, then again every second until the log is complete.
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const next = await api<LogIndex>(`${base}/index`);
        if (stopped) return;
        // A chunk read against an older index is re-read (loadChunk compares its end with the index's).
        setIndex(next);
        setError(undefined);
        if (!next.complete) timer = setTimeout(load, POLL_MS);
      } catch (e) {
        if (stopped) return;
        const failure = e instanceof ApiError ? e : new ApiError(0, 'client_error', String(e));
        setError(failure);
        // 410: the retention job deleted the log; it will not come back.
        if (failure.code !== 'gone') timer = setTimeout(load, POLL_MS * 3);
      }
    };
    void load();
    return () => { stopped = true; clearTimeout(timer); };
  }, [base, stepStatus]);

  const lines = index?.lines ?? 0;
  const every = index?.every ?? 1000;

  const loadChunk = useCallback(async (k: number, idx: LogIndex) => {
    const start = idx.checkpoints[k];
    if (start === undefined) return;
    const end = idx.checkpoints[k + 1] ?? idx.size;
    // Loaded and current (a growing log's last chunk ends where the index now ends), or on its way.
    if (loading.current.has(k) || chunks.current.get(k)?.endByte === end) return;
    loading.current.add(k);
    try {
      let text = '';
      let offset = start;
      while (offset < end) {
        const range = await api<LogRange>(`${base}${query({ offset, limit: Math.min(MAX_RANGE, end - offset) })}`);
        if (range.next_offset <= offset) break;
        text += range.text;
        offset = range.next_offset;
      }
      const chunkLines = text.split('\n');
      if (text.endsWith('\n')) chunkLines.pop();
      chunks.current.set(k, { lines: chunkLines, endByte: end });
      // Bounded memory: forget the chunks furthest from the view, never those in it or the last one.
      const lastChunk = Math.max(0, idx.checkpoints.length - 1);
      const [from, to] = inView.current;
      const distance = (c: number) => (c < from ? from - c : c > to ? c - to : 0);
      while (chunks.current.size > MAX_CHUNKS) {
        const far = [...chunks.current.keys()].filter((c) => distance(c) > 0 && c !== lastChunk).sort((a, b) => distance(b) - distance(a))[0];
        if (far === undefined) break;
        chunks.current.delete(far);
      }
      bump();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'client_error', String(e)));
    } finally {
      loading.current.delete(k);
    }
  }, [base]);

  // Viewport size.
  useLayoutEffect(() => {
    const el = viewport.current;
    if (!el) return undefined;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    setHeight(el.clientHeight);
    return () => observer.disconnect();
  }, []);

  const scrollToLine = useCallback((line: number) => {
    const el = viewport.current;
    if (!el) return;
    el.scrollTop = Math.max(0, (line - 1) * LINE_HEIGHT - el.clientHeight / 2 + LINE_HEIGHT);
    setScrollTop(el.scrollTop);
  }, []);
  const scrollToEnd = useCallback(() => {
    const el = viewport.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    setScrollTop(el.scrollTop);
  }, []);

  // Jumps waiting for the index (a #L link, "end"), and following a running step.
  useLayoutEffect(() => {
    if (!index) return;
    const jump = pendingJump.current;
    if (jump !== undefined) {
      pendingJump.current = undefined;
      if (jump === 'end') scrollToEnd();
      else scrollToLine(Math.min(jump, Math.max(1, index.lines)));
    } else if (followRef.current) {
      scrollToEnd();
    }
  }, [index, scrollToEnd, scrollToLine]);

  const first = Math.max(0, Math.floor(scrollTop / LINE_HEIGHT) - OVERSCAN);
  const last = Math.min(lines, Math.ceil((scrollTop + height) / LINE_HEIGHT) + OVERSCAN);

  // Fetch the chunks in view, and the last one (for the final marker) once the log is complete.
  // `version` re-runs this when a load finishes, so a chunk that came back stale is asked for again.
  useEffect(() => {
    if (!index || lines === 0) return;
    const from = Math.floor(first / every);
    const to = Math.floor(Math.max(first, last - 1) / every);
    inView.current = [from, to];
    for (let k = from; k <= to; k++) void loadChunk(k, index);
    if (index.complete) void loadChunk(Math.floor((lines - 1) / every), index);
  }, [index, first, last, lines, every, loadChunk, version]);

  const onScroll = () => {
    const el = viewport.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_HEIGHT * 2;
    if (followRef.current && !atEnd) setFollow(false);
  };

  const lineText = (n: number): string | undefined => chunks.current.get(Math.floor(n / every))?.lines[n % every];
  const lastLine = lines > 0 ? lineText(lines - 1) : undefined;
  const marker = index?.complete && lastLine !== undefined && MARKER.test(lastLine) ? lastLine : undefined;

  const goTo = (line: number) => {
    setHighlight(line);
    setFollow(false);
    history.replaceState(history.state, '', `${location.pathname}${location.search}#L${line}`);
    scrollToLine(line);
  };

  // Search on the server.
  const [search, setSearch] = useState<{ query: string; result?: LogSearch; error?: ApiError; busy?: boolean; current: number }>({ query: '', current: 0 });
  const runSearch = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const q = String(new FormData(event.currentTarget).get('q') ?? '');
    if (!q) { setSearch({ query: '', current: 0 }); return; }
    setSearch({ query: q, busy: true, current: 0 });
    try {
      const result = await api<LogSearch>(`${base}/search${query({ q, limit: 1000 })}`);
      setSearch({ query: q, result, current: 0 });
      const firstMatch = result.matches[0];
      if (firstMatch) goTo(firstMatch.line);
    } catch (e) {
      setSearch({ query: q, current: 0, error: e instanceof ApiError ? e : new ApiError(0, 'client_error', String(e)) });
    }
  };
  const matches = search.result?.matches ?? [];
  const matchLines = new Set(matches.map((m) => m.line));
  const step = (delta: number) => {
    if (matches.length === 0) return;
    const next = (search.current + delta + matches.length) % matches.length;
    setSearch((s) => ({ ...s, current: next }));
    const match = matches[next];
    if (match) goTo(match.line);
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    if (event.key === 'End' && (event.ctrlKey || event.metaKey || !event.shiftKey)) { event.preventDefault(); scrollToEnd(); }
    if (event.key === 'Home') { event.preventDefault(); scrollToLine(1); }
  };

  const rows = [];
  for (let n = first; n < last; n++) {
    const text = lineText(n);
    const number = n + 1;
    const classes = ['log-line'];
    if (number === highlight) classes.push('highlight');
    if (matchLines.has(number)) classes.push('match');
    if (text !== undefined && MARKER.test(text)) classes.push('log-marker');
    rows.push(
      <div key={n} className={classes.join(' ')} data-line={number}>
        <a className="line-number" href={`#L${number}`} onClick={(e) => { e.preventDefault(); goTo(number); }} aria-label={`Line ${number}`} tabIndex={-1}>{number}</a>
        <span className="line-text">{text === undefined ? <span className="line-loading">…</span> : <AnsiLine text={text} />}</span>
      </div>,
    );
  }

  const size = index ? (index.size >= 1_048_576 ? `${(index.size / 1_048_576).toFixed(1)} MB` : `${Math.ceil(index.size / 1024)} KB`) : '';
  return (
    <div className="log-viewer">
      <div className="log-toolbar">
        <form role="search" onSubmit={(e) => void runSearch(e)} className="log-search">
          <label htmlFor={`log-search-${stepId}`} className="visually-hidden">Search this log</label>
          <input id={`log-search-${stepId}`} name="q" type="search" placeholder="Search this log" maxLength={200} defaultValue={search.query} />
          <button type="submit" disabled={search.busy}>{search.busy ? 'Searching…' : 'Search'}</button>
          <span role="status" className="match-count">
            {search.result ? (matches.length === 0 ? 'no matches' : `${search.current + 1} of ${matches.length}${search.result.truncated ? '+' : ''} matches`) : ''}
          </span>
          {search.result && (
            <>
              <button type="button" onClick={() => step(-1)} disabled={matches.length === 0} aria-label="Previous match">↑</button>
              <button type="button" onClick={() => step(1)} disabled={matches.length === 0} aria-label="Next match">↓</button>
            </>
          )}
        </form>
        <div className="log-nav">
          <span className="muted log-stats" aria-live="off">{index ? `${lines.toLocaleString()} lines · ${size}${index.complete ? '' : ' · live'}` : ''}</span>
          <button type="button" onClick={() => { setFollow(false); scrollToLine(1); }}>Top</button>
          <button type="button" onClick={() => { pendingJump.current = undefined; scrollToEnd(); }}>Jump to end</button>
          {index && !index.complete && (
            <label className="follow"><input type="checkbox" checked={follow} onChange={(e) => { setFollow(e.target.checked); if (e.target.checked) scrollToEnd(); }} /> Follow</label>
          )}
        </div>
      </div>
      {/* Appears once, when the step has ended; errors go below the log so polling blips do not move it. */}
      {marker && (
        <p className={`log-final ${runStatus === 'cancelled' || marker.startsWith('--- step stopped') ? 'stopped' : 'failed'}`} role="note">
          <strong>{marker.startsWith('--- step stopped') ? 'Stopped' : / timed out: /.test(marker) ? 'Timed out' : 'Failed'}:</strong> {marker.replace(/^--- step /, '')}{' '}
          <button type="button" className="link-button" onClick={() => goTo(lines)}>Show</button>
        </p>
      )}
      <div ref={viewport} className="log-viewport" onScroll={onScroll} onKeyDown={onKeyDown} tabIndex={0} role="region" aria-label="Log output" data-lines={lines}>
        <div className="log-spacer" style={{ height: Math.max(lines * LINE_HEIGHT, 1) }}>
          <div className="log-rows" style={{ transform: `translateY(${first * LINE_HEIGHT}px)` }}>{rows}</div>
        </div>
        {index && lines === 0 && <p className="log-empty">{index.complete ? 'This step wrote no output.' : stepStatus === 'pending' ? 'Waiting for the step to start…' : 'Waiting for output…'}</p>}
      </div>
      <ErrorBanner error={search.error ?? error} title={error && !search.error ? (error.code === 'gone' ? 'Log expired' : 'Log not updating; retrying') : undefined} />
      {search.result && matches.length > 0 && (
        <details className="match-list">
          <summary>All matches ({matches.length}{search.result.truncated ? ', first 1,000 shown' : ''})</summary>
          <ol>
            {matches.map((m, i) => (
              <li key={m.line}><button type="button" className="link-button" onClick={() => { setSearch((s) => ({ ...s, current: i })); goTo(m.line); }}>
                <span className="mono">{m.line}</span> {m.text.slice(0, 160)}
              </button></li>
            ))}
          </ol>
        </details>
      )}
    </div>
  );
}
