/**
 * `forge deploy`, `forge approve`, `forge approvals get | revoke`, `forge deployments current | history`.
 * Commands that take a release reference resolve it to the release's id first (GET /v1/releases/…).
 */
import type { Command } from 'commander';
import * as args from './args.ts';
import { apiPath, repoSegments } from './client.ts';
import { fields, iso, pageFooter, shortSha, status, table, type Style } from './output.ts';
import { fetchRelease, releaseTitle } from './releases.commands.ts';
import { clientCommand, group } from './session.ts';
import type { ApprovalJson, ApprovalStatusJson, CreatedDeploymentJson, DeploymentJson, Paged } from './wire.ts';

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

export function registerDeploymentCommands(program: Command): void {
  clientCommand<{ approval?: string }>(
    program, 'deploy', 'deploy a release to an environment (the environment\'s policy and approvals permitting)',
    (c) => targetArguments(c)
      .argument('<release-ref>', 'alias, release number or commit SHA prefix', args.releaseRef)
      .option('--approval <id>', 'the approval to deploy under (default: any active one)', args.uuid),
    async (session, [environment = '', repository = '', project = '', ref = ''], o) => {
      const release = await fetchRelease(session.api, repository, project, ref);
      const { body } = await session.api.post<CreatedDeploymentJson>(apiPath('deployments'), {
        release_id: release.id, environment, ...(o.approval ? { approval_id: o.approval } : {}),
      });
      if (session.json) return session.printJson(body);
      session.print([
        `deployed ${releaseTitle(release)} to ${environment}`,
        ...fields([['deployment', body.deployment_id], ['status', status(body.status)], ['gitops commit', body.gitops_commit_sha]], session.style),
      ]);
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
}
