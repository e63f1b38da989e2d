/** Newer / Older through a list the server pages (`total`, `offset`, `limit`). Hidden when one page holds it all. */
export function Pager({ total, offset, size, onPage }: { total: number; offset: number; size: number; onPage: (offset: number) => void }) {
  if (total <= size) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={offset === 0} onClick={() => onPage(Math.max(0, offset - size))}>Newer</button>
      <span>{offset + 1}–{Math.min(offset + size, total)} of {total}</span>
      <button type="button" disabled={offset + size >= total} onClick={() => onPage(offset + size)}>Older</button>
    </nav>
  );
}
