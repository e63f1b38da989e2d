/** Who is calling: taken from a verified OIDC token (auth/), checked against permissions (auth/permissions.ts). */
export const ROLES = ['developer', 'approver', 'operator', 'service-account'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  /** The token's `sub`. */
  subject: string;
  /** The name recorded on what this identity does (triggered_by, created_by, approver, deployed_by):
   * `preferred_username` when the token has one, else `sub`. */
  actor: string;
  /** Forge roles found in the token (unknown roles are ignored). */
  roles: Role[];
  issuer: string;
  /** Set on a platform token (POST /v1/auth/github): the one repository (owner/name) it acts for.
   * Such an identity keeps only the permissions of auth/permissions.ts REPOSITORY_SCOPED_PERMISSIONS. */
  repository?: string;
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
