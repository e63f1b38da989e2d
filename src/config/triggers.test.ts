import { describe, expect, it } from 'vitest';
import { phaseGroups } from './phase-groups.ts';
import { branchPattern, evaluateTrigger } from './triggers.ts';

describe('phase groups (behaviour 10)', () => {
  it('sorts groups ascending and phase names alphabetically inside each', () => {
    expect(phaseGroups({ test: { group: 2 }, lint: { group: 1 }, build: { group: 1 }, publish: { group: 10 }, check: { group: 1 } })).toEqual([
      { group: 1, phases: ['build', 'check', 'lint'] },
      { group: 2, phases: ['test'] },
      { group: 10, phases: ['publish'] },
    ]);
    expect(phaseGroups({})).toEqual([]);
  });
});

describe('release triggers', () => {
  it('11. a branch pattern is anchored: release/.* fires on release/1.2, not main or xrelease/1', () => {
    const release = { on: [{ branch: 'release/.*' }] };
    expect(evaluateTrigger('api', release, 'monorepo', { branch: 'release/1.2' })).toEqual({ triggered: true, trigger: { type: 'branch_push', branch: 'release/1.2' } });
    expect(evaluateTrigger('api', release, 'monorepo', { branch: 'main' })).toEqual({ triggered: false });
    expect(evaluateTrigger('api', release, 'monorepo', { branch: 'xrelease/1' })).toEqual({ triggered: false });
  });

  it('12. monorepo tags release their own project; tag-all tags release every enabled project', () => {
    const release = { on: [{ tag: true }] };
    const git = { branch: 'main', tags: ['auth/v1.2.0'] };
    expect(evaluateTrigger('auth', release, 'monorepo', git)).toEqual({ triggered: true, trigger: { type: 'tag', tag: 'auth/v1.2.0' } });
    expect(evaluateTrigger('billing', release, 'monorepo', git)).toEqual({ triggered: false });
    expect(evaluateTrigger('auth', release, 'monorepo', { tags: ['v1.2.0'] })).toEqual({ triggered: false });
    const all = { tags: ['v1.2.0'] };
    expect(evaluateTrigger('auth', release, 'tag-all', all)).toEqual({ triggered: true, trigger: { type: 'tag', tag: 'v1.2.0' } });
    expect(evaluateTrigger('billing', release, 'tag-all', all)).toEqual({ triggered: true, trigger: { type: 'tag', tag: 'v1.2.0' } });
    expect(evaluateTrigger('docs', { ...release, enabled: false }, 'tag-all', all)).toEqual({ triggered: false });
    expect(evaluateTrigger('none', undefined, 'tag-all', all)).toEqual({ triggered: false });
    expect(evaluateTrigger('auth', release, 'tag-all', { tags: ['auth/v1.2.0'] })).toEqual({ triggered: false });
  });

  it('13. a manual trigger never fires during CI discovery', () => {
    expect(evaluateTrigger('api', { on: [{ manual: true }] }, 'monorepo', { branch: 'main', tags: ['api/v1.0.0', 'v1.0.0'] })).toEqual({ triggered: false });
  });

  it('prefers a tag when both a tag and a branch condition hold; rejects a bad regex clearly', () => {
    const release = { on: [{ branch: 'main' }, { tag: true }] };
    expect(evaluateTrigger('api', release, 'monorepo', { branch: 'main', tags: ['api/v2.0.0'] })).toMatchObject({ trigger: { type: 'tag' } });
    expect(() => branchPattern('release/(')).toThrow(/release\.on branch "release\/\(" is not a valid regular expression/);
  });
});

describe('monorepo tag shape', () => {
  it('takes <project>/v<version> with a single "/" only', () => {
    expect(evaluateTrigger('auth', { on: [{ tag: true }] }, 'monorepo', { tags: ['auth/v1/extra'] })).toEqual({ triggered: false });
    expect(evaluateTrigger('auth', { on: [{ tag: true }] }, 'monorepo', { tags: ['auth/v1.0.0'] })).toMatchObject({ triggered: true });
  });
});
