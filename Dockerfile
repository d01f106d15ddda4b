# ctpurge image: Debian with the system libraries; the addon is built against them.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json binding.gyp tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY native ./native
COPY src ./src
COPY bin ./bin
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnetfilter-conntrack3 libmnl0 libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ctpurge
# A non-root process only gets CAP_NET_ADMIN through a file capability: a copy of node that
# carries it, used for ctpurge alone (the runtime must still allow the capability).
RUN cp /usr/local/bin/node /opt/ctpurge/node && setcap cap_net_admin+ep /opt/ctpurge/node
COPY --from=build /src/package.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release/ctpurge.node ./build/Release/ctpurge.node
COPY --from=build /src/node_modules ./node_modules
# Runs as nobody; it needs CAP_NET_ADMIN from the runtime (Kubernetes: capabilities.add).
USER 65534:65534
ENTRYPOINT ["/opt/ctpurge/node", "/opt/ctpurge/bin/ctpurge.js"]
CMD ["--help"]
