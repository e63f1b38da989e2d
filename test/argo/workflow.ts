/**
 * Reading a rendered Argo Workflow the way the tests need it: schema validation with the Argo
 * Workflows models (the CRD's OpenAPI schema), the checks Argo's controller makes that a schema
 * cannot (every DAG dependency and template exists, no cycle), and the DAG in execution order.
 */
import { Workflow } from '@kubernetes-models/argo-workflows/argoproj.io/v1alpha1';

export interface DagNode {
  name: string;
  dependencies: string[];
  container: { image: string; command: string[]; args: string[]; env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[] };
}

/** Throws with the schema's messages when the Workflow is not valid for argoproj.io/v1alpha1. */
export function validateWorkflow(workflow: unknown): void {
  new Workflow(workflow as ConstructorParameters<typeof Workflow>[0]).validate();
}

/** The entrypoint DAG's tasks in an order Argo may run them (dependencies first); throws on a dangling name or a cycle. */
export function dagInOrder(workflow: unknown): DagNode[] {
  const spec = (workflow as { spec: { entrypoint: string; templates: { name: string; dag?: { tasks: { name: string; template: string; dependencies?: string[] }[] }; container?: DagNode['container'] }[] } }).spec;
  const entry = spec.templates.find((t) => t.name === spec.entrypoint);
  if (!entry?.dag) throw new Error(`entrypoint ${spec.entrypoint} is not a DAG template`);
  const tasks = entry.dag.tasks;
  const nodes = tasks.map((task) => {
    const template = spec.templates.find((t) => t.name === task.template);
    if (!template?.container) throw new Error(`task ${task.name}: template ${task.template} is missing or has no container`);
    for (const dep of task.dependencies ?? []) if (!tasks.some((t) => t.name === dep)) throw new Error(`task ${task.name} depends on unknown task ${dep}`);
    return { name: task.name, dependencies: task.dependencies ?? [], container: template.container };
  });
  const ordered: DagNode[] = [];
  while (ordered.length < nodes.length) {
    const ready = nodes.filter((n) => !ordered.includes(n) && n.dependencies.every((d) => ordered.some((o) => o.name === d)));
    if (ready.length === 0) throw new Error('the DAG has a cycle');
    ordered.push(...ready);
  }
  return ordered;
}
