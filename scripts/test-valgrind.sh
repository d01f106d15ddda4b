#!/usr/bin/env bash
# npm run test:valgrind: memcheck over a 100k-entry list plus a purge, in a throwaway
# namespace, with the dumps read ahead on their own threads (lanes: 2), a list left after ten
# entries (its reader thread discarded mid-dump) and an aborted summary. Passes when nothing is
# definitely lost in the addon's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
command -v valgrind >/dev/null || { [[ $(id -u) -eq 0 ]] && apt-get install -y -qq valgrind >/dev/null; }
ns="ctpurge-valgrind-$$"
work=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$ns"
node -e '
  const lines = [];
  for (let i = 0; i < 100000; i++) lines.push(`-I -p tcp -s 10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.80 --sport ${1024 + (i % 50000)} --dport 80 --state ESTABLISHED -t ${i % 2 ? 424800 : 431000}`);
  require("fs").writeFileSync(process.argv[1], lines.join("\n") + "\n");' "$work/seed"
ip netns exec "$ns" conntrack -R "$work/seed"
cat > "$work/run.mjs" <<JS
import { Conntrack } from '$PWD/dist/index.js';
const ct = await Conntrack.open({ lanes: 2 });
let n = 0;
for await (const e of ct.list()) n++;
let bytes = 0;
for await (const t of ct.listNdjson({ dport: 80 })) bytes += t.length;
let early = 0;
for await (const e of ct.list()) if (++early === 10) break;
const ac = new AbortController();
const summary = ct.summary({}, { signal: ac.signal }).then(() => 'finished', (e) => e.name);
ac.abort();
const aborted = await summary;
const r = await ct.purge({ unreplied: true, olderThan: 3600, onDeleted: () => {} });
await ct.get({ protocol: 'tcp', src: '10.1.0.2', dst: '192.0.2.80', sport: 1026, dport: 80 });
await ct.close();
console.log(JSON.stringify({ listed: n, bytes, early, aborted, deleted: r.deleted }));
JS
echo "test:valgrind: running memcheck (this takes a few minutes)" >&2
ip netns exec "$ns" valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --num-callers=30 --log-file="$work/memcheck" \
  node "$work/run.mjs"
definite=$(grep -E 'definitely lost:' "$work/memcheck" | tail -1)
echo "test:valgrind: $definite" >&2
# Definite leaks whose stack passes through the addon.
ours=$(awk '/are definitely lost/{blk=1; buf=$0; next} blk&&/^==[0-9]+== *$/{ if (buf ~ /ctpurge\.node/) print buf; blk=0; next} blk{buf=buf"\n"$0}' "$work/memcheck")
errors=$(grep -E 'ERROR SUMMARY' "$work/memcheck" | tail -1)
echo "test:valgrind: $errors" >&2
invalid=$(grep -cE 'Invalid (read|write)|uninitialised' "$work/memcheck" || true)
if [[ -n "$ours" ]]; then
  echo "test:valgrind: definite leaks in the addon:" >&2
  echo "$ours" >&2
  exit 1
fi
if grep -B2 -A25 -E 'Invalid (read|write)|Conditional jump|uninitialised' "$work/memcheck" | grep -q 'ctpurge\.node'; then
  echo "test:valgrind: memory errors in the addon:" >&2
  grep -B2 -A25 -E 'Invalid (read|write)|Conditional jump|uninitialised' "$work/memcheck" >&2
  exit 1
fi
echo "test:valgrind: clean: 0 bytes definitely lost in the addon, no memory errors in it ($invalid reports elsewhere in node)" >&2
