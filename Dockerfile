# ctpurge image: Debian with the system libraries; the addon is built against them.
# BASE is any Debian 12 image with Node 20 laid out as the official one (node and npm under
# /usr/local, Node's headers under /usr/local/include/node); the tests build on a local one.
ARG BASE=node:20-bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in a layer of their own: a source change does not re-run npm ci.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY binding.gyp tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY native ./native
COPY src ./src
COPY bin ./bin
RUN node scripts/check-system.mjs && node scripts/build-native.mjs && npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --no-audit --no-fund

# The runtime file system, pruned, then squashed into the final image (FROM scratch): one node
# binary, the one that carries the capability; no npm, no headers, no docs or locales.
FROM ${BASE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnetfilter-conntrack3 libmnl0 libcap2-bin \
 && mkdir -p /opt/ctpurge \
 && mv /usr/local/bin/node /opt/ctpurge/node \
 # A non-root process only gets CAP_NET_ADMIN through a file capability (the runtime must
 # still allow the capability); no other node is left in the image.
 && setcap cap_net_admin+ep /opt/ctpurge/node \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
      /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/include \
      /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale /usr/share/lintian
# The purge lock's default directory, the image user's own: in a directory others can write
# and that is sticky (like /tmp), anyone could plant the lock's name and block every purge,
# so ctpurge refuses one. Another --user: mount a tmpfs of its own here (uid=,mode=0700).
# With a read-only root filesystem mount an emptyDir (Kubernetes) or such a tmpfs here.
RUN mkdir -p /run/ctpurge && chown 65534:65534 /run/ctpurge && chmod 0700 /run/ctpurge
WORKDIR /opt/ctpurge
COPY --from=build /src/package.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release/ctpurge.node ./build/Release/ctpurge.node
COPY --from=build /src/node_modules ./node_modules
# The shipped rules (ctpurge --rules /etc/ctpurge/rules.yaml): a ConfigMap or a bind mount replaces them.
COPY deploy/rules.yaml /etc/ctpurge/rules.yaml
# Types are for compilers, not for the image.
RUN rm -rf node_modules/@types

FROM scratch
COPY --from=runtime / /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /opt/ctpurge
# Runs as nobody; it needs CAP_NET_ADMIN from the runtime (Kubernetes: capabilities.add).
USER 65534:65534
ENTRYPOINT ["/opt/ctpurge/node", "/opt/ctpurge/bin/ctpurge.js"]
CMD ["--help"]
