/** Releases: register, look up by alias / number / SHA prefix, list; their artifacts' signature status. */
import type { FastifyPluginAsync } from 'fastify';
import { requireRepository } from '../auth/permissions.ts';
import { checkName } from '../domain/names.ts';
import { canonicalId, createRelease, getRelease, getReleaseById, listReleases, type CreateReleaseInput } from '../engine/releases.ts';
import { getReleaseBuild, listRunReleaseBuilds, requestReleaseBuild, type ReleaseRequest } from '../engine/release-builds.ts';
import { getReleaseSignatures } from '../engine/signatures.ts';
import type { RouteDeps } from './app.ts';
import {
  S, createReleaseBody, createReleaseBuildBody, createReleaseResponse, errorResponses, idParams, pageQuery, releaseBuildListResponse,
  releaseBuildSchema, releaseListResponse, releaseSchema, releaseSignaturesResponse,
} from './schemas.ts';

const params = (withRef: boolean) => ({
  type: 'object',
  properties: { owner: { type: 'string' }, name: { type: 'string' }, project: S.project, ...(withRef ? { ref: S.releaseRef } : {}) },
  required: ['owner', 'name', 'project', ...(withRef ? ['ref'] : [])],
  additionalProperties: false,
}) as const;

/** `{repo}` arrives as two path segments; check the joined name like any other repository. */
export const repositoryOf = (p: { owner: string; name: string }) => checkName('repository', 'repository', `${p.owner}/${p.name}`);

export const releaseRoutes = ({ ctx, limiters }: RouteDeps): FastifyPluginAsync => async (app) => {
  app.post<{ Body: CreateReleaseInput }>('/v1/releases', {
    config: { permission: 'releases:create' },
    schema: {
      summary: 'Register a release (idempotent per repository + project + commit)', tags: ['releases'], body: createReleaseBody,
      response: { 200: createReleaseResponse, 201: createReleaseResponse, ...errorResponses },
    },
  }, async (request, reply) => {
    requireRepository(request.identity, request.body.repository);
    const { release, created } = await createRelease(ctx, request.body, {
      actor: request.identity.actor,
      mayRecordTrigger: request.identity.roles.includes('service-account') || request.identity.roles.includes('operator'),
    });
    return reply.status(created ? 201 : 200).send({ id: release.id, release_number: release.release_number, oci_uri: release.oci_uri, canonical_id: canonicalId(release) });
  });

  app.get<{ Params: { owner: string; name: string; project: string }; Querystring: { limit: number; offset: number } }>('/v1/releases/:owner/:name/:project', {
    config: { permission: 'read' },
    schema: {
      summary: 'List releases of a project, newest first ({repo} may also be sent URL-encoded as owner%2Fname)', tags: ['releases'],
      params: params(false), querystring: pageQuery, response: { 200: releaseListResponse, ...errorResponses },
    },
  }, async (request) => {
    limiters.releaseLookup?.take('');
    const { limit, offset } = request.query;
    const page = await listReleases(ctx, repositoryOf(request.params), request.params.project, limit, offset);
    return { releases: page.rows, total: page.total, limit, offset };
  });

  app.get<{ Params: { owner: string; name: string; project: string; ref: string } }>('/v1/releases/:owner/:name/:project/:ref', {
    config: { permission: 'read' },
    schema: {
      summary: 'Get a release by alias, release number, or full/prefix commit SHA (in that order)', tags: ['releases'],
      params: params(true), response: { 200: releaseSchema, ...errorResponses },
    },
  }, async (request) => {
    limiters.releaseLookup?.take('');
    return getRelease(ctx, repositoryOf(request.params), request.params.project, request.params.ref);
  });

  app.get<{ Params: { owner: string; name: string; project: string; ref: string } }>('/v1/releases/:owner/:name/:project/:ref/signatures', {
    config: { permission: 'read' },
    schema: {
      summary: 'The signature status of each artifact\'s tracking image (beyond the seed): verified, unsigned, invalid or unavailable; 503 when the server has no signature verifier',
      tags: ['releases'], params: params(true), response: { 200: releaseSignaturesResponse, ...errorResponses },
    },
  }, async (request) => {
    limiters.releaseLookup?.take('');
    return getReleaseSignatures(ctx, repositoryOf(request.params), request.params.project, request.params.ref);
  });

  app.post<{ Body: ReleaseRequest }>('/v1/release-builds', {
    config: { permission: 'releases:create' },
    schema: {
      summary: 'Build a release: a manual release of a project at a commit, or (release_id) rebuild and re-publish an existing release; 202, or 200 with the build already running',
      tags: ['releases'], body: createReleaseBuildBody,
      response: { 200: releaseBuildSchema, 202: releaseBuildSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const { identity, body } = request;
    if (identity.repository !== undefined) {
      if (body.repository !== undefined) requireRepository(identity, body.repository);
      if (body.release_id !== undefined) requireRepository(identity, (await getReleaseById(ctx, body.release_id)).repository);
    }
    const { build, created } = await requestReleaseBuild(ctx, request.body, request.identity.actor);
    return reply.status(created ? 202 : 200).send(build);
  });

  app.get<{ Params: { id: string } }>('/v1/release-builds/:id', {
    config: { permission: 'read' },
    schema: { summary: 'A release build: its status, artifact jobs and the release it made', tags: ['releases'], params: idParams, response: { 200: releaseBuildSchema, ...errorResponses } },
  }, async (request) => getReleaseBuild(ctx, request.params.id));

  app.get<{ Params: { id: string } }>('/v1/runs/:id/release-builds', {
    config: { permission: 'read' },
    schema: { summary: 'The release builds of a run (its release phase)', tags: ['releases'], params: idParams, response: { 200: releaseBuildListResponse, ...errorResponses } },
  }, async (request) => {
    const page = await listRunReleaseBuilds(ctx, request.params.id);
    return { release_builds: page.rows, total: page.total };
  });
};
