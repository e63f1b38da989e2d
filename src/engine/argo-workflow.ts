/**
 * The Argo Workflow of a pipeline run (digest §2.1, spec 07 "Orchestration Flow"): one Workflow per
 * run attempt, whose DAG nodes are dispatcher pods running `forge dispatch`:
 *
 *   discovery → ci → artifact → release
 *
 * The plan (how many phase groups, which projects release) is unknown when the Workflow is
 * submitted, so the `ci` node walks the phase groups in order itself, each group's tasks in
 * parallel, and the release nodes find the run's release builds from the API (decision 147).
 * Pure: the adapter (src/queue/argo.orchestrator.ts) submits what this returns.
 */
import type { PipelineRun } from '../domain/entities.ts';
import { DISPATCH_STAGES } from '../domain/jobs.ts';

/** A dispatcher pod's environment variable: a value, or a key of a Kubernetes Secret (the token). */
export type PodEnv = { name: string; value: string } | { name: string; valueFrom: { secretKeyRef: { name: string; key: string } } };

export interface WorkflowOptions {
  namespace: string;
  serviceAccount: string;
  /** The image of dispatcher pods (it has `forge` on its PATH). */
  image: string;
  /** Pods of this Workflow running at once. */
  parallelism: number;
  /** The Workflow's hard cap (digest §2.1: 24 h). */
  activeDeadlineSeconds: number;
  /** What every dispatcher pod gets: NATS_URL, FORGE_URL, the namespace, the token's Secret. */
  env: PodEnv[];
}

export const WORKFLOW_LABELS = { run: 'forge.projectcatalyst.io/run-id', attempt: 'forge.projectcatalyst.io/run-attempt' } as const;

/** `forge-run-<run id>`, and `-a<n>` for a retried attempt: deterministic, so a repeated submission is refused as existing. */
export function workflowName(run: Pick<PipelineRun, 'id' | 'attempt'>): string {
  return run.attempt > 1 ? `forge-run-${run.id}-a${run.attempt}` : `forge-run-${run.id}`;
}

const DISPATCHER_RESOURCES = { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '200m', memory: '256Mi' } } as const;

export function renderRunWorkflow(run: Pick<PipelineRun, 'id' | 'attempt' | 'repository' | 'commit_sha' | 'branch'>, options: WorkflowOptions): Record<string, unknown> {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: {
      name: workflowName(run),
      namespace: options.namespace,
      labels: { [WORKFLOW_LABELS.run]: run.id, [WORKFLOW_LABELS.attempt]: String(run.attempt) },
      annotations: { 'forge.projectcatalyst.io/repository': run.repository, 'forge.projectcatalyst.io/commit-sha': run.commit_sha, 'forge.projectcatalyst.io/branch': run.branch },
    },
    spec: {
      entrypoint: 'pipeline',
      serviceAccountName: options.serviceAccount,
      parallelism: options.parallelism,
      activeDeadlineSeconds: options.activeDeadlineSeconds,
      podGC: { strategy: 'OnPodCompletion' },
      templates: [
        {
          name: 'pipeline',
          dag: {
            tasks: DISPATCH_STAGES.map((stage, i) => ({
              name: stage, template: stage, ...(i > 0 ? { dependencies: [DISPATCH_STAGES[i - 1]] } : {}),
            })),
          },
        },
        ...DISPATCH_STAGES.map((stage) => ({
          name: stage,
          container: {
            name: 'dispatcher',
            image: options.image,
            command: ['forge'],
            args: ['dispatch', '--job-type', stage, '--run', run.id, '--json'],
            env: options.env,
            resources: DISPATCHER_RESOURCES,
          },
        })),
      ],
    },
  };
}
