/**
 * Roles → permissions: the one table (README "Roles and permissions" shows it).
 * Any authenticated identity may read. `operator` may do everything a user may; only
 * `service-account` may call the internal status endpoints. An identity scoped to a repository
 * (a platform token from the GitHub Actions exchange) keeps only REPOSITORY_SCOPED_PERMISSIONS,
 * and acts on its own repository only (requireRepository).
 */
import { denied } from '../domain/errors.ts';
import type { Identity, Role } from '../domain/identity.ts';

export const PERMISSIONS = [
  'read',
  'runs:create',
  'runs:cancel',
  'releases:create',
  'deployments:create:dev',
  'deployments:create:any',
  'deployments:override-freeze',
  'approvals:create',
  'approvals:revoke',
  'internal:status',
  'retention:run',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  developer: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev'],
  approver: ['read', 'approvals:create', 'approvals:revoke'],
  operator: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev', 'deployments:create:any', 'deployments:override-freeze', 'approvals:create', 'approvals:revoke', 'retention:run'],
  'service-account': ['read', 'runs:create', 'releases:create', 'deployments:create:dev', 'deployments:create:any', 'internal:status'],
};

/**
 * What a repository-scoped identity may still do, whatever its roles: read, and start runs and
 * register or build releases of its repository (what a repository's CI does). Everything else —
 * status reports, deployments, approvals, cancels — belongs to people and to the platform's own
 * service accounts.
 */
export const REPOSITORY_SCOPED_PERMISSIONS: readonly Permission[] = ['read', 'runs:create', 'releases:create'];

/** Every authenticated identity reads, whatever its roles. */
export function permissionsOf(identity: Identity): Set<Permission> {
  const granted = new Set<Permission>(['read']);
  for (const role of identity.roles) for (const p of ROLE_PERMISSIONS[role]) granted.add(p);
  if (identity.repository !== undefined) {
    for (const p of granted) if (!REPOSITORY_SCOPED_PERMISSIONS.includes(p)) granted.delete(p);
  }
  return granted;
}

export function can(identity: Identity, permission: Permission): boolean {
  return permissionsOf(identity).has(permission);
}

export function rolesGranting(permission: Permission): Role[] {
  return (Object.keys(ROLE_PERMISSIONS) as Role[]).filter((role) => ROLE_PERMISSIONS[role].includes(permission));
}

export function requirePermission(identity: Identity, permission: Permission): void {
  if (can(identity, permission)) return;
  const scope = identity.repository === undefined ? {} : { token_repository: identity.repository };
  const why = identity.repository === undefined ? '' : `; a token scoped to repository ${identity.repository} may only ${REPOSITORY_SCOPED_PERMISSIONS.join(', ')}`;
  throw denied(`this action needs permission ${permission}, granted to roles: ${rolesGranting(permission).join(', ')}${why}`, {
    permission,
    roles_granting: rolesGranting(permission),
    your_roles: identity.roles,
    ...scope,
  });
}

/**
 * A repository-scoped identity acts on its own repository only. Compared case-insensitively, as
 * GitHub names repositories: `ACME/Shop` is the same repository, and clones the same code.
 */
export function requireRepository(identity: Identity, repository: string): void {
  const own = identity.repository;
  if (own === undefined || own.toLowerCase() === repository.toLowerCase()) return;
  throw denied(`this token acts for repository ${own} only, not ${repository}`, { repository, token_repository: own });
}

/** The dev environment is open to developers; every other environment needs deployments:create:any. */
export function deployPermissionFor(environment: string): Permission {
  return environment === 'dev' ? 'deployments:create:dev' : 'deployments:create:any';
}
