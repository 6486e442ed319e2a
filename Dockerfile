# syntax=docker/dockerfile:1
# ringlimit as a container image: `docker build -t ringlimit:0.1.0 .` (the tag the Kubernetes
# manifests in deploy/kubernetes/ use). Runs `ringlimit serve` as the unprivileged `node` user,
# under tini (PID 1: signals reach the node, zombies are reaped); SIGTERM drains the node.
#
#   docker run --rm -p 7001:7001 -p 7946:7946/udp -p 8080:8080 ringlimit:0.1.0
#   docker run --rm ringlimit:0.1.0 serve --help

# Build: the package's dist/ from a clean tree (what `npm pack` ships), then the production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/ scripts/
COPY src/ src/
RUN node scripts/build-package.mjs \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -depth -type d -empty -delete \
 && find dist -name '*.map' -delete

# Run: Node.js, tini, jemalloc, the built package and its production dependencies; no compiler, no sources.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libjemalloc2 \
 && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/ringlimit \
 && chown node:node /var/lib/ringlimit
WORKDIR /app
ENV NODE_ENV=production
# jemalloc with background threads gives freed memory back to the system within seconds; glibc's
# malloc keeps it in its arenas, and a node that took an attack or a burst of large batches
# stayed at about twice its resting RSS (docs/security.md, "RSS after the attack set").
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 MALLOC_CONF=background_thread:true
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY proto/ proto/
COPY LICENSE README.md ./
COPY deploy/docker/entrypoint.sh deploy/docker/healthcheck.mjs ./
# The node user (uid 1000) of the node image: never root.
USER node
# gRPC (clients and peers), SWIM gossip (UDP), HTTP (JSON API, /metrics, /healthz, /readyz).
EXPOSE 7001 7946/udp 8080
VOLUME ["/var/lib/ringlimit"]
# Healthy once GET /readyz answers 200 (joined, active, owning keys); RINGLIMIT_HTTP_PORT when --http-port differs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "/app/entrypoint.sh"]
CMD ["serve", "--port", "7001", "--gossip-port", "7946", "--http-port", "8080", "--data-dir", "/var/lib/ringlimit"]
