/**
 * `forge cmp discover|generate`: the Argo CD config management plugin `catalyst-forge-cmp`
 * (src/cmp/, deploy/argocd/). Argo CD runs it in the application directory of the GitOps
 * repository; the release images are read from the configured release registry (the embedded store
 * `forge.local` = <data dir>/oci, or a registry over HTTP(S) with FORGE_REGISTRY_INSECURE and
 * FORGE_REGISTRY_USERNAME/PASSWORD), wired through openRegistries like every other command.
 *
 * Exit codes (src/cmp/cmp-error.ts): 0 ok, 1 permanent failure, 2 usage, 75 transient (EX_TEMPFAIL).
 */
import { Option, type Command } from 'commander';
import { CMP_EXIT, CmpError, formatCmpError } from '../cmp/cmp-error.ts';
import { ARGOCD_ENV_PREFIX, CMP_SETTINGS, parseCmpSettings, type CmpSettings } from '../cmp/cmp.settings.ts';
import { generate } from '../cmp/generate.ts';
import { discover, POINTER_FILE } from '../cmp/pointer.ts';
import { describeSettings, SettingsError } from '../settings/settings.ts';
import { openRegistries } from './registries.ts';

const EXIT_HELP = [
  '\nExit codes:',
  `  ${CMP_EXIT.ok}   ok`,
  `  ${CMP_EXIT.permanent}   permanent failure: malformed or missing pointer, invalid SHA, no such image, no resources layer, a document without apiVersion/kind`,
  `  ${CMP_EXIT.usage}   bad flags or settings`,
  `  ${CMP_EXIT.transient}  transient failure (EX_TEMPFAIL): the registry was unreachable or answered 5xx/429; Argo CD tries again on its next refresh`,
].join('\n');

const dirOption = () => new Option('--dir <path>', 'the application directory (Argo CD runs the plugin in it)').default(process.cwd(), 'the current directory');

const fail = (error: CmpError) => {
  process.stderr.write(formatCmpError(error));
  process.exitCode = error.exitCode;
};

export function registerCmpCommand(program: Command): void {
  const cmp = program.command('cmp')
    .description('the Argo CD config management plugin catalyst-forge-cmp: turns a ReleasePointer into the release\'s manifests')
    .addHelpText('after', EXIT_HELP);

  cmp.command('discover')
    .description(`exit 0 and print the pointer's path when the directory holds a valid ReleasePointer (${POINTER_FILE}); otherwise print nothing on stdout, the reason on stderr, exit ${CMP_EXIT.permanent}`)
    .addOption(dirOption())
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : CMP_EXIT.usage))
    .action(async (flags: { dir: string }) => {
      const result = await discover(flags.dir);
      if (result.matched) process.stdout.write(`${result.pointer.path}\n`);
      else fail(result.error);
    });

  const generateCommand = cmp.command('generate')
    .description('print the release\'s manifests (sorted by kind and name) and the directory\'s env.yaml as one YAML stream')
    .addOption(dirOption())
    .addHelpText('after', [
      `\nSettings (environment variable, flag; Argo CD's ${ARGOCD_ENV_PREFIX}<name> from the Application's plugin env when the sidecar sets none of the registry ones):`,
      describeSettings(CMP_SETTINGS),
      EXIT_HELP,
    ].join('\n'))
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : CMP_EXIT.usage));
  for (const spec of Object.values(CMP_SETTINGS)) generateCommand.addOption(new Option(`${spec.flag} <value>`, spec.description));
  generateCommand.action(async (flags: Record<string, unknown> & { dir: string }) => {
    let settings: CmpSettings;
    try {
      settings = parseCmpSettings(flags, process.env);
    } catch (error) {
      if (!(error instanceof SettingsError)) throw error;
      fail(new CmpError('usage', 'settings', error.message));
      return;
    }
    const registries = openRegistries(settings.registries, settings.dataDir);
    try {
      const result = await generate(flags.dir, registries.release, {
        layout: settings.layout,
        ...(settings.sourcePath === undefined ? {} : { sourcePath: settings.sourcePath }),
      });
      process.stdout.write(result.output);
    } catch (error) {
      fail(error instanceof CmpError ? error : new CmpError('permanent', 'internal', `unexpected error: ${(error as Error).message}`, { stack: (error as Error).stack ?? '' }, { cause: error }));
    } finally {
      await registries.close();
    }
  });
}
