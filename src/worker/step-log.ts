/**
 * A step's log on its way to the object store: output is kept and, every `flushMs`, what is new
 * goes up as the next part object (so the API can follow a running step); at the end the whole log
 * is stored under the step's key and the parts that went up are deleted.
 *
 * The log is kept in memory up to `SPILL_BYTES`, then in a temporary file: most steps print little,
 * and a step that prints nothing touches neither disk nor timer (a busy worker runs hundreds of
 * short steps a second). Nothing here blocks the event loop.
 *
 * With a masker (the step's resolved secrets), everything written is masked before it is kept:
 * the masking stream keeps back an end that could begin a secret, so a secret split across two
 * output chunks is masked too; what it kept back is written at finish().
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logPartKey } from '../domain/logs.ts';
import type { ObjectStore } from '../engine/ports.ts';
import type { Masker, MaskingStream } from '../lib/masker.ts';

/** Above this, the log goes to a temporary file instead of memory. */
export const SPILL_BYTES = 1024 * 1024;

export class StepLog {
  /** The log so far while it is in memory. */
  private kept: Buffer[] = [];
  private size = 0;
  private spill: { file: string; stream: WriteStream } | undefined;
  private pending: Buffer[] = [];
  /** Parts uploaded: keys 0 … seq-1. */
  private seq = 0;
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private finishing = false;

  private readonly masking: MaskingStream | undefined;

  constructor(private readonly objects: ObjectStore, readonly key: string, private readonly flushMs = 500, masker?: Masker) {
    this.masking = masker && !masker.empty ? masker.stream() : undefined;
  }

  write(chunk: string | Buffer): void {
    this.keep(this.masking ? this.masking.write(chunk.toString()) : chunk);
  }

  private keep(chunk: string | Buffer): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (bytes.length === 0) return;
    this.size += bytes.length;
    if (this.spill) this.spill.stream.write(bytes);
    else if (this.size <= SPILL_BYTES) this.kept.push(bytes);
    else {
      const file = join(tmpdir(), `forge-log-${randomUUID()}.log`);
      this.spill = { file, stream: createWriteStream(file, { flags: 'wx' }) };
      for (const kept of this.kept) this.spill.stream.write(kept);
      this.spill.stream.write(bytes);
      this.kept = [];
    }
    this.pending.push(bytes);
    if (!this.timer && !this.finishing) {
      this.timer = setInterval(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Uploads what was written since the last flush as the next part (one upload at a time). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.length === 0) return;
      const body = Buffer.concat(this.pending);
      this.pending = [];
      await this.objects.put(logPartKey(this.key, this.seq++), body).catch(() => {
        this.pending.unshift(body); // try again with the next flush
        this.seq -= 1;
      });
    });
    return this.flushing;
  }

  /** Ends the log (with a marker line saying why, when given) and stores it whole. */
  async finish(marker?: string): Promise<void> {
    this.finishing = true;
    clearInterval(this.timer);
    if (this.masking) this.keep(this.masking.end());
    if (marker) this.keep(this.masking ? this.masking.write(`${marker}\n`) + this.masking.end() : `${marker}\n`);
    await this.flushing;
    const spill = this.spill;
    try {
      if (spill) {
        await new Promise<void>((resolve, reject) => spill.stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
        await this.objects.putFile(this.key, spill.file, { contentType: 'text/plain; charset=utf-8' });
      } else {
        await this.objects.put(this.key, Buffer.concat(this.kept), { contentType: 'text/plain; charset=utf-8' });
      }
      if (this.seq > 0) await this.objects.delete(Array.from({ length: this.seq }, (_, i) => logPartKey(this.key, i)));
    } finally {
      if (spill) await rm(spill.file, { force: true });
    }
  }
}
