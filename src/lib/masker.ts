/**
 * Masking known values (secrets) in text as `***`, also when the text arrives in chunks.
 *
 * A value and its common encodings are masked: as is, Base64 (alone, or inside a longer Base64 text
 * such as Basic credentials or a docker config's auth, all but up to two bytes at each edge),
 * URL-encoded, JSON-escaped, and each line (of 4+ characters) of a multi-line value (tools print keys line by line).
 * A stream keeps back the end of what it was given while that end could be the start of a value
 * (at most the longest value minus one character), so a value split across chunks is still masked;
 * `end()` gives what was kept back.
 */

export const MASK = '***';

/** The forms of `value` that are masked, longest first. */
export function maskedForms(values: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const value of values) {
    if (value === '') continue;
    forms.add(value);
    const bytes = Buffer.from(value);
    forms.add(bytes.toString('base64'));
    // Inside a longer Base64 text (Basic `user:value`, a docker config's auth): the value's bytes
    // fall on 3-byte boundaries at one of three offsets, and each offset's whole triples encode to a
    // fixed run of characters. Runs of 6+ bytes only, so a short value does not mask unrelated text.
    for (const skip of [0, 1, 2]) {
      const part = bytes.subarray(skip, skip + 3 * Math.floor((bytes.length - skip) / 3));
      if (part.length >= 6) forms.add(part.toString('base64'));
    }
    forms.add(encodeURIComponent(value));
    forms.add(JSON.stringify(value).slice(1, -1));
    if (/[\r\n]/.test(value)) for (const line of value.split(/\r?\n/)) if (line.trim().length >= 4) forms.add(line);
  }
  forms.delete('');
  return [...forms].sort((a, b) => b.length - a.length);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class Masker {
  private readonly pattern: RegExp | undefined;
  private readonly forms: string[];

  constructor(values: readonly string[]) {
    this.forms = maskedForms(values);
    this.pattern = this.forms.length > 0 ? new RegExp(this.forms.map(escape).join('|'), 'g') : undefined;
  }

  get empty(): boolean {
    return this.pattern === undefined;
  }

  /** `text` with every form of every value replaced by ***. */
  mask(text: string): string {
    return this.pattern ? text.replace(this.pattern, MASK) : text;
  }

  /** A masker for one stream of chunks. */
  stream(): MaskingStream {
    return new MaskingStream(this);
  }

  /** How many characters at the end of `text` could begin a masked form. */
  heldBack(text: string): number {
    const longest = this.forms[0]?.length ?? 0;
    for (let size = Math.min(longest - 1, text.length); size > 0; size--) {
      const tail = text.slice(text.length - size);
      if (this.forms.some((form) => form.length > size && form.startsWith(tail))) return size;
    }
    return 0;
  }
}

export class MaskingStream {
  private kept = '';

  constructor(private readonly masker: Masker) {}

  /** The masked text that is safe to pass on now. */
  write(chunk: string): string {
    if (this.masker.empty) return chunk;
    const text = this.masker.mask(this.kept + chunk);
    const hold = this.masker.heldBack(text);
    this.kept = text.slice(text.length - hold);
    return text.slice(0, text.length - hold);
  }

  /** What was kept back (it did not turn out to be a value). */
  end(): string {
    const rest = this.kept;
    this.kept = '';
    return rest;
  }
}
