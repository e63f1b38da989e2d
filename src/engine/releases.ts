/**
 * Release use cases: register an immutable release with the next gap-free number of its project,
 * its aliases, trigger and artifacts; look releases up by alias, number or SHA prefix.
 *
 * Numbering: the (repository, project) counter row is locked and bumped in the same transaction
 * as the insert, so an attempt that fails rolls its number back and concurrent creates queue on
 * the row (digest §7.5). Creating a release for a commit that already has one returns that release.
 */
import { randomUUID } from 'node:crypto';
import type { Release, ReleaseAlias } from '../domain/entities.ts';
import { envelope } from '../domain/entities.ts';
import { conflict, denied, invalid, notFound } from '../domain/errors.ts';
import { isValidName, normaliseSha } from '../domain/names.ts';
import type { ArtifactType, ReleaseTriggerType } from '../domain/statuses.ts';
import type { EngineContext } from './context.ts';
import { uniqueViolation } from './db-errors.ts';
import { Lru } from '../lib/lru.ts';
import { tagReleases, type TaggingStrategy } from '../config/triggers.ts';
import type { Page, ReleaseRecord } from './ports.ts';

export const MAX_ARTIFACTS = 50;

export interface CreateReleaseInput {
  pipeline_run_id?: string | undefined;
  repository: string;
  project: string;
  commit_sha: string;
  artifacts: { name: string; type: ArtifactType; tracking_oci_uri: string; tracking_oci_digest?: string | undefined; primary_published_uri: string }[];
  oci_uri?: string | undefined;
  oci_digest?: string | undefined;
  trigger?: { type: ReleaseTriggerType; branch?: string | undefined; tag?: string | undefined } | undefined;
  tagging_strategy?: 'monorepo' | 'tag-all' | undefined;
  aliases?: string[] | undefined;
  /** Beyond the seed: the number the caller expects (the release job built its image for it); another next number is a 409. */
  release_number?: number | undefined;
}

/**
 * The aliases a release gets by itself (digest §4.1): the number ("42"), the tag's version when the
 * tag is valid for the strategy (`api/v1.2.0` → `v1.2.0` in monorepo mode), and `<branch>-<n>` for a
 * branch push. The release job puts the same list in the release image.
 */
export function generatedAliases(number: number, trigger: { type: string; branch?: string | null | undefined; tag?: string | null | undefined }, project: string, strategy?: TaggingStrategy): { type: ReleaseAlias['alias_type']; value: string }[] {
  const aliases: { type: ReleaseAlias['alias_type']; value: string }[] = [{ type: 'numeric', value: String(number) }];
  const tag = trigger.tag ? tagAlias(trigger.tag, project, strategy) : undefined;
  if (tag !== undefined && isValidName('alias', tag)) aliases.push({ type: 'tag', value: tag });
  if (trigger.type === 'branch_push' && trigger.branch) {
    const branchAlias = `${trigger.branch}-${number}`;
    if (isValidName('alias', branchAlias)) aliases.push({ type: 'branch', value: branchAlias });
  }
  return aliases;
}

export interface ReleaseView extends ReleaseRecord {
  canonical_id: string;
}

export const canonicalId = (r: Pick<Release, 'repository' | 'project' | 'commit_sha'>) => `${r.repository}/${r.project}/${r.commit_sha}`;

/**
 * The tag alias of a release, or undefined when the tag is not valid for the tagging strategy
 * (digest §1.9): monorepo tags are `<project>/v*` (alias: the part after the slash); tag-all tags
 * are bare `v*`. Without an explicit strategy, a tag with a slash is read as monorepo.
 */
export function tagAlias(tag: string, project: string, strategy?: TaggingStrategy): string | undefined {
  const effective = strategy ?? (tag.includes('/') ? 'monorepo' : 'tag-all');
  if (!tagReleases(tag, project, effective)) return undefined;
  return effective === 'monorepo' ? tag.slice(project.length + 1) : tag;
}

function deriveTrigger(input: CreateReleaseInput, run: { trigger_type: string; branch: string } | undefined): { type: ReleaseTriggerType; branch: string | null; tag: string | null } {
  if (input.trigger) {
    const { type, branch, tag } = input.trigger;
    if (type === 'branch_push' && !branch) throw invalid('trigger.branch is required when trigger.type is branch_push', { field: 'trigger.branch' });
    if (type === 'tag' && !tag) throw invalid('trigger.tag is required when trigger.type is tag', { field: 'trigger.tag' });
    return { type, branch: branch ?? null, tag: tag ?? null };
  }
  if (run && run.trigger_type !== 'manual') return { type: 'branch_push', branch: run.branch, tag: null };
  return { type: 'manual', branch: run?.branch ?? null, tag: null };
}

export interface ReleaseCaller {
  actor: string;
  /** Service accounts and operators record what triggered a release; anyone else's release is manual. */
  mayRecordTrigger: boolean;
}

export async function createRelease(ctx: EngineContext, input: CreateReleaseInput, caller: ReleaseCaller): Promise<{ release: Release; created: boolean }> {
  const actor = caller.actor;
  if (!caller.mayRecordTrigger && (input.trigger !== undefined || input.pipeline_run_id !== undefined)) {
    throw denied('only service accounts and operators may record a trigger or pipeline run; a release you create is manual', {
      fields: ['trigger', 'pipeline_run_id'].filter((f) => f in input && input[f as keyof CreateReleaseInput] !== undefined),
    });
  }
  const commitSha = normaliseSha(input.commit_sha);
  const { repository, project } = input;
  if (input.artifacts.length > MAX_ARTIFACTS) throw invalid(`a release holds at most ${MAX_ARTIFACTS} artifacts`, { field: 'artifacts', count: input.artifacts.length });
  const names = new Set<string>();
  for (const a of input.artifacts) {
    if (names.has(a.name)) throw invalid(`artifact ${a.name} is listed twice`, { field: 'artifacts', artifact: a.name });
    names.add(a.name);
  }
  const custom = [...new Set(input.aliases ?? [])];
  for (const alias of custom) {
    if (/^\d+$/.test(alias)) throw invalid(`alias ${alias} is numeric; numeric aliases are the release numbers`, { field: 'aliases', alias });
  }
  const existing = await ctx.store.findReleaseByCommit(repository, project, commitSha);
  if (existing) return { release: existing, created: false };

  let run: { trigger_type: string; branch: string } | undefined;
  if (input.pipeline_run_id !== undefined) {
    const found = await ctx.store.getRun(input.pipeline_run_id);
    if (!found) throw invalid('pipeline_run_id names no pipeline run', { field: 'pipeline_run_id', pipeline_run_id: input.pipeline_run_id });
    if (found.repository !== repository || found.commit_sha !== commitSha) {
      throw invalid('the pipeline run is for another repository or commit', {
        field: 'pipeline_run_id', run_repository: found.repository, run_commit_sha: found.commit_sha,
      });
    }
    run = found;
  }
  const trigger = deriveTrigger(input, run);
  const now = ctx.clock.now();
  const ociUri = input.oci_uri ?? `${ctx.releaseRegistry}/${repository.toLowerCase()}/${project}:${commitSha}`;

  const outcome = await ctx.store.transaction(async (tx) => {
    const last = await tx.lockReleaseCounter(repository, project);
    // Re-check under the counter lock: a concurrent create for this commit may have committed.
    const raced = await tx.findReleaseByCommit(repository, project, commitSha);
    if (raced) return { release: raced, created: false };
    const number = last + 1;
    if (input.release_number !== undefined && input.release_number !== number) {
      // The release job built its image for another number (a concurrent release took it): it
      // rebuilds for this one and registers again.
      throw conflict(`release number ${input.release_number} of ${repository}/${project} is not the next one; the next is ${number}`, {
        field: 'release_number', release_number: input.release_number, next_release_number: number,
      });
    }
    const release: Release = {
      id: randomUUID(), repository, project, commit_sha: commitSha, release_number: number,
      pipeline_run_id: input.pipeline_run_id ?? null, oci_uri: ociUri, oci_digest: input.oci_digest ?? null,
      created_at: now, created_by: actor,
    };
    const alias = (value: string, type: ReleaseAlias['alias_type']): ReleaseAlias => ({
      id: randomUUID(), release_id: release.id, repository, project, alias: value, alias_type: type,
    });
    const aliases = generatedAliases(number, trigger, project, input.tagging_strategy).map((a) => alias(a.value, a.type));
    for (const value of custom) if (!aliases.some((a) => a.alias === value)) aliases.push(alias(value, 'custom'));
    // A generated branch alias that is taken (a custom alias spelled like it) is left out; a taken tag
    // or custom alias is a conflict the caller must resolve.
    const taken = new Set(await tx.findTakenAliases(repository, project, aliases.map((a) => a.alias)));
    const kept = aliases.filter((a) => !(a.alias_type === 'branch' && taken.has(a.alias)));
    const clashes = kept.filter((a) => taken.has(a.alias)).map((a) => a.alias);
    if (clashes.length > 0) {
      throw conflict(`alias ${clashes.join(', ')} is already used by another release of ${repository}/${project}`, { aliases: clashes });
    }
    await tx.insertRelease(release);
    await tx.insertTrigger({ release_id: release.id, trigger_type: trigger.type, branch: trigger.branch, tag: trigger.tag, triggered_by: actor, triggered_at: now });
    try {
      await tx.insertAliases(kept);
    } catch (error) {
      // Only a concurrent create can take an alias between the check and here.
      if (uniqueViolation(error) === undefined) throw error;
      throw conflict(`an alias of this release was just taken by another release of ${repository}/${project}`, { aliases: kept.map((a) => a.alias) });
    }
    await tx.insertArtifacts(input.artifacts.map((a) => ({
      id: randomUUID(), release_id: release.id, artifact_name: a.name, artifact_type: a.type,
      tracking_oci_uri: a.tracking_oci_uri, tracking_oci_digest: a.tracking_oci_digest ?? null,
      primary_published_uri: a.primary_published_uri, created_at: now,
    })));
    await tx.setReleaseCounter(repository, project, number);
    await tx.insertEvents([envelope('release.created', { release_id: release.id, repository, project, commit_sha: commitSha, release_number: number }, now)]);
    return { release, created: true };
  });
  if (outcome.created) ctx.eventsWritten();
  return outcome;
}

export function viewRelease(release: ReleaseRecord): ReleaseView {
  return { ...release, canonical_id: canonicalId(release) };
}

/**
 * Resolved lookups, per store. A release is immutable once its creating transaction commits: its
 * number and aliases are written with it and never move, so a hit through an alias (every number is
 * also a numeric alias) can be kept, safely across replicas too. Misses and SHA lookups are not kept:
 * a later release can turn a miss into a hit, make a prefix ambiguous, or add an alias that wins.
 */
const resolved = new WeakMap<object, Lru<string, ReleaseRecord>>();
const RESOLVED_MAX = 10_000;

function resolvedCache(ctx: EngineContext): Lru<string, ReleaseRecord> {
  let cache = resolved.get(ctx.store);
  if (!cache) {
    cache = new Lru(RESOLVED_MAX);
    resolved.set(ctx.store, cache);
  }
  return cache;
}

/** Drops the resolved lookups of a store: for a database that was emptied or restored. */
export function forgetCachedReleases(store: object): void {
  resolved.delete(store);
}

/** Resolves `ref` as alias, then release number, then full or prefix commit SHA (digest §4.1). */
export async function resolveRelease(ctx: EngineContext, repository: string, project: string, ref: string): Promise<ReleaseRecord> {
  const cache = resolvedCache(ctx);
  const key = `${repository}:${project}:${ref}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const found = await resolveUncached(ctx, repository, project, ref);
  if (found.aliases.some((a) => a.alias === ref)) cache.set(key, found);
  return found;
}

async function resolveUncached(ctx: EngineContext, repository: string, project: string, ref: string): Promise<ReleaseRecord> {
  const byAlias = await ctx.store.findReleaseByAlias(repository, project, ref);
  if (byAlias) return byAlias;
  if (/^\d{1,9}$/.test(ref)) {
    const byNumber = await ctx.store.findReleaseByNumber(repository, project, Number(ref));
    if (byNumber) return byNumber;
  }
  if (isValidName('shaPrefix', ref)) {
    const matches = await ctx.store.findReleasesByShaPrefix(repository, project, ref.toLowerCase(), 5);
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length > 1) {
      throw conflict(`commit prefix ${ref} matches several releases; use more characters`, {
        ref, candidates: matches.map((m) => ({ release_number: m.release_number, commit_sha: m.commit_sha })),
      });
    }
  }
  throw notFound(`release ${ref} of ${repository}/${project}`, {
    repository, project, ref, looked_up_as: ['alias', 'release number', 'commit SHA or prefix'],
  });
}

export async function getRelease(ctx: EngineContext, repository: string, project: string, ref: string): Promise<ReleaseView> {
  return viewRelease(await resolveRelease(ctx, repository, project, ref));
}

export async function getReleaseById(ctx: EngineContext, id: string): Promise<ReleaseRecord> {
  const release = await ctx.store.getRelease(id);
  if (!release) throw notFound('release', { release_id: id });
  return release;
}

export async function listReleases(ctx: EngineContext, repository: string, project: string, limit: number, offset: number): Promise<Page<ReleaseView>> {
  const page = await ctx.store.listReleases(repository, project, limit, offset);
  return { rows: page.rows.map(viewRelease), total: page.total };
}
