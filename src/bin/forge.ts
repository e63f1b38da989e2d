/**
 * `forge`: the server, the dev token helper, and the API client commands (src/cli/).
 */
import { Command, Option } from 'commander';
import { openDevIssuer } from '../auth/dev-issuer.ts';
import { ROLES, isRole } from '../domain/identity.ts';
import { SERVER_SETTINGS, SettingsError, describeSettings, parseServerSettings } from '../settings/settings.ts';
import { registerClientCommands } from '../cli/commands.ts';
import { registerConfigCommands } from '../cli/config.commands.ts';
import { VERSION } from './version.ts';

const program = new Command('forge')
  .description('Forge: monorepo CI/CD and release platform')
  .version(VERSION)
  .showHelpAfterError();

const server = program.command('server').description('run the Forge API (embedded defaults: no services needed)')
  .addHelpText('after', `\nSettings (environment variable, flag):\n${describeSettings(SERVER_SETTINGS)}`);
for (const spec of Object.values(SERVER_SETTINGS)) server.addOption(new Option(`${spec.flag} <value>`, spec.description));
server.action(async (flags: Record<string, string>) => {
  let settings;
  try {
    settings = parseServerSettings(flags);
  } catch (error) {
    if (error instanceof SettingsError) {
      console.error(`forge server: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  // Loaded only here, so client commands start without the server's dependencies.
  const { startServer } = await import('./server.ts');
  const running = await startServer(settings);
  const store = settings.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${settings.dataDir}`;
  console.log(`Forge ${VERSION} is serving ${running.url}  (store: ${store}; events: ${settings.natsUrl ? 'NATS' : 'in-process'})`);
  console.log(`  API docs: ${running.url}/v1/openapi.json   health: ${running.url}/readyz   metrics: ${running.url}/metrics`);
  if (running.devIssuer) {
    console.log('');
    console.log('  !! DEV ISSUER: tokens are signed by a key in the data dir. Set FORGE_OIDC_ISSUER for real identity. !!');
    console.log(`  Get a token:   export FORGE_TOKEN=$(npx forge dev-token --sub alice --roles developer,operator --data-dir ${settings.dataDir})`);
    console.log(`  Then:          npx forge runs list   (or curl -H "Authorization: Bearer $FORGE_TOKEN" ${running.url}/v1/runs)`);
  } else if (settings.oidc) {
    console.log(`  Identity: OIDC issuer ${settings.oidc.issuer} (audience ${settings.oidc.audience})`);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await running.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
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

registerConfigCommands(program);
registerClientCommands(program);

await program.parseAsync(process.argv);
