#!/usr/bin/env bash
# npm run test:asan: the addon built with AddressSanitizer + UBSan, then the kernel and CLI
# suites against it. Node itself is not instrumented, so the runtime is preloaded; leak
# checking is left to valgrind (npm run test:valgrind), since Node frees little at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "test:asan: building the addon with -fsanitize=address,undefined" >&2
CTPURGE_SANITIZE=1 node scripts/build-native.mjs >/dev/null
mkdir -p build-asan
cp build/Release/ctpurge.node build-asan/ctpurge.node
echo "test:asan: restoring the normal build" >&2
node scripts/build-native.mjs >/dev/null
runtime="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
log=$(mktemp -d)
status=0
# Freed memory waits in ASan's quarantine before reuse (256 MB by default): the memory-bound
# tests add this figure to their bound, which they read from CTPURGE_ASAN_QUARANTINE_MB.
quarantine=64
CTPURGE_ASAN_QUARANTINE_MB=$quarantine \
LD_PRELOAD="$runtime" \
ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=$quarantine:abort_on_error=0:halt_on_error=1:log_path=$log/asan" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log/ubsan" \
CTPURGE_ADDON="$PWD/build-asan/ctpurge.node" \
  npx --no-install vitest run test/kernel test/cli || status=$?
reports=$(find "$log" -type f | wc -l)
if ((reports > 0)); then
  echo "test:asan: sanitizer reports:" >&2
  cat "$log"/* >&2
  status=1
fi
rm -rf "$log"
echo "test:asan: $([[ $status -eq 0 ]] && echo clean || echo FAILED) ($reports sanitizer reports)" >&2
exit $status
