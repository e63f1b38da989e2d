import { invalid } from '../domain/errors.ts';
import type { EnvironmentPolicy } from '../domain/policy.ts';
import type { EngineContext } from './context.ts';

/** The configured policy of `name`, or a validation_error listing the environments there are. */
export function environmentPolicy(ctx: Pick<EngineContext, 'environments'>, name: string): EnvironmentPolicy {
  const policy = ctx.environments.find((p) => p.name === name);
  if (!policy) {
    throw invalid(`unknown environment ${JSON.stringify(name)}; environments: ${ctx.environments.map((p) => p.name).join(', ')}`, {
      field: 'environment', allowed: ctx.environments.map((p) => p.name),
    });
  }
  return policy;
}
