/**
 * Environment policies (digest §4.5): which releases may reach an environment, and whether an
 * approval is needed. Pure evaluation; the engine supplies the release's trigger.
 */
import type { ReleaseTriggerType } from './statuses.ts';

export interface EnvironmentPolicy {
  name: string;
  allowed_triggers: ReleaseTriggerType[];
  /** Branch globs: `*` matches any run of characters (including `/`), `?` one character. */
  allowed_branches: string[];
  auto_deploy: boolean;
  requires_approval: boolean;
  /** Beyond the seed: distinct approvers needed when requires_approval. */
  approvals_required: number;
  /**
   * Beyond the seed: a frozen environment takes no deployments, automatic or requested, unless an
   * operator overrides the freeze with a justification (recorded in the audit trail and the commit).
   */
  frozen: boolean;
  /** Why it is frozen (shown in refusals). */
  freeze_reason?: string;
}

export const DEFAULT_POLICIES: readonly EnvironmentPolicy[] = [
  {
    name: 'dev',
    allowed_triggers: ['branch_push', 'tag', 'manual'],
    allowed_branches: ['*'],
    auto_deploy: true,
    requires_approval: false,
    approvals_required: 0,
    frozen: false,
  },
  {
    name: 'staging',
    allowed_triggers: ['branch_push', 'tag', 'manual'],
    allowed_branches: ['main', 'release/*'],
    auto_deploy: false,
    requires_approval: false,
    approvals_required: 0,
    frozen: false,
  },
  {
    name: 'production',
    allowed_triggers: ['tag', 'manual'],
    allowed_branches: ['main'],
    auto_deploy: false,
    requires_approval: true,
    approvals_required: 1,
    frozen: false,
  },
];

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*+/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export interface PolicyViolation {
  requirement: 'allowed_triggers' | 'allowed_branches';
  required: string[];
  actual: string | null;
}

/** What a refusal lists: each requirement of the policy that the request does not meet. */
export interface Requirement {
  requirement: PolicyViolation['requirement'] | 'requires_approval' | 'frozen';
  required: string[] | string | number;
  actual: string | number | null;
}

export interface TriggerFacts {
  trigger_type: ReleaseTriggerType;
  branch: string | null;
}

/**
 * The trigger must be allowed, and a release built from a branch must come from an allowed branch.
 * A tag or manual release carries no branch, so only its trigger type is checked.
 */
export function policyViolations(policy: EnvironmentPolicy, trigger: TriggerFacts): PolicyViolation[] {
  const violations: PolicyViolation[] = [];
  if (!policy.allowed_triggers.includes(trigger.trigger_type)) {
    violations.push({ requirement: 'allowed_triggers', required: policy.allowed_triggers, actual: trigger.trigger_type });
  }
  if (trigger.branch !== null && !policy.allowed_branches.some((glob) => globToRegExp(glob).test(trigger.branch ?? ''))) {
    violations.push({ requirement: 'allowed_branches', required: policy.allowed_branches, actual: trigger.branch });
  }
  return violations;
}
