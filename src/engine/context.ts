/** What every use case receives: the ports and the settings that shape behaviour. */
import type { EnvironmentPolicy } from '../domain/policy.ts';
import type { Clock, GitOpsWriter, Store } from './ports.ts';

export interface EngineContext {
  store: Store;
  clock: Clock;
  /** Called after a transaction that wrote events commits, so the relay delivers them promptly. */
  eventsWritten: () => void;
  environments: EnvironmentPolicy[];
  approvalTtlMs: number;
  releaseRegistry: string;
  gitops: GitOpsWriter;
}
