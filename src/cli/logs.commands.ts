/**
 * `forge logs <step-id> [-f]`: a step's log as raw text on stdout, read in byte ranges so a long log
 * is never loaded whole; `-f` follows the server-sent event stream of the same endpoint until the
 * step ends, and picks it up again from the last byte printed when the connection drops.
 */
import { once } from 'node:events';
import type { Command } from 'commander';
import * as args from './args.ts';
import { apiPath, CliError, EXIT } from './client.ts';
import { Retrier, retryMessage } from './retries.ts';
import { clientCommand, type Session } from './session.ts';
import type { LogRangeJson } from './wire.ts';

/** Bytes asked for per range; the API ends a range at a line end. */
export const PAGE_BYTES = 262_144;

const LOGS_HELP = `
The log is read in ranges of ${PAGE_BYTES / 1024} KiB (GET /v1/steps/{id}/logs?offset=&limit=), ending at line ends.
Without -f: what the step has written so far, then exit 0. With -f: its output as it comes
(?follow=1, server-sent events), exiting 0 once the step has ended and its whole log is printed;
a dropped connection is resumed from the last byte printed (network errors and HTTP 429/5xx are
retried for up to 5 minutes, with a notice on stderr).
--json: each range as one JSON object per line: {step_id, key, offset, next_offset, size, complete, text}.
Find step ids with \`forge runs get <run-id> --json\`.`;

/** stdout for a stream of text: waits when the pipe is full; a reader gone (`| head`) ends the command quietly. */
class RawOutput {
  private gone = false;

  constructor(private readonly stream: NodeJS.WriteStream) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      this.gone = true;
    });
  }

  get closed(): boolean {
    return this.gone;
  }

  async write(text: string): Promise<void> {
    if (this.gone || text === '' || this.stream.write(text)) return;
    try {
      await once(this.stream, 'drain');
    } catch (error) {
      if (!this.gone) throw error;
    }
  }
}

export function registerLogCommands(program: Command): void {
  clientCommand<{ follow?: boolean; offset?: number }>(
    program, 'logs', "print a step's log; -f follows it until the step ends",
    (c) => c
      .argument('<step-id>', 'step id', args.uuid)
      .option('-f, --follow', 'keep printing new output while the step runs; exit when it ends')
      .option('--offset <bytes>', 'start at this byte of the log (default 0)', args.offset)
      .addHelpText('after', LOGS_HELP),
    async (session, [id = ''], o) => {
      const out = new RawOutput(session.stdout);
      const print = (range: LogRangeJson) => out.write(session.json ? `${JSON.stringify(range)}\n` : range.text);
      const retrier = new Retrier((notice) => session.warn(retryMessage(notice)));
      const path = apiPath('steps', id, 'logs');
      const start = o.offset ?? 0;
      if (o.follow) return follow(session, retrier, path, start, print, () => out.closed);

      let offset = start;
      for (;;) {
        const { body: range } = await retrier.call(() => session.api.get<LogRangeJson>(path, { offset, limit: PAGE_BYTES }));
        await print(range);
        if (offset === start && range.size === 0 && !range.complete) session.warn(`step ${id} has no log output yet (follow it with -f)`);
        if (out.closed || range.next_offset <= offset || range.next_offset >= range.size) return;
        offset = range.next_offset;
      }
    },
  );
}

async function follow(
  session: Session, retrier: Retrier, path: string, start: number,
  print: (range: LogRangeJson) => Promise<void>, closed: () => boolean,
): Promise<void> {
  let offset = start;
  for (;;) {
    try {
      const events = await session.api.stream(path, { follow: 1, offset, limit: PAGE_BYTES });
      retrier.succeeded();
      for await (const event of events) {
        if (event.event === 'end') return;
        if (event.event !== 'message') continue;
        const range = parseRange(event.data, path);
        await print(range);
        offset = range.next_offset;
        if (closed()) return;
      }
      throw new CliError(EXIT.unreachable, 'the log stream closed before the step ended');
    } catch (error) {
      await retrier.failed(error);
    }
  }
}

function parseRange(data: string, path: string): LogRangeJson {
  try {
    return JSON.parse(data) as LogRangeJson;
  } catch (error) {
    throw new CliError(EXIT.api, `GET ${path}?follow=1 sent an event that is not JSON`, [data.slice(0, 200)], { cause: error });
  }
}
