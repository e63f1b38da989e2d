import { describe, expect, it } from 'vitest';
import { parseChallenge } from './challenge.ts';

describe('parseChallenge', () => {
  it('reads a Bearer challenge, quoted commas and escapes included', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer', realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push',
    });
    expect(parseChallenge('bearer  realm="r", error="insufficient_scope", scope="repository:x:push,pull"')).toEqual({
      scheme: 'bearer', realm: 'r', scope: 'repository:x:push,pull', error: 'insufficient_scope',
    });
    expect(parseChallenge('Bearer realm="a\\"b",service=bare')).toEqual({ scheme: 'bearer', realm: 'a"b', service: 'bare' });
  });

  it('reads Basic, and refuses what cannot be answered', () => {
    expect(parseChallenge('Basic realm="forge-test"')).toEqual({ scheme: 'basic' });
    expect(parseChallenge('Bearer service="s"')).toBeUndefined(); // no realm to ask
    expect(parseChallenge('Negotiate')).toBeUndefined();
    expect(parseChallenge('')).toBeUndefined();
  });
});
