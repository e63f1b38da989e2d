import { describe, expect, it } from 'vitest';
import { checkName, isValidName } from './names.ts';

describe('names', () => {
  it.each([
    ['repository', 'acme/shop', true], ['repository', 'Acme-1/my.repo_x', true], ['repository', 'acme', false],
    ['repository', 'acme/..', false], ['repository', '../etc', false], ['repository', 'acme/sh..op', false],
    ['repository', '/acme/shop', false], ['repository', 'acme/shop/x', false], ['repository', 'acme/.hidden', false],
    ['project', 'auth-service', true], ['project', 'Auth', false], ['project', '-x', false], ['project', 'a'.repeat(64), false],
    ['branch', 'main', true], ['branch', 'release/1.2', true], ['branch', 'feature/../x', false], ['branch', '/main', false],
    ['branch', 'main/', false], ['branch', 'a//b', false], ['branch', 'x.lock', false], ['branch', 'ma\u0000in', false],
    ['branch', '.hidden', false], ['branch', 'a/.b', false], ['branch', '-x', false], ['branch', 'a b', false],
    ['alias', 'v1.2.3', true], ['alias', 'main-42', true], ['alias', 'release/1.2-3', true], ['alias', '..', false],
    ['commitSha', 'a'.repeat(40), true], ['commitSha', 'A'.repeat(40), true], ['commitSha', 'a'.repeat(64), true],
    ['commitSha', 'a'.repeat(39), false], ['commitSha', 'g'.repeat(40), false],
    ['actor', 'alice@example.com', true], ['actor', 'a\nb', false], ['actor', '', false],
  ] as const)('%s %j → %s', (kind, value, ok) => {
    expect(isValidName(kind, value)).toBe(ok);
  });

  it('checkName explains what is allowed', () => {
    expect(() => checkName('project', 'project', 'Bad_Name')).toThrow(/invalid project/);
    try {
      checkName('project', 'project', 'Bad_Name');
    } catch (error) {
      expect((error as { code: string; details: { allowed: string } }).code).toBe('validation_error');
      expect((error as { details: { allowed: string } }).details.allowed).toContain('DNS label');
    }
  });
});
