#!/usr/bin/env bash
# A fresh Debian root for the install test, as a production host has it: debootstrap
# --variant=minbase SUITE from the machine's Debian mirror, the runtime libraries
# (libnetfilter-conntrack3, libmnl0) and this machine's Node 20 with npm in /usr/local, and no
# compiler, make or -dev package. The base is cached as a tarball; each call unpacks a new copy.
#   make-install-root.sh SUITE CACHE_DIR DEST   -> DEST holds the root
set -euo pipefail
suite=${1:?suite}; cache=${2:?cache dir}; dest=${3:?destination}
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
version=$(node -p process.versions.node)
tarball="$cache/$suite-node-$version-runtime.tar"
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[[ -n $mirror ]] || { echo "make-install-root: no Debian mirror configured" >&2; exit 1; }
mkdir -p "$cache"
if [[ ! -s $tarball ]]; then
  root=$(mktemp -d "$cache/root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$cache/$suite-debootstrap.log" 2>&1 \
    || { tail -20 "$cache/$suite-debootstrap.log" >&2; exit 1; }
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" apt-get update -qq >"$cache/$suite-apt.log" 2>&1
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libnetfilter-conntrack3 libmnl0 >>"$cache/$suite-apt.log" 2>&1 || { tail -20 "$cache/$suite-apt.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
mkdir -p "$dest"
tar -C "$dest" --numeric-owner -xf "$tarball"
cp /etc/resolv.conf "$dest/etc/resolv.conf"
