/** Fixtures for the GitOps tests: pointer writes and a git runner isolated from the user's config. */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Release, ReleaseAlias } from '../../src/domain/entities.ts';
import type { PointerWrite } from '../../src/engine/ports.ts';

const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function randomSha(): string {
  return randomBytes(20).toString('hex');
}

export function aPointer(overrides: Partial<PointerWrite> & { releaseNumber?: number; commitSha?: string } = {}): PointerWrite {
  const { releaseNumber = 1, commitSha = randomSha(), ...rest } = overrides;
  const repository = rest.repository ?? 'acme/shop';
  const project = rest.project ?? 'web';
  const release: Release = {
    id: randomUUID(),
    repository,
    project,
    commit_sha: commitSha,
    release_number: releaseNumber,
    pipeline_run_id: null,
    oci_uri: `registry.example.com/releases/acme-shop/${project}:${commitSha}`,
    oci_digest: null,
    created_at: new Date('2025-01-02T03:04:05Z'),
    created_by: 'ci',
  };
  const alias = (alias: string, alias_type: ReleaseAlias['alias_type']): ReleaseAlias => ({
    id: randomUUID(), release_id: release.id, repository, project, alias, alias_type,
  });
  return {
    environment: 'dev',
    repository,
    project,
    release,
    aliases: [alias(String(releaseNumber), 'numeric'), alias('main', 'branch')],
    deployedBy: 'alice@example.com',
    deployedAt: new Date('2025-01-02T03:05:00Z'),
    approvedBy: null,
    approvedAt: null,
    message: `deploy ${project} #${releaseNumber} to dev`,
    ...rest,
  };
}
