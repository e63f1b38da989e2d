/** The rendered Workflow of a run against the Argo Workflow schema (argoproj.io/v1alpha1) and digest §2.1. */
import { describe, expect, it } from 'vitest';
import { renderRunWorkflow, workflowName, type WorkflowOptions } from '../../src/engine/argo-workflow.ts';
import { dagInOrder, validateWorkflow } from './workflow.ts';

const RUN = { id: '0b7c6a55-1f0e-4f53-9d7e-2f3a4b5c6d7e', attempt: 1, repository: 'acme/mono', commit_sha: 'a'.repeat(40), branch: 'main' };
const OPTIONS: WorkflowOptions = {
  namespace: 'catalyst-forge-pipelines', serviceAccount: 'pipeline-workflow-runner', image: 'ghcr.io/acme/forge:1.2.3', parallelism: 100, activeDeadlineSeconds: 86_400,
  env: [
    { name: 'NATS_URL', value: 'nats://nats:4222' },
    { name: 'FORGE_URL', value: 'http://forge-api:8080' },
    { name: 'FORGE_WORKER_TOKEN', valueFrom: { secretKeyRef: { name: 'forge-dispatcher', key: 'token' } } },
  ],
};

describe('the Argo Workflow of a run', () => {
  const workflow = renderRunWorkflow(RUN, OPTIONS) as {
    apiVersion: string; kind: string; metadata: { name: string; namespace: string; labels: Record<string, string> };
    spec: { serviceAccountName: string; parallelism: number; activeDeadlineSeconds: number; podGC: { strategy: string }; templates: { container?: { resources: unknown } }[] };
  };

  it('is a valid argoproj.io/v1alpha1 Workflow', () => {
    expect(() => validateWorkflow(workflow)).not.toThrow();
    expect(workflow.apiVersion).toBe('argoproj.io/v1alpha1');
    expect(workflow.kind).toBe('Workflow');
  });

  it('carries the namespace, service account, parallelism, 24 h deadline and podGC of digest §2.1', () => {
    expect(workflow.metadata).toMatchObject({ name: `forge-run-${RUN.id}`, namespace: 'catalyst-forge-pipelines', labels: { 'forge.projectcatalyst.io/run-id': RUN.id } });
    expect(workflow.spec).toMatchObject({ serviceAccountName: 'pipeline-workflow-runner', parallelism: 100, activeDeadlineSeconds: 86_400, podGC: { strategy: 'OnPodCompletion' } });
    for (const template of workflow.spec.templates.filter((t) => t.container)) {
      expect(template.container!.resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '200m', memory: '256Mi' } });
    }
  });

  it('is a DAG of dispatcher pods: discovery, then the phase groups, then the release phase, then its auto-deploys', () => {
    const nodes = dagInOrder(workflow);
    expect(nodes.map((n) => [n.name, n.dependencies])).toEqual([['discovery', []], ['ci', ['discovery']], ['artifact', ['ci']], ['release', ['artifact']], ['deployment', ['release']]]);
    for (const node of nodes) {
      expect(node.container.image).toBe('ghcr.io/acme/forge:1.2.3');
      expect([...node.container.command, ...node.container.args]).toEqual(['forge', 'dispatch', '--job-type', node.name, '--run', RUN.id, '--json']);
      expect(node.container.env).toEqual(OPTIONS.env);
    }
  });

  it('names a retried attempt apart, so each attempt gets its own Workflow', () => {
    expect(workflowName({ id: RUN.id, attempt: 2 })).toBe(`forge-run-${RUN.id}-a2`);
    expect((renderRunWorkflow({ ...RUN, attempt: 2 }, OPTIONS) as { metadata: { labels: Record<string, string> } }).metadata.labels['forge.projectcatalyst.io/run-attempt']).toBe('2');
  });

  it('the schema check fails on a broken Workflow (the test can fail)', () => {
    const broken = structuredClone(workflow) as unknown as { spec: { parallelism: unknown; templates: { container?: { image: unknown } }[] } };
    broken.spec.parallelism = '100';
    expect(() => validateWorkflow(broken)).toThrow(/spec\/parallelism must be integer/);
    const noImage = structuredClone(workflow) as unknown as { spec: { templates: { container?: { image?: unknown; name?: unknown } }[] } };
    delete noImage.spec.templates[1]!.container!.name;
    expect(() => validateWorkflow(noImage)).toThrow(/container must have required property 'name'|container must have required property name/);
    const cyclic = structuredClone(workflow) as unknown as { spec: { templates: { dag?: { tasks: { dependencies?: string[] }[] } }[] } };
    cyclic.spec.templates[0]!.dag!.tasks[0]!.dependencies = ['release'];
    expect(() => dagInOrder(cyclic)).toThrow(/cycle/);
  });
});
