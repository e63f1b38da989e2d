/**
 * `forge`: the server, the dev token helper, and the API client commands (src/cli/).
 */
import { Command, Option } from 'commander';
import { openDevIssuer } from '../auth/dev-issuer.ts';
import { ROLES, isRole } from '../domain/identity.ts';
import {
  DISPATCH_SETTINGS, EXECUTION_SETTINGS, GITHUB_SETTINGS, SERVER_SETTINGS, SettingsError, TELEMETRY_SETTINGS, WORKER_METRICS_SETTINGS, VERIFY_SETTINGS, WORKER_SETTINGS, describeSettings,
  parseDispatchSettings, parseServerSettings, parseVerifySettings, parseWorkerSettings, type SettingSpec,
} from '../settings/settings.ts';
import { CliError, EXIT } from '../cli/client.ts';
import { registerClientCommands } from '../cli/commands.ts';
import { registerConfigCommands } from '../cli/config.commands.ts';
import { ACCEPTED_REFERENCES, FAILURE_LABELS, verifyReference } from './verify.ts';
import { registerCmpCommand } from './cmp.ts';
import { registerEnvCommand } from './env-resolve.ts';
import { VERSION } from './version.ts';

const program = new Command('forge')
  .description('Forge: monorepo CI/CD and release platform')
  .version(VERSION)
  .showHelpAfterError();

/** Settings become flags; a few are switches, `--type` may be repeated. */
function addSettingOptions(command: Command, specs: Record<string, SettingSpec>): void {
  for (const spec of Object.values(specs)) {
    if (spec.flag === '--example') command.addOption(new Option(spec.flag, spec.description));
    else if (spec.flag === '--type') command.addOption(new Option(`${spec.flag} <type...>`, spec.description));
    else command.addOption(new Option(`${spec.flag} <value>`, spec.description));
  }
}

function parsedOrExit<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof SettingsError) {
      console.error(`forge ${command}: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}

/**
 * Starts a long-running role; what stops the start (a database or NATS that does not answer, a
 * worker type without a handler) is printed in one line, the stack only at debug level.
 */
async function startedOrExit<T>(command: string, logLevel: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    console.error(`forge ${command}: ${(error as Error).message}`);
    if (logLevel === 'debug' || logLevel === 'trace') console.error(error);
    process.exit(error instanceof SettingsError ? 2 : 1);
  }
}

function onSignals(close: () => Promise<void>): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const server = program.command('server').description('run the Forge API, its dispatcher and (by default) discovery and CI workers; embedded defaults need no services')
  .addHelpText('after', [
    `\nSettings (environment variable, flag):\n${describeSettings(SERVER_SETTINGS)}`,
    `\nExecution (shared with \`forge worker\`):\n${describeSettings(EXECUTION_SETTINGS)}`,
    `\nGitHub:\n${describeSettings(GITHUB_SETTINGS)}`,
    `\nTraces (shared with \`forge worker\`):\n${describeSettings(TELEMETRY_SETTINGS)}`,
  ].join('\n'));
addSettingOptions(server, { ...SERVER_SETTINGS, ...EXECUTION_SETTINGS, ...GITHUB_SETTINGS, ...TELEMETRY_SETTINGS });
server.action(async (flags: Record<string, unknown>) => {
  const settings = parsedOrExit('server', () => parseServerSettings(flags));
  // Loaded only here, so client commands start without the server's dependencies.
  const { startServer } = await import('./server.ts');
  const running = await startedOrExit('server', settings.logLevel, () => startServer(settings));
  const store = settings.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${settings.dataDir}`;
  const queue = settings.natsUrl ? 'NATS JetStream' : 'in-process';
  const objects = settings.execution.s3 ? `S3 ${settings.execution.s3.endpoint}/${settings.execution.s3.bucket}` : `files in ${settings.dataDir}/objects`;
  console.log(`Forge ${VERSION} is serving ${running.url}  (store: ${store}; jobs and events: ${queue}; logs: ${objects})`);
  console.log(`  workers in this process: ${running.workers ? running.workers.types.join(', ') : 'none (run `forge worker`)'}; repositories from ${settings.execution.gitUrlTemplate}`);
  console.log(`  API docs: ${running.url}/v1/openapi.json   health: ${running.url}/readyz   metrics: ${running.url}/metrics`);
  if (running.devIssuer) {
    console.log('');
    console.log('  !! DEV ISSUER: tokens are signed by a key in the data dir. Set FORGE_OIDC_ISSUER for real identity. !!');
    console.log(`  Get a token:   export FORGE_TOKEN=$(npx forge dev-token --sub alice --roles developer,operator --data-dir ${settings.dataDir})`);
    console.log(`  Then:          npx forge runs list   (or curl -H "Authorization: Bearer $FORGE_TOKEN" ${running.url}/v1/runs)`);
  } else if (settings.oidc) {
    console.log(`  Identity: OIDC issuer ${settings.oidc.issuer} (audience ${settings.oidc.audience})`);
  }
  onSignals(() => running.close());
  if (running.exampleRun) {
    const { id, created } = running.exampleRun;
    console.log('');
    console.log(`  Example: ${created ? 'started' : 'found'} run ${id} of examples/monorepo (repository forge-examples/monorepo in ${settings.dataDir}/git)`);
    console.log(`  Watch it:      npx forge runs watch ${id}   (with FORGE_TOKEN set as above)`);
    const { followRun } = await import('./server.ts');
    void followRun(running, id, (line) => console.log(`  [example] ${line}`));
  }
});

const worker = program.command('worker').description('take jobs from NATS JetStream and run them: discovery, ci (several types per process allowed)')
  .addHelpText('after', [
    `\nSettings (environment variable, flag):\n${describeSettings(WORKER_SETTINGS)}`,
    `\nExecution (shared with \`forge server\`):\n${describeSettings(EXECUTION_SETTINGS)}`,
    `\nMetrics:\n${describeSettings(WORKER_METRICS_SETTINGS)}`,
    `\nTraces (shared with \`forge server\`):\n${describeSettings(TELEMETRY_SETTINGS)}`,
    '\nExample: NATS_URL=nats://127.0.0.1:4222 FORGE_URL=https://forge.example FORGE_WORKER_TOKEN=... forge worker --type discovery --type ci',
  ].join('\n'));
addSettingOptions(worker, { ...WORKER_SETTINGS, ...EXECUTION_SETTINGS, ...WORKER_METRICS_SETTINGS, ...TELEMETRY_SETTINGS });
worker.action(async (flags: Record<string, unknown>) => {
  const settings = parsedOrExit('worker', () => parseWorkerSettings(flags));
  const { startWorkerProcess } = await import('./worker.ts');
  const running = await startedOrExit('worker', settings.logLevel, () => startWorkerProcess(settings));
  console.log(`forge worker ${VERSION}: ${settings.types.join(', ')} jobs from ${settings.execution.natsUrl}, ${settings.execution.workerConcurrency} at a time per type; reporting to ${settings.url}${running.metrics ? `; metrics: ${running.metrics.url}/metrics` : ''}${settings.telemetry.exporter === 'none' ? '' : `; traces: ${settings.telemetry.exporter}`}`);
  onSignals(() => running.close());
});

const dispatch = program.command('dispatch').description('what an Argo Workflow node runs: publish a stage of a run (discovery, ci, artifact, release, deployment) on NATS with a reply inbox, wait for the replies, exit 0 on success, 1 on failure or timeout')
  .addHelpText('after', [
    `\nSettings (environment variable, flag):\n${describeSettings(DISPATCH_SETTINGS)}`,
    `\nExecution (shared with \`forge worker\`):\n${describeSettings(EXECUTION_SETTINGS)}`,
    '\nExample: NATS_URL=nats://127.0.0.1:4222 FORGE_URL=https://forge.example FORGE_WORKER_TOKEN=... forge dispatch --job-type ci --run <run id>',
  ].join('\n'));
addSettingOptions(dispatch, { ...DISPATCH_SETTINGS, ...EXECUTION_SETTINGS });
dispatch.option('--json', 'print the result as JSON on stdout');
dispatch.action(async (flags: Record<string, unknown>) => {
  const settings = parsedOrExit('dispatch', () => parseDispatchSettings(flags));
  const { dispatchOnce } = await import('./dispatch.ts');
  const stopping = new AbortController();
  const stop = (signal: string) => () => stopping.abort(`received ${signal}`);
  process.once('SIGTERM', stop('SIGTERM'));
  process.once('SIGINT', stop('SIGINT'));
  const label = `forge dispatch ${settings.stage}${settings.group !== undefined ? ` group ${settings.group}` : ''} of run ${settings.runId}`;
  const result = await startedOrExit('dispatch', 'info', () => dispatchOnce(settings, (line) => console.error(`${label}: ${line}`), stopping.signal));
  if (flags.json === true) console.log(JSON.stringify(result));
  else console.log(`${label}: ${result.ok ? 'succeeded' : 'FAILED'}: ${result.message}`);
  process.exit(result.ok ? 0 : 1);
});

program.command('dev-token').description('print a token from the embedded dev issuer (development only)')
  .requiredOption('--sub <name>', 'subject (also preferred_username)')
  .option('--roles <roles>', `comma-separated roles: ${ROLES.join(', ')}`, '')
  .option('--ttl <seconds>', 'lifetime in seconds', '43200')
  .option('--data-dir <dir>', `data dir of the server (${SERVER_SETTINGS.dataDir.env})`)
  .action(async (opts: { sub: string; roles: string; ttl: string; dataDir?: string }) => {
    const roles = opts.roles.split(',').map((r) => r.trim()).filter(Boolean);
    const unknown = roles.filter((r) => !isRole(r));
    if (unknown.length > 0) {
      console.error(`forge dev-token: unknown role ${unknown.join(', ')}; roles are ${ROLES.join(', ')}`);
      process.exit(2);
    }
    const ttl = Number(opts.ttl);
    if (!Number.isInteger(ttl) || ttl < 1) {
      console.error('forge dev-token: --ttl must be a positive number of seconds');
      process.exit(2);
    }
    const settings = parseServerSettings(opts.dataDir ? { dataDir: opts.dataDir } : {});
    const issuer = await openDevIssuer(settings.dataDir);
    console.log(await issuer.sign({ sub: opts.sub, roles: roles.filter(isRole), ttlSeconds: ttl }));
  });

const verify = program.command('verify').description('check the cosign signature of an image Forge signed (release and artifact tracking images): exit 0 verified, 1 not (or the registry could not be read), 2 bad arguments')
  .argument('<ref>', 'the image: <host>[:port]/<repository>:<tag> or …@sha256:<hex>')
  .option('--json', 'print the result as JSON on stdout (the reason for a failure also goes to stderr)')
  .addHelpText('after', [
    `\nReferences:\n${ACCEPTED_REFERENCES.map((form) => `  ${form}`).join('\n')}`,
    `\nSettings (environment variable, flag):\n${describeSettings(VERIFY_SETTINGS)}`,
  ].join('\n'))
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT.usage));
addSettingOptions(verify, VERIFY_SETTINGS);
verify.action(async (ref: string, flags: Record<string, unknown>) => {
  const settings = parsedOrExit('verify', () => parseVerifySettings(flags));
  try {
    const report = await verifyReference(ref, settings);
    if (flags.json === true) console.log(JSON.stringify(report, null, 2));
    if (report.verified) {
      if (flags.json !== true) console.log(`verified ${report.name}@${report.digest} (key ${report.key})`);
    } else {
      console.error(`forge verify: ${ref}: ${FAILURE_LABELS[report.failure]}: ${report.reason}`);
      process.exitCode = EXIT.api;
    }
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error([`forge verify: ${error.message}`, ...error.lines.map((line) => `  ${line}`)].join('\n'));
    process.exitCode = error.exitCode;
  }
});

registerConfigCommands(program);
registerClientCommands(program);
registerCmpCommand(program);
registerEnvCommand(program);

await program.parseAsync(process.argv);
