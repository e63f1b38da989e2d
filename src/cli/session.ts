/**
 * What every client command shares: the --url / --token / --json options, the client settings
 * (flag over FORGE_URL / FORGE_TOKEN) parsed once per invocation, the output style, and one place
 * where a failure becomes `forge: …` on stderr and an exit code.
 */
import type { Command, CommanderError } from 'commander';
import { CLIENT_SETTINGS, SettingsError, parseClientSettings } from '../settings/settings.ts';
import { ApiClient, CliError, DEV_TOKEN_HINT, EXIT, usageError } from './client.ts';
import { styleFor, type Style } from './output.ts';

export interface GlobalFlags {
  url?: string;
  token?: string;
  json?: boolean;
}

export interface Session {
  api: ApiClient;
  style: Style;
  /** --json: the raw response, pretty, and nothing else on stdout. */
  json: boolean;
  print(lines: string | string[]): void;
  printJson(value: unknown): void;
  /** Raw output (log text, redraws in place); a TTY tells by `isTTY`. */
  stdout: NodeJS.WriteStream;
  /** `forge: …` on stderr: news that is not the command's output (retries, hints). */
  warn(message: string): void;
}

export function openSession(flags: GlobalFlags, env: Record<string, string | undefined> = process.env): Session {
  let settings;
  try {
    settings = parseClientSettings({ url: flags.url, token: flags.token }, env);
  } catch (error) {
    if (error instanceof SettingsError) throw usageError(error.message);
    throw error;
  }
  if (!settings.token) {
    throw usageError(`no API token: set ${CLIENT_SETTINGS.token.env} or pass --token`, [DEV_TOKEN_HINT]);
  }
  const write = (text: string) => process.stdout.write(text);
  return {
    api: new ApiClient(settings.url, settings.token),
    style: styleFor(process.stdout, env),
    json: flags.json === true,
    print: (lines) => write(`${(Array.isArray(lines) ? lines : [lines]).join('\n')}\n`),
    printJson: (value) => write(`${JSON.stringify(value ?? null, null, 2)}\n`),
    stdout: process.stdout,
    warn: (message) => process.stderr.write(`forge: ${message}\n`),
  };
}

export function reportFailure(error: unknown): number {
  if (error instanceof CliError) {
    process.stderr.write(`forge: ${error.message}\n${error.lines.map((l) => `  ${l}\n`).join('')}`);
    return error.exitCode;
  }
  process.stderr.write(`forge: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.api;
}

/**
 * Commander's own usage errors (unknown option, missing argument, a value our parsers refused)
 * exit 2 instead of its default 1, so scripts can tell them from API errors. Help exits 0.
 */
function usageExit(error: CommanderError): never {
  process.exit(error.exitCode === 0 ? 0 : EXIT.usage);
}

/** A command group (`runs`, `releases`…); its subcommands inherit the usage exit code. */
export function group(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).exitOverride(usageExit);
}

/**
 * A client command with the shared options; `configure` adds its own arguments and options.
 * `handler` gets the session, the parsed positional arguments and the command's options.
 */
export function clientCommand<O extends object = object>(
  parent: Command,
  name: string,
  description: string,
  configure: (command: Command) => Command,
  handler: (session: Session, args: string[], options: O) => Promise<void>,
): Command {
  const command = configure(parent.command(name).description(description).exitOverride(usageExit))
    .option('--url <url>', `${CLIENT_SETTINGS.url.description} (${CLIENT_SETTINGS.url.env}; default ${CLIENT_SETTINGS.url.default})`)
    .option('--token <token>', `${CLIENT_SETTINGS.token.description} (${CLIENT_SETTINGS.token.env})`)
    .option('--json', 'print the raw JSON response (pretty) and nothing else');
  command.action(async () => {
    const options = command.opts<GlobalFlags & O>();
    try {
      await handler(openSession(options), command.processedArgs as string[], options);
    } catch (error) {
      process.exitCode = reportFailure(error);
    }
  });
  return command;
}
