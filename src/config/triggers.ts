/**
 * Release trigger evaluation during discovery (digest §1.9). A project's `release.on` lists
 * conditions; any one that holds triggers a release:
 * - `{branch: "<regex>"}`: the pushed branch matches the whole regex (anchored);
 * - `{tag: true}`: a tag valid for the tagging strategy points at the commit: monorepo
 *   `<project>/v*` (that project only), tag-all a bare `v*` (every release-enabled project);
 * - `{manual: true}`: never from CI; only an explicit API/CLI call creates the release.
 * No `release` block, or `enabled: false`, never triggers.
 */
export interface ReleaseCondition {
  branch?: string;
  tag?: boolean;
  manual?: boolean;
}

export interface ReleaseConfig {
  on: ReleaseCondition[];
  enabled?: boolean;
}

export interface GitContext {
  branch?: string | undefined;
  /** Tags pointing at the commit. */
  tags?: string[];
}

export type TaggingStrategy = 'monorepo' | 'tag-all';

export type TriggerResult =
  | { triggered: false }
  | { triggered: true; trigger: { type: 'branch_push'; branch: string } | { type: 'tag'; tag: string } };

/** The anchored form of a branch pattern; throws with the pattern in the message when it is not a regex. */
export function branchPattern(pattern: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (error) {
    throw new Error(`release.on branch ${JSON.stringify(pattern)} is not a valid regular expression: ${(error as Error).message}`, { cause: error });
  }
}

/** Whether `tag` releases `project` under the strategy. */
export function tagReleases(tag: string, project: string, strategy: TaggingStrategy): boolean {
  // One "/" only: <project>/v<version> (monorepo), v<version> (tag-all).
  return strategy === 'monorepo' ? tag.startsWith(`${project}/v`) && !tag.slice(project.length + 1).includes('/') : /^v[^/]*$/.test(tag);
}

export function evaluateTrigger(project: string, release: ReleaseConfig | undefined, strategy: TaggingStrategy, git: GitContext): TriggerResult {
  if (!release || release.enabled === false) return { triggered: false };
  // A tag is the more specific reason, so it wins when both a tag and a branch condition hold.
  if (release.on.some((c) => c.tag === true)) {
    const tag = (git.tags ?? []).find((t) => tagReleases(t, project, strategy));
    if (tag !== undefined) return { triggered: true, trigger: { type: 'tag', tag } };
  }
  const branch = git.branch;
  if (branch !== undefined) {
    for (const condition of release.on) {
      if (condition.branch !== undefined && branchPattern(condition.branch).test(branch)) {
        return { triggered: true, trigger: { type: 'branch_push', branch } };
      }
    }
  }
  return { triggered: false };
}
