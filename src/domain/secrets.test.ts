import { describe, expect, it } from 'vitest';
import { describeSecretRef, parseSecretRef, parseStepSecrets, selectSecretKey } from './secrets.ts';

describe('secret references', () => {
  it('each provider owns its fields; aws takes name, secretName or path', () => {
    expect(parseSecretRef({ provider: 'aws', secretName: 'ci/token', region: 'eu-west-1' }, 'r')).toEqual({ ref: { provider: 'aws', path: 'ci/token', region: 'eu-west-1' } });
    expect(parseSecretRef({ provider: 'aws', name: 'arn:aws:secretsmanager:us-east-1:1:secret:x', key: 'k', version: 'AWSPREVIOUS' }, 'r'))
      .toEqual({ ref: { provider: 'aws', path: 'arn:aws:secretsmanager:us-east-1:1:secret:x', key: 'k', version: 'AWSPREVIOUS' } });
    expect(parseSecretRef({ provider: 'vault', path: 'ci/github', key: 'ssh', version: 3, mount: 'kv' }, 'r')).toEqual({ ref: { provider: 'vault', path: 'ci/github', key: 'ssh', version: '3', mount: 'kv' } });
    expect(parseSecretRef({ provider: 'env', name: 'NPM_TOKEN' }, 'r')).toEqual({ ref: { provider: 'env', path: 'NPM_TOKEN' } });
    expect(parseSecretRef({ provider: 'file', path: 'npm/token' }, 'r')).toEqual({ ref: { provider: 'file', path: 'npm/token' } });
  });

  it('says what is wrong with a reference, all at once', () => {
    const problems = (raw: unknown) => {
      const parsed = parseSecretRef(raw, 'publishers.docker.credentials');
      return 'problems' in parsed ? parsed.problems : [];
    };
    expect(problems({ provider: 'gcp', name: 'x' })).toEqual(['publishers.docker.credentials.provider: "gcp" is not a secret provider; providers are env, file, aws, vault']);
    expect(problems({ provider: 'aws', name: 'a', path: 'b' })).toEqual(['publishers.docker.credentials: give the aws secret one of name, secretName, path (they are the same field), not name and path']);
    expect(problems({ provider: 'vault', path: '/abs', mount: 'a b', version: 'latest', value: 'oops' })).toEqual([
      'publishers.docker.credentials: value is not a field of a vault secret; its fields are path, key, mount, version',
      'publishers.docker.credentials.path: "/abs" must be a KV path without a leading "/" and without empty, "." or ".." segments',
      'publishers.docker.credentials.mount: "a b" is not a Vault mount path',
      'publishers.docker.credentials.version: a Vault KV version is a positive whole number',
    ]);
    expect(problems({ provider: 'file', path: '../../etc/shadow' })).toHaveLength(1);
    expect(problems({ provider: 'env', name: 'FORGE_WORKER_TOKEN' })[0]).toMatch(/is the worker's own setting or credential/);
    expect(problems({ provider: 'env', name: 'AWS_SECRET_ACCESS_KEY' })).toHaveLength(1);
    expect(problems('aws:ci/token')).toHaveLength(1);
  });

  it('messages name a reference by provider, path and key', () => {
    expect(describeSecretRef({ provider: 'aws', path: 'ci/npm', key: 'token', region: 'eu-west-1' })).toBe('aws:ci/npm#token (region eu-west-1)');
    expect(describeSecretRef({ provider: 'vault', path: 'ci/x', mount: 'kv', version: '2' })).toBe('vault:ci/x (mount kv, version 2)');
  });

  it('a key selects a field of a JSON secret; a missing key lists the keys, never values', () => {
    const ref = { provider: 'env', path: 'X', key: 'password' } as const;
    expect(selectSecretKey('{"user":"u","password":"p4ss"}', ref)).toEqual({ value: 'p4ss' });
    expect(selectSecretKey('{"user":"u","port":5432}', { ...ref, key: 'port' })).toEqual({ value: '5432' });
    expect(selectSecretKey('{"user":"hidden"}', ref)).toEqual({ error: 'secret env:X#password has no key password; its keys: user' });
    expect(selectSecretKey('plain', { provider: 'env', path: 'X' })).toEqual({ value: 'plain' });
  });
});

describe('a step\'s secrets', () => {
  it('each goes to one variable or one file', () => {
    const { secrets, problems } = parseStepSecrets([
      { provider: 'aws', name: 'ci/npm', key: 'token', env: 'NPM_TOKEN' },
      { provider: 'vault', path: 'ci/github', key: 'ssh_key', file: 'ssh/id_ed25519', optional: true },
    ], 'phases.test.s1.secrets');
    expect(problems).toEqual([]);
    expect(secrets).toEqual([
      { ref: { provider: 'aws', path: 'ci/npm', key: 'token' }, env: 'NPM_TOKEN', optional: false },
      { ref: { provider: 'vault', path: 'ci/github', key: 'ssh_key' }, file: 'ssh/id_ed25519', optional: true },
    ]);
  });

  it('refuses no destination, two, clashes, Forge\'s variables and escaping files', () => {
    const { problems } = parseStepSecrets([
      { provider: 'env', name: 'A' },
      { provider: 'env', name: 'A', env: 'X', file: 'x' },
      { provider: 'env', name: 'A', env: 'FORGE_RUN_ID' },
      { provider: 'env', name: 'A', env: 'HOME_DIR' },
      { provider: 'env', name: 'A', env: 'TOKEN' },
      { provider: 'env', name: 'B', env: 'TOKEN' },
      { provider: 'env', name: 'A', file: '../x' },
      { provider: 'env', name: 'A', env: 'Y', optional: 'yes' },
    ], 's', { HOME_DIR: '/h' });
    expect(problems).toEqual([
      's[0]: say where env:A goes with env: "<VARIABLE>" or file: "<name>" (one of them)',
      's[1]: say where env:A goes with env: "<VARIABLE>" or file: "<name>" (one of them)',
      's[2].env: FORGE_RUN_ID: FORGE_ variables are set by Forge; choose another name',
      's[3].env: HOME_DIR is also in the step\'s env; a variable comes from one place',
      's[5].env: two secrets go to TOKEN',
      's[6].file: "../x" must be a relative file name without empty, "." or ".." segments',
      's[7].optional must be true or false',
    ]);
    expect(parseStepSecrets({ provider: 'env' }, 's').problems).toEqual(['s: secrets is a list of references with env or file']);
  });
});
