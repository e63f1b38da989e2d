// Lint: typescript-eslint plus the folder import rules of ARCHITECTURE.md.
// Each folder lists the folders it may import; everything else under src/ is refused.
import tseslint from 'typescript-eslint';

const folders = ['domain', 'config', 'engine', 'store', 'queue', 'worker', 'oci', 'gitops', 'auth', 'api', 'cmp', 'cli', 'settings', 'lib', 'bin'];

/** Who may import whom (besides itself). bin/ is the composition root and may import anything. */
const allowed = {
  lib: [],
  domain: ['lib'],
  settings: ['domain', 'lib'],
  config: ['domain', 'lib'],
  engine: ['domain', 'config', 'lib'],
  store: ['domain', 'engine', 'lib'],
  queue: ['domain', 'engine', 'lib'],
  oci: ['domain', 'engine', 'lib'],
  gitops: ['domain', 'engine', 'lib'],
  auth: ['domain', 'engine', 'lib'],
  worker: ['domain', 'config', 'engine', 'queue', 'oci', 'gitops', 'lib'],
  api: ['domain', 'engine', 'auth', 'settings', 'lib'],
  cmp: ['domain', 'config', 'oci', 'gitops', 'settings', 'lib'],
  cli: ['domain', 'config', 'auth', 'settings', 'lib'],
};

const layerRules = Object.entries(allowed).map(([folder, may]) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: folders
        .filter((f) => f !== folder && !may.includes(f))
        .map((f) => ({
          group: [`../${f}/*`, `../../${f}/*`, `**/src/${f}/*`],
          message: `src/${folder} may import only ${[folder, ...may].join(', ')} (ARCHITECTURE.md layout).`,
        })),
    }],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'web/dist/', '.forge-data/', 'coverage/', 'test-results/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules,
  {
    // The dashboard talks to the server only over /v1: from src/ it may use the domain's types and lib.
    files: ['web/**/*.ts', 'web/**/*.tsx'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: folders.filter((f) => f !== 'domain' && f !== 'lib').map((f) => ({
          group: [`**/src/${f}/*`],
          message: 'web/ may import only src/domain and src/lib (it talks to the server over /v1).',
        })),
      }],
    },
  },
);
