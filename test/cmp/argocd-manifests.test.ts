/**
 * deploy/argocd/ parsed and checked against the plugin, so the install files cannot drift from it:
 * the ConfigMap and its ConfigManagementPlugin (digest §4.7 names and commands), the repo-server
 * sidecar patch (cmp-server, user 999, the plugin config mounted from that ConfigMap, registry env
 * from a Secret), the example Application (a pointer directory of the default layout, the plugin,
 * namespace <repo>-<project>, automated sync, CreateNamespace) and the wrapper script.
 */
import { access, constants, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { CMP_EXIT } from '../../src/cmp/cmp-error.ts';
import { CMP_SETTINGS } from '../../src/cmp/cmp.settings.ts';
import { POINTER_FILE, targetFromPath } from '../../src/cmp/pointer.ts';
import { DEFAULT_POINTER_LAYOUT } from '../../src/gitops/release-pointer.ts';

const DIR = fileURLToPath(new URL('../../deploy/argocd/', import.meta.url));

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML is walked field by field and each field checked */
async function single(file: string): Promise<any> {
  const docs = parseAllDocuments(await readFile(join(DIR, file), 'utf8'));
  expect(docs.flatMap((d) => d.errors)).toEqual([]);
  expect(docs).toHaveLength(1);
  return docs[0]!.toJS();
}

describe('deploy/argocd', () => {
  it('cmp-plugin.yaml registers catalyst-forge-cmp for release.yaml, generating with the wrapper', async () => {
    const configMap = await single('cmp-plugin.yaml');
    expect(configMap).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cmp-plugin', namespace: 'argocd' } });
    const plugin = parse(configMap.data['plugin.yaml']);
    expect(plugin).toEqual({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'ConfigManagementPlugin',
      metadata: { name: 'catalyst-forge-cmp' },
      spec: {
        discover: { fileName: POINTER_FILE },
        generate: { command: ['/usr/local/bin/catalyst-forge-cmp'], args: ['generate'] },
      },
    });
  });

  it('repo-server-sidecar.yaml runs argocd-cmp-server as 999 with that plugin config and the registry Secret', async () => {
    const patch = await single('repo-server-sidecar.yaml');
    expect(patch).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'argocd-repo-server', namespace: 'argocd' } });
    const { containers, volumes } = patch.spec.template.spec;
    expect(containers).toHaveLength(1);
    const [sidecar] = containers;
    expect(sidecar.command).toEqual(['/var/run/argocd/argocd-cmp-server']);
    expect(sidecar.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 999 });
    const mounts = Object.fromEntries(sidecar.volumeMounts.map((m: any) => [m.mountPath, m]));
    expect(mounts['/var/run/argocd']).toMatchObject({ name: 'var-files' });
    expect(mounts['/home/argocd/cmp-server/plugins']).toMatchObject({ name: 'plugins' });
    expect(mounts['/tmp']).toBeDefined();
    const config = mounts['/home/argocd/cmp-server/config/plugin.yaml'];
    expect(config).toMatchObject({ subPath: 'plugin.yaml' });
    const configMap = await single('cmp-plugin.yaml');
    const volume = volumes.find((v: any) => v.name === config.name);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data)).toContain(config.subPath);
    // Every volume the sidecar mounts is the repo-server's own (var-files, plugins) or added here.
    for (const mount of sidecar.volumeMounts) expect(['var-files', 'plugins', ...volumes.map((v: any) => v.name)]).toContain(mount.name);
    expect(sidecar.envFrom).toEqual([{ secretRef: { name: 'catalyst-forge-cmp-registry' } }]);
  });

  it('application.yaml points the plugin at a pointer directory of the default layout, into <repo>-<project>', async () => {
    const app = await single('application.yaml');
    expect(app).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Application', metadata: { namespace: 'argocd' } });
    const plugin = parse((await single('cmp-plugin.yaml')).data['plugin.yaml']);
    expect(app.spec.source.plugin.name).toBe(plugin.metadata.name);
    const target = targetFromPath(DEFAULT_POINTER_LAYOUT, app.spec.source.path);
    expect(target).toBeDefined();
    expect(app.spec.destination.namespace).toBe(`${target!.repository.split('/')[1]}-${target!.project}`);
    expect(app.spec.syncPolicy.automated).toMatchObject({ prune: true, selfHeal: true });
    expect(app.spec.syncPolicy.syncOptions).toContain('CreateNamespace=true');
  });

  it('the wrapper named by the plugin is an executable running `forge cmp`', async () => {
    const plugin = parse((await single('cmp-plugin.yaml')).data['plugin.yaml']);
    const wrapper = join(DIR, basename(plugin.spec.generate.command[0]));
    await access(wrapper, constants.X_OK);
    const script = await readFile(wrapper, 'utf8');
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
    expect(script).toContain('\nexec forge cmp "$@"\n');
  });

  it('README.md documents every setting and exit code', async () => {
    const readme = await readFile(join(DIR, 'README.md'), 'utf8');
    for (const spec of Object.values(CMP_SETTINGS)) {
      expect(readme).toContain(`\`${spec.env}\``);
      expect(readme).toContain(`\`${spec.flag}\``);
    }
    for (const code of Object.values(CMP_EXIT)) expect(readme).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'));
  });
});
