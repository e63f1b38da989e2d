/**
 * The API client commands of `forge`: runs, logs, releases, deploy, approve, approvals, deployments, retention.
 * Each parses its arguments, calls the /v1 API through client.ts and prints (session.ts, output.ts).
 */
import type { Command } from 'commander';
import { registerDeploymentCommands } from './deployments.commands.ts';
import { registerLogCommands } from './logs.commands.ts';
import { registerReleaseCommands } from './releases.commands.ts';
import { registerRetentionCommands } from './retention.commands.ts';
import { registerRunCommands } from './runs.commands.ts';

export function registerClientCommands(program: Command): void {
  registerRunCommands(program);
  registerLogCommands(program);
  registerReleaseCommands(program);
  registerDeploymentCommands(program);
  registerRetentionCommands(program);
}
