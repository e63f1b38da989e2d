/** Repositories for tests that run real pipelines: served from a data dir's git/ as file:// URLs. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedRepository } from '../../src/worker/git-workspace.ts';

const REPO_CUE = 'forgeVersion: "0.1.0"\ntagging: strategy: "monorepo"\nphases: test: group: 1\n';

/**
 * Commits a monorepo with one project, `svc`, whose phase `test` runs one script step `s1` (`run`),
 * to the bare repository <dataDir>/git/<repository>.git (made if missing); returns the commit.
 */
export async function seedOneStepProject(dataDir: string, repository: string, run: string): Promise<string> {
  const source = mkdtempSync(join(tmpdir(), 'forge-one-step-'));
  try {
    mkdirSync(join(source, '.forge'));
    mkdirSync(join(source, 'svc', '.forge'), { recursive: true });
    writeFileSync(join(source, '.forge', 'repo.cue'), REPO_CUE);
    writeFileSync(join(source, 'svc', '.forge', 'project.cue'), `name: "svc"\nphases: test: steps: [{name: "s1", action: "script", run: ${JSON.stringify(run)}}]\n`);
    const { commitSha } = await seedRepository({ bareDir: join(dataDir, 'git', `${repository}.git`), sourceDir: source, message: 'test' });
    return commitSha;
  } finally {
    rmSync(source, { recursive: true, force: true });
  }
}

/** The clone URL template of the repositories above (FORGE_GIT_URL_TEMPLATE). */
export const gitUrlTemplate = (dataDir: string) => `file://${join(dataDir, 'git')}/{repository}.git`;
