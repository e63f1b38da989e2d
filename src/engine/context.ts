/** What every use case receives: the ports and the settings that shape behaviour. */
import type { CrashPoint } from '../domain/faults.ts';
import type { PhaseExecution, PipelineRun } from '../domain/entities.ts';
import type { EnvironmentPolicy } from '../domain/policy.ts';
import type { StepExecution } from '../domain/entities.ts';
import type { Clock, ObjectStore, SignatureVerifier, Store } from './ports.ts';

/** Observability hooks the composition root fills (traces, metrics); they must not throw. */
export interface EngineTelemetry {
  /** The W3C traceparent of the work creating a run (the API request): stored on the run, the root of its trace. */
  traceparent(): string | undefined;
  /** A step reached a terminal status (once per transition, after the commit). */
  stepFinished(step: StepExecution): void;
}

export interface EngineContext {
  store: Store;
  clock: Clock;
  /** Called after a transaction that wrote events commits, so the relay delivers them promptly. */
  eventsWritten: () => void;
  environments: EnvironmentPolicy[];
  approvalTtlMs: number;
  releaseRegistry: string;
  /** How long a run may take before the watchdog fails it (digest §2.5: 24 h; never more, whatever is passed). */
  runTimeoutMs: number;
  /** Unfinished runs a repository may have at once (seed 06: 1000, the default when absent). */
  maxActiveRunsPerRepository?: number;
  /**
   * Called after a transaction that changed a run, a release build or a deployment commits, with its
   * id (the dispatcher moves it along).
   */
  runChanged: (runId: string) => void;
  /** Step logs and large job results. */
  objects?: ObjectStore;
  /** Beyond the seed: checks tracking images' signatures; without it signature reads answer service_unavailable. */
  signatures?: SignatureVerifier;
  /**
   * Called (never awaited, must not throw) when a phase group's tasks have been dispatched, by the
   * built-in dispatcher or for an Argo dispatcher pod (GitHub's "Running phase X of N").
   */
  groupDispatched?: (run: PipelineRun, phases: readonly PhaseExecution[]) => void;
  /** Test-only fault hook (FORGE_FAULT_HOOK): called at each crash point; the process dies at the one it was told. */
  crashPoint?: (point: CrashPoint) => void;
  telemetry?: EngineTelemetry;
}
