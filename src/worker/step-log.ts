/**
 * A step's log on its way to the object store: output is appended to a local file and, every
 * `flushMs`, what is new goes up as the next part object (so the API can follow a running step);
 * at the end the whole file is stored under the step's key and the parts are deleted.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logPartKey, logPartsPrefix } from '../domain/logs.ts';
import type { ObjectStore } from '../engine/ports.ts';

export class StepLog {
  private readonly dir = mkdtempSync(join(tmpdir(), 'forge-log-'));
  private readonly file = join(this.dir, 'step.log');
  private readonly stream: WriteStream = createWriteStream(this.file);
  private pending: Buffer[] = [];
  private seq = 0;
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly objects: ObjectStore, readonly key: string, flushMs = 500) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  write(chunk: string | Buffer): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.stream.write(bytes);
    this.pending.push(bytes);
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
    clearInterval(this.timer);
    if (marker) this.write(`${marker}\n`);
    await new Promise<void>((resolve, reject) => this.stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
    await this.flushing;
    try {
      await this.objects.putFile(this.key, this.file, { contentType: 'text/plain; charset=utf-8' });
      const parts = await this.objects.list(logPartsPrefix(this.key));
      await this.objects.delete(parts.map((p) => p.key));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
