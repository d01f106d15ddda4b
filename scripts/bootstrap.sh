#!/usr/bin/env bash
# Brings a fresh clone to a testable state, and does nothing when it already is:
#   1. the Debian packages (build libraries and the test tools), installed when root;
#   2. npm ci when node_modules is missing or older than package-lock.json;
#   3. a rebuild of the addon or the TypeScript when their sources are newer.
# It prints one line per step; the tools' full output goes to log files (CTPURGE_LOG_DIR,
# by default /tmp/ctpurge-bootstrap), and their tail is shown only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3.
# Tests: conntrack nftables iproute2 hping3 strace util-linux (setpriv, nsenter, unshare), tmux
# (top on a real terminal), iptstate (top's peer in the bench), and the programs that consume
# ctpurge's output: prometheus (promtool), prometheus-node-exporter, docker.io and debootstrap
# (the image test), systemd (systemd-analyze).
# `bootstrap.sh --demo` (npm run demo) installs only what the demo needs: the build, conntrack,
# nft, ip and hping3.
DEMO_PACKAGES=(libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3 conntrack nftables iproute2 hping3)
PACKAGES=("${DEMO_PACKAGES[@]}" strace util-linux clang-format tmux iptstate
  prometheus prometheus-node-exporter docker.io debootstrap systemd logrotate nfct)
if [[ ${1:-} == --demo ]]; then PACKAGES=("${DEMO_PACKAGES[@]}"); fi

LOG_DIR=${CTPURGE_LOG_DIR:-${TMPDIR:-/tmp}/ctpurge-bootstrap}
mkdir -p "$LOG_DIR"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# step "what" LOGNAME command...: one progress line, the output to LOG_DIR/LOGNAME.log.
step() {
  local what=$1 log="$LOG_DIR/$2.log" start=$SECONDS
  shift 2
  printf 'bootstrap: %s… ' "$what" >&2
  if "$@" >"$log" 2>&1; then
    printf 'done in %d s\n' $((SECONDS - start)) >&2
  else
    local rc=$?
    printf 'failed (exit %d) after %d s; the last lines of %s:\n' "$rc" $((SECONDS - start)) "$log" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    exit "$rc"
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # The packages are test tools: their services (prometheus, node_exporter, dockerd) must
  # not start on install. A policy-rc.d answering 101 tells invoke-rc.d and
  # deb-systemd-invoke so; one is put in place only when the machine has none, and removed.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# ctpurge bootstrap: no service starts while test tools are installed\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    own_policy=1
  fi
  local rc=0
  { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"; } || rc=$?
  if ((own_policy)); then rm -f "$policy"; fi
  # Nor at the next boot: the tests start these programs themselves, on loopback. Only the
  # services of packages installed just now are disabled, never ones the machine had.
  local units=() p
  for p in "$@"; do
    case $p in
      prometheus) units+=(prometheus.service) ;;
      prometheus-node-exporter) units+=(prometheus-node-exporter.service) ;;
      docker.io) units+=(docker.service docker.socket containerd.service) ;;
    esac
  done
  if ((rc == 0 && ${#units[@]})) && command -v systemctl >/dev/null 2>&1; then
    systemctl disable "${units[@]}" || true
  fi
  return "$rc"
}

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
      step "installing ${#missing[@]} Debian packages (${missing[*]})" apt apt_install "${missing[@]}"
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
  step "installing npm dependencies and building the addon (npm ci)" npm-ci npm ci --no-audit --no-fund
  exit 0
fi
if [[ ! -f build/Release/ctpurge.node ]] || newer_than build/Release/ctpurge.node native binding.gyp; then
  step "building the addon" build-native node scripts/build-native.mjs
fi
if [[ ! -f dist/index.js ]] || newer_than dist/index.js src tsconfig.json tsconfig.build.json; then
  step "compiling TypeScript" tsc npx --no-install tsc -p tsconfig.build.json
  touch dist/index.js
fi
