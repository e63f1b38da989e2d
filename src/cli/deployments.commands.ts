/**
 * `forge deploy`, `forge rollback`, `forge approve`, `forge approvals get | revoke`,
 * `forge deployments get | current | history`, `forge environments`, `forge audit`.
 * Commands that take a release reference resolve it to the release's id first (GET /v1/releases/…).
 */
import { Option, type Command } from 'commander';
import { AUDIT_ACTIONS } from '../domain/entities.ts';
import * as args from './args.ts';
import { EXIT, apiPath, repoSegments, usageError } from './client.ts';
import { fields, iso, pageFooter, shortSha, status, table, type Style } from './output.ts';
import { fetchRelease, releaseTitle } from './releases.commands.ts';
import { Retrier, retryMessage, sleep } from './retries.ts';
import { clientCommand, group, type Session } from './session.ts';
import type {
  ApprovalJson, ApprovalStatusJson, AuditEntryJson, CreatedDeploymentJson, DeploymentJson, EnvironmentJson, Paged, ReleaseJson, RollbackTargetJson,
} from './wire.ts';

const releaseArguments = (c: Command) => c
  .argument('<repo>', 'repository owner/name', args.repository)
  .argument('<project>', 'project', args.project)
  .argument('<release-ref>', 'alias, release number or commit SHA prefix', args.releaseRef);

const targetArguments = (c: Command) => c
  .argument('<environment>', 'environment', args.environment)
  .argument('<repo>', 'repository owner/name', args.repository)
  .argument('<project>', 'project', args.project);

export function renderCurrentDeployment(d: DeploymentJson, style: Style): string[] {
  return [
    `${d.repository}/${d.project} in ${d.environment}: release ${d.release_number} (${shortSha(d.commit_sha)})`,
    ...fields([
      ['deployment', d.deployment_id],
      ['release id', d.release_id],
      ['status', status(d.status)],
      ['deployed', `${iso(d.deployed_at)} by ${d.deployed_by}`],
      ['gitops commit', d.gitops_commit_sha],
      ['approval', d.approval_id],
      ...(d.rollback ? [['rollback', `from release id ${d.rollback_from_release_id ?? '?'}`] as [string, string]] : []),
      ...(d.freeze_override ? [['freeze override', d.freeze_override] as [string, string]] : []),
      ...(d.error ? [['error', d.error] as [string, string]] : []),
    ], style),
  ];
}

export function renderDeploymentHistory(page: Paged<'deployments', DeploymentJson>, style: Style): string[] {
  const rows = page.deployments.map((d) => [
    d.deployment_id, d.release_number, shortSha(d.commit_sha), status(d.status), iso(d.deployed_at), d.deployed_by, shortSha(d.gitops_commit_sha),
  ]);
  return [
    ...(rows.length > 0 ? table(['DEPLOYMENT', 'RELEASE', 'COMMIT', 'STATUS', 'DEPLOYED', 'BY', 'GITOPS COMMIT'], rows, style) : []),
    ...pageFooter(page, rows.length, 'deployments'),
  ];
}

export function renderApprovals(approval: ApprovalStatusJson, title: string, style: Style): string[] {
  const rows = approval.approvals.map((a) => [
    a.approval_id, a.approver, status(a.status), iso(a.approved_at), iso(a.expires_at), a.justification,
  ]);
  return [
    `${title} for ${approval.environment}: ${style.paint(status(approval.status))} (approval ${approval.approval_id} by ${approval.approver})`,
    '',
    ...table(['APPROVAL', 'APPROVER', 'STATUS', 'APPROVED', 'EXPIRES', 'JUSTIFICATION'], rows, style),
  ];
}

/** `<repo> <project> <ref>` or, with --repo / FORGE_REPOSITORY, `<project> <ref>`: [repository, rest…]. */
function withRepository(values: string[], wanted: number, repoOption: string | undefined, usage: string): string[] {
  const fallback = repoOption ?? process.env.FORGE_REPOSITORY;
  const full = values.length === wanted + 1 ? values : values.length === wanted && fallback !== undefined ? [fallback, ...values] : undefined;
  if (!full) {
    throw usageError(`expected ${usage}`, [
      values.length === wanted ? 'name the repository: as an argument (owner/name), with --repo, or in FORGE_REPOSITORY' : `got ${values.length} argument${values.length === 1 ? '' : 's'}`,
    ]);
  }
  const [repository = '', ...rest] = full;
  const parsers = [args.repository, args.project, args.releaseRef];
  full.forEach((value, i) => {
    try {
      parsers[i]?.(value);
    } catch (error) {
      throw usageError(`invalid ${['repository', 'project', 'release reference'][i]} ${JSON.stringify(value)}: ${(error as Error).message}`);
    }
  });
  return [repository, ...rest];
}

interface DeployOptions {
  approval?: string;
  freezeOverride?: string;
  wait: boolean;
  repo?: string;
}

const DEPLOY_POLL_MS = 250;

const deployOptions = (c: Command) => c
  .option('--repo <owner/name>', 'the repository, when not given as an argument (else FORGE_REPOSITORY)', args.repository)
  .option('--approval <id>', 'the approval to deploy under (default: the active approvals)', args.uuid)
  .option('--freeze-override <justification>', 'deploy through a frozen environment (operators; kept in the audit trail and the commit)')
  .option('--no-wait', 'print the pending deployment and exit 0 without waiting for its pointer commit');

const DEPLOY_HELP = `
The deployment is recorded pending and a deployment job commits the ReleasePointer to the GitOps
repository. Unless --no-wait, the command waits for that commit (progress on stderr) and prints the
deployment; with --json, stdout holds only the deployment as JSON.

Exit status: 0 deployed (active, or --no-wait), 1 refused by policy or approvals (the requirement and
the actual value on stderr) or the pointer could not be committed (the deployment is failed); 2 for a
bad command line; 3 when the server stays unreachable.`;

/** Polls GET /v1/deployments/{id} until the deployment is no longer pending. */
async function followDeployment(session: Session, id: string): Promise<DeploymentJson> {
  const retrier = new Retrier((notice) => session.warn(retryMessage(notice)));
  let last = '';
  for (;;) {
    const d = await retrier.call(async () => (await session.api.get<DeploymentJson>(apiPath('deployments', id))).body);
    const line = d.status === 'pending'
      ? `deployment ${id} pending: ${d.dispatched_at ? `committing the pointer (attempt ${d.attempts})` : 'queued behind an earlier deployment of this target'}`
      : `deployment ${id} ${d.status}`;
    if (line !== last) process.stderr.write(`${line}\n`);
    last = line;
    if (d.status !== 'pending') return d;
    await sleep(DEPLOY_POLL_MS);
  }
}

/** POST /v1/deployments, then (unless --no-wait) the deployment once committed; exit 1 when it failed. */
async function deployRelease(session: Session, release: ReleaseJson, environment: string, o: DeployOptions, verb: string): Promise<void> {
  const { body } = await session.api.post<CreatedDeploymentJson>(apiPath('deployments'), {
    release_id: release.id, environment,
    ...(o.approval ? { approval_id: o.approval } : {}),
    ...(o.freezeOverride !== undefined ? { freeze_override_reason: o.freezeOverride } : {}),
  });
  if (!o.wait) {
    if (session.json) return session.printJson(body);
    return session.print([
      `requested ${verb} of ${releaseTitle(release)} to ${environment}`,
      ...fields([['deployment', body.deployment_id], ['status', status(body.status)]], session.style),
    ]);
  }
  const d = await followDeployment(session, body.id);
  if (session.json) session.printJson(d);
  else if (d.status !== 'failed') {
    session.print([
      `${verb === 'rollback' ? 'rolled back' : 'deployed'} ${releaseTitle(release)} ${verb === 'rollback' ? 'in' : 'to'} ${environment}`,
      ...fields([['deployment', d.deployment_id], ['status', status(d.status)], ['gitops commit', d.gitops_commit_sha]], session.style),
    ]);
  }
  if (d.status === 'failed') {
    session.warn(`deployment ${d.deployment_id} failed: ${d.error ?? 'no reason recorded'} (release ${release.release_number} is unchanged; the active deployment stays)`);
    process.exitCode = EXIT.runFailed;
  }
}

export function registerDeploymentCommands(program: Command): void {
  clientCommand<DeployOptions>(
    program, 'deploy', 'deploy a release to an environment (the environment\'s policy and approvals permitting)',
    (c) => deployOptions(c
      .argument('<environment>', 'environment', args.environment)
      .argument('<target...>', '[owner/name] <project> <release-ref>: alias, release number or commit SHA prefix'))
      .addHelpText('after', DEPLOY_HELP),
    async (session, [environment = '', target], o) => {
      const [repository = '', project = '', ref = ''] = withRepository(target as unknown as string[], 2, o.repo, '<environment> [owner/name] <project> <release-ref>');
      const release = await fetchRelease(session.api, repository, project, ref);
      await deployRelease(session, release, environment, o, 'deployment');
    },
  );

  clientCommand<DeployOptions>(
    program, 'rollback', 'deploy the previous release again: the highest-numbered release below the active one that was deployed there before',
    (c) => deployOptions(c
      .argument('<environment>', 'environment', args.environment)
      .argument('<target...>', '[owner/name] <project>'))
      .addHelpText('after', `${DEPLOY_HELP}\n\nA rollback is a forward commit (history keeps both); its commit message starts with "Rollback".\nThe environment's policy applies as to any deployment (production: an active approval of that release).`),
    async (session, [environment = '', target], o) => {
      const [repository = '', project = ''] = withRepository(target as unknown as string[], 1, o.repo, '<environment> [owner/name] <project>');
      const { body } = await session.api.get<RollbackTargetJson>(apiPath('deployments', environment, ...repoSegments(repository), project, 'rollback-target'));
      process.stderr.write(`rolling back ${repository}/${project} in ${environment}: release ${body.current.release_number} → ${body.release_number}\n`);
      const release = await fetchRelease(session.api, repository, project, String(body.release_number));
      await deployRelease(session, release, environment, o, 'rollback');
    },
  );

  clientCommand<{ env: string; justification: string }>(
    program, 'approve', 'approve a release for an environment, as yourself (not for a release you created)',
    (c) => releaseArguments(c)
      .requiredOption('--env <environment>', 'environment the approval is for', args.environment)
      .requiredOption('--justification <text>', 'why (kept on the approval)'),
    async (session, [repository = '', project = '', ref = ''], o) => {
      const release = await fetchRelease(session.api, repository, project, ref);
      const { body } = await session.api.post<ApprovalJson>(apiPath('approvals'), {
        release_id: release.id, environment: o.env, justification: o.justification,
      });
      if (session.json) return session.printJson(body);
      session.print([
        `approved ${releaseTitle(release)} for ${o.env}`,
        ...fields([['approval', body.approval_id], ['approver', body.approver], ['expires', iso(body.expires_at)]], session.style),
        `deploy it with: forge deploy ${o.env} ${repository} ${project} ${release.release_number}`,
      ]);
    },
  );

  const approvals = group(program, 'approvals', 'approvals: status, revoke');

  clientCommand<{ env: string }>(
    approvals, 'get', 'show the approvals of a release for an environment',
    (c) => releaseArguments(c).requiredOption('--env <environment>', 'environment', args.environment),
    async (session, [repository = '', project = '', ref = ''], o) => {
      const release = await fetchRelease(session.api, repository, project, ref);
      const { body } = await session.api.get<ApprovalStatusJson>(apiPath('approvals', release.id, o.env));
      if (session.json) return session.printJson(body);
      session.print(renderApprovals(body, releaseTitle(release), session.style));
    },
  );

  clientCommand(
    approvals, 'revoke', 'revoke an approval',
    (c) => c.argument('<approval-id>', 'approval id', args.uuid),
    async (session, [id = '']) => {
      const { body } = await session.api.delete<ApprovalJson>(apiPath('approvals', id));
      if (session.json) return session.printJson(body);
      session.print(`revoked approval ${body.approval_id} of release ${body.release_id} for ${body.environment}`);
    },
  );

  const deployments = group(program, 'deployments', 'deployments: what is deployed where, and when');

  clientCommand(
    deployments, 'current', 'show the active deployment of a project in an environment',
    targetArguments,
    async (session, [environment = '', repository = '', project = '']) => {
      const { body } = await session.api.get<DeploymentJson>(apiPath('deployments', environment, ...repoSegments(repository), project));
      if (session.json) return session.printJson(body);
      session.print(renderCurrentDeployment(body, session.style));
    },
  );

  clientCommand<{ limit?: number; offset?: number }>(
    deployments, 'history', 'list the deployments of a project in an environment, newest first',
    (c) => targetArguments(c)
      .option('--limit <n>', 'page size, 1-500 (default 20)', args.limit)
      .option('--offset <n>', 'deployments to skip', args.offset),
    async (session, [environment = '', repository = '', project = ''], o) => {
      const { body } = await session.api.get<Paged<'deployments', DeploymentJson>>(
        apiPath('deployments', environment, ...repoSegments(repository), project, 'history'), { limit: o.limit, offset: o.offset },
      );
      if (session.json) return session.printJson(body);
      session.print(renderDeploymentHistory(body, session.style));
    },
  );

  clientCommand(
    deployments, 'get', 'show a deployment by id (pending until its pointer is committed)',
    (c) => c.argument('<deployment-id>', 'deployment id', args.uuid),
    async (session, [id = '']) => {
      const { body } = await session.api.get<DeploymentJson>(apiPath('deployments', id));
      if (session.json) return session.printJson(body);
      session.print(renderCurrentDeployment(body, session.style));
    },
  );

  clientCommand(
    program, 'environments', 'list the environments and their deployment policies',
    (c) => c,
    async (session) => {
      const { body } = await session.api.get<{ environments: EnvironmentJson[] }>(apiPath('environments'));
      if (session.json) return session.printJson(body);
      session.print(table(['ENVIRONMENT', 'TRIGGERS', 'BRANCHES', 'AUTO-DEPLOY', 'APPROVALS', 'FROZEN'], body.environments.map((e) => [
        e.name, e.allowed_triggers.join(','), e.allowed_branches.join(','), e.auto_deploy ? 'yes' : 'no',
        e.requires_approval ? String(e.approvals_required) : '-', e.frozen ? `yes${e.freeze_reason ? ` (${e.freeze_reason})` : ''}` : 'no',
      ]), session.style));
    },
  );

  clientCommand<{ repository?: string; project?: string; env?: string; release?: string; deployment?: string; action?: string; limit?: number; offset?: number }>(
    program, 'audit', 'the audit trail: approvals, revocations, deployment requests, activations, failures and freeze overrides, newest first',
    (c) => c
      .option('--repository <owner/name>', 'only this repository', args.repository)
      .option('--project <project>', 'only this project', args.project)
      .option('--env <environment>', 'only this environment', args.environment)
      .option('--release <release-id>', 'only this release', args.uuid)
      .option('--deployment <deployment-id>', 'only this deployment', args.uuid)
      .addOption(new Option('--action <action>', 'only this action').choices([...AUDIT_ACTIONS]))
      .option('--limit <n>', 'page size, 1-500 (default 20)', args.limit)
      .option('--offset <n>', 'entries to skip', args.offset),
    async (session, _args, o) => {
      const { body } = await session.api.get<Paged<'entries', AuditEntryJson>>(apiPath('audit'), {
        repository: o.repository, project: o.project, environment: o.env, release_id: o.release, deployment_id: o.deployment, action: o.action, limit: o.limit, offset: o.offset,
      });
      if (session.json) return session.printJson(body);
      const rows = body.entries.map((e) => [
        iso(e.at), e.actor, e.action, e.environment, e.repository && e.project ? `${e.repository}/${e.project}` : undefined,
        typeof e.details.release_number === 'number' ? e.details.release_number : undefined, auditDetail(e),
      ]);
      session.print([
        ...(rows.length > 0 ? table(['AT', 'ACTOR', 'ACTION', 'ENV', 'PROJECT', 'RELEASE', 'DETAIL'], rows, session.style) : []),
        ...pageFooter(body, rows.length, 'entries'),
      ]);
    },
  );
}

/** The one detail worth a column: the justification, the error, the commit. */
function auditDetail(e: AuditEntryJson): string | undefined {
  const d = e.details;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return text(d.justification) ?? text(d.error) ?? (text(d.gitops_commit_sha)?.slice(0, 12)) ?? (Array.isArray(d.approvers) && d.approvers.length > 0 ? `approved by ${d.approvers.join(', ')}` : undefined);
}
