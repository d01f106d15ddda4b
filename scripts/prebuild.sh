#!/usr/bin/env bash
# Builds the prebuilt addon shipped in the npm package: prebuilds/linux-x64/ctpurge.glibc.node.
# It is compiled in a Debian 11 root (debootstrap, the machine's configured Debian mirror), so it
# needs glibc 2.31 or newer (Debian 11 and 12, Ubuntu 20.04 and later, RHEL 9), with libstdc++
# and libgcc linked statically: at run time it needs only glibc and the runtime libraries
# libnetfilter-conntrack3 and libmnl0 (libnfnetlink0 comes with them). It is an N-API addon,
# so one build serves every Node version from 20 on.
#   npm run prebuilt            (as root, on a Debian machine; the root is cached)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${CTPURGE_PREBUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ctpurge-prebuild}
root="$cache/bullseye"
out="$repo/prebuilds/linux-x64/ctpurge.glibc.node"
[[ $(id -u) == 0 ]] || { echo "prebuild: run as root (debootstrap and chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "prebuild: debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[[ -n $mirror ]] || { echo "prebuild: no Debian mirror configured in /etc/apt" >&2; exit 1; }

mkdir -p "$cache"
if [[ ! -f $root/.ready ]]; then
  rm -rf "$root"
  echo "prebuild: making a Debian 11 build root in $root"
  debootstrap --variant=minbase bullseye "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" apt-get update -qq >"$cache/apt.log" 2>&1
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    g++ make python3 pkg-config libnetfilter-conntrack-dev libmnl-dev >>"$cache/apt.log" 2>&1 \
    || { tail -20 "$cache/apt.log" >&2; exit 1; }
  touch "$root/.ready"
fi

# This machine's Node, its headers and npm's node-gyp, as in the build root's /opt/node.
node_bin=$(readlink -f "$(command -v node)")
node_prefix=$(cd "$(dirname "$node_bin")/.." && pwd)
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
[[ -d $npm_dir/node_modules/node-gyp ]] || { echo "prebuild: npm's node-gyp not found under $npm_dir" >&2; exit 1; }
rm -rf "$root/opt/node" "$root/src"
install -D -m 0755 "$node_bin" "$root/opt/node/bin/node"
cp -a "$node_prefix/include" "$root/opt/node/include"
# node-gyp with the dependencies npm hoists beside it.
cp -a "$npm_dir" "$root/opt/node/npm"
mkdir -p "$root/src/node_modules"
cp -a binding.gyp native "$root/src/"
cp -a node_modules/node-addon-api "$root/src/node_modules/"

echo "prebuild: compiling in the Debian 11 root"
chroot "$root" env -i HOME=/tmp PATH=/opt/node/bin:/usr/bin:/bin CTPURGE_STATIC_RUNTIME=1 \
  sh -c 'cd /src && node /opt/node/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir=/opt/node' >"$cache/build.log" 2>&1 \
  || { tail -30 "$cache/build.log" >&2; exit 1; }
install -D -m 0644 "$root/src/build/Release/ctpurge.node" "$out"
strip --strip-unneeded "$out" 2>/dev/null || true

# What it needs from the system, for the record (and the install test holds it to this).
glibc=$(objdump -T "$out" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n -V | tail -1)
needed=$(objdump -p "$out" | awk '$1 == "NEEDED" { print $2 }' | tr '\n' ' ')
echo "prebuild: $out ($(stat -c %s "$out") bytes; needs $glibc; links $needed)"
