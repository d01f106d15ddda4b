// Event-loop lag while a Node process runs each API operation on a bench table: a 1 ms
// timer in the same process records how late it fires (p99 and max over the operation).
// Target (docs/reliability.md): p99 <= 10 ms, max < 20 ms, for every operation.
//
// Used by bench/run.mjs on each table size. Each operation runs in its own Node process in
// the table's namespace, so one operation's garbage does not land in the next one's figures.
import './environment.mjs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** The operations measured, with the query each uses; `destructive` ones need a reload after. */
export const LAG_OPERATIONS = [
  { name: 'list', code: 'let n = 0; for await (const e of ct.list({})) n++; return n;' },
  { name: 'listNdjson', code: 'let n = 0; for await (const b of ct.listNdjson({})) for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++; return n;' },
  { name: 'listChunks', code: 'let n = 0; for await (const c of ct.listChunks({})) n += c.byteLength / RECORD_SIZE; return n;' },
  { name: 'count', code: 'return ct.count({ unreplied: true, olderThan: 3600 });' },
  { name: 'summary', code: 'return (await ct.summary({})).total;' },
  { name: 'dry run', code: 'return (await ct.purge({ unreplied: true, olderThan: 3600, dryRun: true })).matched;' },
  { name: 'purge', code: 'return (await ct.purge({ unreplied: true, olderThan: 3600 })).deleted;', destructive: true },
];

function script(root, code) {
  return `import { Conntrack, RECORD_SIZE } from ${JSON.stringify(path.join(root, 'dist/index.js'))};
    // Opened first: loading the addon is start-up, not the operation.
    const ct = await Conntrack.open();
    const lags = [];
    let last = performance.now();
    const tick = setInterval(() => { const now = performance.now(); lags.push(now - last - 1); last = now; }, 1);
    const t0 = performance.now();
    const n = await (async () => { ${code} })();
    const ms = performance.now() - t0;
    clearInterval(tick);
    lags.sort((a, b) => a - b);
    const p99 = lags.length ? lags[Math.min(lags.length - 1, Math.floor(lags.length * 0.99))] : 0;
    console.log(JSON.stringify({ n, ms, ticks: lags.length, p99Ms: Math.max(0, p99), maxMs: Math.max(0, lags.at(-1) ?? 0) }));`;
}

/**
 * Runs every operation `runs` times in namespace `ns`. `reload()` restores the table after a
 * destructive one. Returns { [operation]: { p99Ms: number[], maxMs: number[], n, ms } }.
 */
export function measureLag({ ns, root, runs = 3, reload = () => {}, log = (s) => console.error(s) }) {
  const out = {};
  for (const op of LAG_OPERATIONS) {
    const r = { p99Ms: [], maxMs: [], n: null, ms: [] };
    for (let i = 0; i < runs; i++) {
      const p = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script(root, op.code)], { encoding: 'utf8' });
      if (p.status !== 0) throw new Error(`lag probe ${op.name} failed: ${p.stderr}`);
      const o = JSON.parse(p.stdout);
      if (!(o.n > 0)) throw new Error(`lag probe ${op.name} saw no entries: ${p.stdout}`);
      if (r.n !== null && r.n !== o.n) throw new Error(`lag probe ${op.name}: ${o.n} entries, ${r.n} the run before`);
      r.n = o.n;
      r.p99Ms.push(o.p99Ms);
      r.maxMs.push(o.maxMs);
      r.ms.push(o.ms);
      if (op.destructive) reload();
    }
    log(`  lag ${op.name} (${r.n}): p99 ${r.p99Ms.map((v) => v.toFixed(1)).join('/')} ms, max ${r.maxMs.map((v) => v.toFixed(1)).join('/')} ms`);
    out[op.name] = r;
  }
  return out;
}
