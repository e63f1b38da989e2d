/**
 * Roles → permissions: the one table (README "Roles and permissions" shows it).
 * Any authenticated identity may read. `operator` may do everything a user may; only
 * `service-account` may call the internal status endpoints.
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
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  developer: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev'],
  approver: ['read', 'approvals:create', 'approvals:revoke'],
  operator: ['read', 'runs:create', 'runs:cancel', 'releases:create', 'deployments:create:dev', 'deployments:create:any', 'deployments:override-freeze', 'approvals:create', 'approvals:revoke'],
  'service-account': ['read', 'runs:create', 'releases:create', 'deployments:create:dev', 'deployments:create:any', 'internal:status'],
};

/** Every authenticated identity reads, whatever its roles. */
export function permissionsOf(identity: Identity): Set<Permission> {
  const granted = new Set<Permission>(['read']);
  for (const role of identity.roles) for (const p of ROLE_PERMISSIONS[role]) granted.add(p);
  return granted;
}

export function can(identity: Identity, permission: Permission): boolean {
  return permissionsOf(identity).has(permission);
}

export function rolesGranting(permission: Permission): Role[] {
  return (Object.keys(ROLE_PERMISSIONS) as Role[]).filter((role) => ROLE_PERMISSIONS[role].includes(permission));
}

export function requirePermission(identity: Identity, permission: Permission): void {
  if (!can(identity, permission)) {
    throw denied(`this action needs permission ${permission}, granted to roles: ${rolesGranting(permission).join(', ')}`, {
      permission,
      roles_granting: rolesGranting(permission),
      your_roles: identity.roles,
    });
  }
}

/** The dev environment is open to developers; every other environment needs deployments:create:any. */
export function deployPermissionFor(environment: string): Permission {
  return environment === 'dev' ? 'deployments:create:dev' : 'deployments:create:any';
}
