/** One log line with its ANSI colours and bold/italic/underline kept (anser parses; React renders spans, no HTML). */
import Anser from 'anser';
import type { CSSProperties } from 'react';

/** anser's xterm colours, made readable on the viewer's dark background. */
const READABLE: Record<string, string> = {
  '0, 0, 0': '#6b7280', '187, 0, 0': '#f87171', '0, 187, 0': '#4ade80', '187, 187, 0': '#facc15',
  '0, 0, 187': '#60a5fa', '187, 0, 187': '#e879f9', '0, 187, 187': '#22d3ee', '255, 255, 255': '#f9fafb',
  '85, 85, 85': '#9ca3af', '255, 85, 85': '#fca5a5', '0, 255, 0': '#86efac', '255, 255, 85': '#fde68a',
  '85, 85, 255': '#93c5fd', '255, 85, 255': '#f0abfc', '85, 255, 255': '#67e8f9',
};
const colour = (rgb: string) => READABLE[rgb] ?? `rgb(${rgb})`;

const ESCAPES = /\x1b/;

export function AnsiLine({ text }: { text: string }) {
  if (!ESCAPES.test(text)) return <>{text}</>;
  const parts = Anser.ansiToJson(text, { remove_empty: true, json: true });
  return (
    <>
      {parts.map((part, i) => {
        const style: CSSProperties = {};
        // anser reports reverse video (SGR 7) beside its typed fields.
        const inverted = (part as { isInverted?: boolean }).isInverted === true;
        const fg = inverted ? part.bg : part.fg;
        const bg = inverted ? part.fg : part.bg;
        if (fg) style.color = colour(fg);
        if (bg) style.backgroundColor = colour(bg);
        const decorations = part.decorations ?? [];
        if (decorations.includes('bold')) style.fontWeight = 700;
        if (decorations.includes('dim')) style.opacity = 0.7;
        if (decorations.includes('italic')) style.fontStyle = 'italic';
        if (decorations.includes('underline')) style.textDecoration = 'underline';
        if (decorations.includes('strikethrough')) style.textDecoration = 'line-through';
        if (decorations.includes('hidden')) style.visibility = 'hidden';
        return Object.keys(style).length > 0 ? <span key={i} style={style}>{part.content}</span> : <span key={i}>{part.content}</span>;
      })}
    </>
  );
}
