/** A release image's inputs for tests: two artifacts, two rendered Deployments. */
import { resourcesYaml } from '../../src/config/render.ts';
import type { ReleaseImageInput } from '../../src/oci/release-image.ts';

export const COMMIT = 'a'.repeat(40);

export function deployment(name: string, image: string) {
  return resourcesYaml([{
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop' },
    spec: { template: { spec: { containers: [{ name, image }] } } },
  }]);
}

export function releaseInput(overrides: Partial<ReleaseImageInput> = {}): ReleaseImageInput {
  return {
    repository: 'Acme/Monorepo',
    project: 'shop',
    number: 7,
    aliases: [{ type: 'tag', value: 'shop/v1.2.0' }, { type: 'numeric', value: '7' }],
    trigger: { type: 'tag', tag: 'shop/v1.2.0' },
    source: { commit: COMMIT, branch: 'main', url: 'https://github.com/acme/monorepo', author: 'dev', message: 'release' },
    artifacts: [
      { name: 'web', type: 'archive', digest: `sha256:${'2'.repeat(64)}`, trackingUri: `reg/acme/monorepo/shop/web:sha-${COMMIT}` },
      { name: 'api', type: 'container', digest: `sha256:${'1'.repeat(64)}`, trackingUri: `reg/acme/monorepo/shop/api:sha-${COMMIT}`, uri: 'reg/shop/api:1.2.0' },
    ],
    created: '2024-05-01T12:00:00Z',
    resources: { 'web.yaml': deployment('web', 'reg/shop/web:1.2.0'), 'api.yaml': deployment('api', 'reg/shop/api:1.2.0') },
    pipelineRunId: '11111111-1111-4111-8111-111111111111',
    ...overrides,
  };
}
