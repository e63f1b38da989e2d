/** What every use case receives: the ports and the settings that shape behaviour. */
import type { CrashPoint } from '../domain/faults.ts';
import type { EnvironmentPolicy } from '../domain/policy.ts';
import type { Clock, ObjectStore, SignatureVerifier, Store } from './ports.ts';

export interface EngineContext {
  store: Store;
  clock: Clock;
  /** Called after a transaction that wrote events commits, so the relay delivers them promptly. */
  eventsWritten: () => void;
  environments: EnvironmentPolicy[];
  approvalTtlMs: number;
  releaseRegistry: string;
  /** How long a run may take before the watchdog fails it (digest §2.5: 24 h). */
  runTimeoutMs: number;
  /**
   * Called after a transaction that changed a run, a release build or a deployment commits, with its
   * id (the dispatcher moves it along).
   */
  runChanged: (runId: string) => void;
  /** Step logs and large job results. */
  objects?: ObjectStore;
  /** Beyond the seed: checks tracking images' signatures; without it signature reads answer service_unavailable. */
  signatures?: SignatureVerifier;
  /** Test-only fault hook (FORGE_FAULT_HOOK): called at each crash point; the process dies at the one it was told. */
  crashPoint?: (point: CrashPoint) => void;
}
