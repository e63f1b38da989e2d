/**
 * Patience for commands that wait on the server (`runs watch`, `logs -f`): a transient failure
 * (client.ts isTransient: unreachable, timeout, 429, 5xx) is reported and asked again after 1s,
 * 2s, 4s, 8s, then every 10s; after GIVE_UP_MS without one good answer the last failure stands.
 * Any other failure (404, 401, a refused argument) is thrown at once.
 *
 * States: calm (no failure since the last good answer) → struggling (first failure at `since`)
 * → calm on the next good answer, or given up (the failure is thrown) once GIVE_UP_MS have passed.
 */
import { isTransient, type CliError } from './client.ts';
import { elapsed } from './output.ts';

export const GIVE_UP_MS = 5 * 60_000;
const MAX_DELAY_MS = 10_000;

export interface RetryNotice {
  error: CliError;
  /** How long until the next try. */
  delayMs: number;
  /** The consecutive failures so far, this one included. */
  failures: number;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Retrier {
  private failures = 0;
  private since = 0;

  constructor(
    private readonly onRetry: (notice: RetryNotice) => void,
    private readonly options: { giveUpMs?: number; firstDelayMs?: number; now?: () => number } = {},
  ) {}

  /** A good answer: the next failure starts counting afresh. */
  succeeded(): void {
    this.failures = 0;
  }

  /** After a failure: rethrows it when it is not transient or patience has run out, else waits. */
  async failed(error: unknown): Promise<void> {
    const now = this.options.now ?? Date.now;
    if (!isTransient(error)) throw error;
    if (this.failures === 0) this.since = now();
    this.failures += 1;
    if (now() - this.since >= (this.options.giveUpMs ?? GIVE_UP_MS)) throw error;
    const delayMs = Math.min(MAX_DELAY_MS, (this.options.firstDelayMs ?? 1000) * 2 ** (this.failures - 1));
    this.onRetry({ error, delayMs, failures: this.failures });
    await sleep(delayMs);
  }

  /** `call` until it answers, within the patience above. */
  async call<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const result = await call();
        this.succeeded();
        return result;
      } catch (error) {
        await this.failed(error);
      }
    }
  }
}

/** "cannot reach … (ECONNREFUSED); retrying in 2s (attempt 2)" */
export function retryMessage({ error, delayMs, failures }: RetryNotice): string {
  return `${error.message}; retrying in ${elapsed(delayMs)}${failures > 1 ? ` (attempt ${failures + 1})` : ''}`;
}
