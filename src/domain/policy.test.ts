import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, globToRegExp, policyViolations } from './policy.ts';
import { canReport, effectiveApprovalStatus } from './statuses.ts';

const policy = (name: string) => DEFAULT_POLICIES.find((p) => p.name === name)!;

describe('environment policies', () => {
  it('dev takes anything', () => {
    expect(policyViolations(policy('dev'), { trigger_type: 'branch_push', branch: 'feature/x' })).toEqual([]);
  });
  it('staging takes main and release/* only', () => {
    expect(policyViolations(policy('staging'), { trigger_type: 'branch_push', branch: 'release/1.2' })).toEqual([]);
    expect(policyViolations(policy('staging'), { trigger_type: 'branch_push', branch: 'xrelease/1' })).toEqual([
      { requirement: 'allowed_branches', required: ['main', 'release/*'], actual: 'xrelease/1' },
    ]);
  });
  it('production takes tag and manual releases only; a tag release has no branch to check', () => {
    expect(policyViolations(policy('production'), { trigger_type: 'tag', branch: null })).toEqual([]);
    expect(policyViolations(policy('production'), { trigger_type: 'branch_push', branch: 'main' })).toEqual([
      { requirement: 'allowed_triggers', required: ['tag', 'manual'], actual: 'branch_push' },
    ]);
  });
  it('globs are anchored and escape regex characters', () => {
    expect(globToRegExp('release/*').test('release/1.2')).toBe(true);
    expect(globToRegExp('release/*').test('xrelease/1')).toBe(false);
    expect(globToRegExp('v1.?').test('v1.2')).toBe(true);
    expect(globToRegExp('v1.?').test('v1x2')).toBe(false);
  });
});

describe('status rules', () => {
  it('allows only forward moves from worker reports', () => {
    expect(canReport('pending', 'running')).toBe(true);
    expect(canReport('running', 'success')).toBe(true);
    expect(canReport('pending', 'success')).toBe(false);
    expect(canReport('success', 'failed')).toBe(false);
    expect(canReport('skipped', 'running')).toBe(false);
  });
  it('derives expired from the clock', () => {
    const now = new Date('2026-01-02T00:00:00Z');
    expect(effectiveApprovalStatus('active', new Date('2026-01-01T00:00:00Z'), now)).toBe('expired');
    expect(effectiveApprovalStatus('active', new Date('2026-01-03T00:00:00Z'), now)).toBe('active');
    expect(effectiveApprovalStatus('active', null, now)).toBe('active');
    expect(effectiveApprovalStatus('revoked', new Date('2026-01-01T00:00:00Z'), now)).toBe('revoked');
  });
});
