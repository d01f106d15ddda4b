#!/usr/bin/env bash
# Brings a fresh clone to a testable state, and does nothing when it already is:
#   1. the Debian packages (build libraries and the test tools), installed when root;
#   2. npm ci when node_modules is missing or older than package-lock.json;
#   3. a rebuild of the addon or the TypeScript when their sources are newer.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3 conntrack nftables iproute2 hping3 strace util-linux)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
      say "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
      say "missing Debian packages: ${missing[*]}"
      say "install them as root:  apt-get install -y ${missing[*]}"
      exit 1
    fi
  fi
else
  say "not a Debian system: make sure libnetfilter_conntrack, libmnl, pkg-config, conntrack, nft, ip and hping3 are installed"
fi

newer_than() { # newer_than TARGET PATHS... : true if any file under PATHS is newer than TARGET
  local target=$1
  shift
  [[ -n $(find "$@" -newer "$target" -type f -print -quit 2>/dev/null) ]]
}

if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm dependencies and building (npm ci)"
  npm ci --no-audit --no-fund >&2
  exit 0
fi
if [[ ! -f build/Release/ctpurge.node ]] || newer_than build/Release/ctpurge.node native binding.gyp; then
  say "rebuilding the native addon"
  node scripts/build-native.mjs >&2
fi
if [[ ! -f dist/index.js ]] || newer_than dist/index.js src tsconfig.json tsconfig.build.json; then
  say "compiling TypeScript"
  npx --no-install tsc -p tsconfig.build.json >&2
  touch dist/index.js
fi
