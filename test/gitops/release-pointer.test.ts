import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  buildReleasePointer,
  checkPointerLayout,
  DEFAULT_POINTER_LAYOUT,
  pointerPath,
  renderReleasePointer,
  repositoryLabel,
} from '../../src/gitops/release-pointer.ts';
import { aPointer } from './git-helpers.ts';

describe('pointerPath', () => {
  it('puts owner and name of the repository in two directories', () => {
    expect(pointerPath(DEFAULT_POINTER_LAYOUT, { environment: 'prod', repository: 'acme/shop', project: 'web' })).toBe(
      'environments/prod/acme/shop/web/release.yaml',
    );
  });

  it('follows another layout', () => {
    const layout = checkPointerLayout('{environment}/apps/{repository}-{project}/release.yaml');
    expect(pointerPath(layout, { environment: 'dev', repository: 'Acme-Co/shop.api', project: 'web' })).toBe(
      'dev/apps/Acme-Co/shop.api-web/release.yaml',
    );
  });
});

describe('repositoryLabel', () => {
  it('makes a Kubernetes label value', () => {
    expect(repositoryLabel('acme/shop')).toBe('acme.shop');
    expect(repositoryLabel('acme/shop_')).toBe('acme.shop');
    const long = repositoryLabel(`acme/${'x'.repeat(60)}.-y`);
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
  });
});

describe('buildReleasePointer', () => {
  it('takes the numeric alias from the release number when there is none, and lower-cases the SHA', () => {
    const p = aPointer({ releaseNumber: 4, commitSha: 'ABCDEF0123456789ABCDEF0123456789ABCDEF01' });
    p.aliases = [];
    const pointer = buildReleasePointer(p);
    expect(pointer.spec.release).toBe('abcdef0123456789abcdef0123456789abcdef01');
    expect(pointer.spec.aliases).toEqual({ numeric: '4' });
  });

  it('renders the release number annotation as a string', () => {
    const text = renderReleasePointer(buildReleasePointer(aPointer({ releaseNumber: 12 })));
    expect(text).toContain('forge.projectcatalyst.io/release-number: "12"');
    expect(parse(text).metadata.annotations['forge.projectcatalyst.io/release-number']).toBe('12');
  });
});
