import type { Command } from 'commander';

/** The API client commands; filled in by the CLI module. */
export function registerClientCommands(_program: Command): void {}
