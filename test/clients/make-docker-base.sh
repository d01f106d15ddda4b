#!/usr/bin/env bash
# Makes a local stand-in for node:20-bookworm-slim, which cannot be pulled here, as a
# `docker import`-able tarball: debootstrap --variant=minbase bookworm from the machine's
# configured Debian mirror, plus this machine's Node 20 and npm laid out as the official image
# has them (/usr/local/bin/node, Node's headers under /usr/local/include/node so node-gyp
# downloads nothing), and the machine's CA bundle for npm (NODE_EXTRA_CA_CERTS is set by the
# importer). The tarball is cached: it is rebuilt only when Node's version changes.
#   make-docker-base.sh CACHE_DIR   -> prints the tarball's path
set -euo pipefail
cache=${1:?usage: make-docker-base.sh CACHE_DIR}
node_bin=$(command -v node)
node_prefix=$(cd "$(dirname "$(readlink -f "$node_bin")")/.." && pwd)
version=$(node -p process.versions.node)
out="$cache/node-$version-bookworm-minbase.tar"
if [[ -s $out ]]; then
  printf '%s\n' "$out"
  exit 0
fi
[[ $version == 20.* ]] || { echo "make-docker-base: needs Node 20 on this machine, found $version" >&2; exit 1; }
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[[ -n $mirror ]] || { echo "make-docker-base: no Debian bookworm mirror configured in /etc/apt" >&2; exit 1; }

mkdir -p "$cache"
root=$(mktemp -d "$cache/rootfs.XXXXXX")
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
  || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
# apt inside the image reaches the mirror the way this machine does.
rm -f "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] && cp "$f" "$root$f"
done
for f in /etc/apt/apt.conf.d/*; do
  if grep -q '^Acquire::' "$f" 2>/dev/null; then cp "$f" "$root$f"; fi
done
# Node and npm where the official image has them.
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include"
cp -a "$node_prefix/lib/node_modules/npm" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp -a "$node_prefix/include/node" "$root/usr/local/include/node"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
printf '%s\n' "$out"
