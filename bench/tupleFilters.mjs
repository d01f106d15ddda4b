// Exact-tuple queries with and without the kernel's tuple filter (CTA_FILTER), side by side
// on the same 1M-entry table in one run:
//   - `--proto tcp --dst ADDR --dport P`, dry run and purge (65,536 entries selected);
//   - the kube-proxy shape: 50,000 UDP entries selected by exact reply source (the backend
//     that went away), purge and dry run.
// The user-space path is the same command with CTPURGE_NO_KERNEL_FILTER=1.
//
// Runs from bench/run.mjs (which has raised nf_conntrack_max and hashsize), or alone:
//   flock /tmp/ctpurge-knobs.lock node bench/tupleFilters.mjs
// Alone it raises the two knobs for the run and puts them back, also on failure.
import './environment.mjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/ctpurge.js');

const TARGET = { dst: '192.0.2.81', dport: 80, count: 65536 };
const KUBE = { vip: '10.96.0.10', backend: '10.244.1.7', count: 50000 };

/** The table: the two selected sets, and near misses around them (same port, other address; same VIP, other backend; IPv6). */
export function tupleTable(n) {
  const target = [];
  for (let i = 0; i < TARGET.count; i++) {
    target.push(`-I -p tcp -s 10.81.${i >> 8}.${i & 255} -d ${TARGET.dst} --sport 40000 --dport ${TARGET.dport} --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`);
  }
  const kube = [];
  for (let i = 0; i < KUBE.count; i++) {
    const c = `10.240.${i >> 8}.${i & 255}`;
    kube.push(`-I -p udp -s ${c} -d ${KUBE.vip} --sport 5353 --dport 53 --reply-src ${KUBE.backend} --reply-dst ${c} --reply-port-src 53 --reply-port-dst 5353 -t 86000`);
  }
  const rest = [];
  for (let i = 0; i < n - TARGET.count - KUBE.count; i++) {
    const v4 = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    switch (i % 4) {
      case 0: rest.push(`-I -p tcp -s ${v4} -d 192.0.2.80 --sport 40000 --dport 80 --state ESTABLISHED -t 424800`); break;
      case 1: rest.push(`-I -p udp -s ${v4} -d ${KUBE.vip} --sport 5353 --dport 53 --reply-src 10.244.1.${8 + (i % 50)} --reply-dst ${v4} --reply-port-src 53 --reply-port-dst 5353 -t 86000`); break;
      case 2: rest.push(`-I -p tcp -s fd00:5::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)} -d fd00:ff::81 --sport 40000 --dport 80 --state ESTABLISHED -t 424800`); break;
      default: rest.push(`-I -p tcp -s ${v4} -d ${TARGET.dst} --sport 40000 --dport 443 --state ESTABLISHED -t 424800`); break;
    }
  }
  return { target, kube, rest };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], runs: s.length };
}

/**
 * Runs the scenario in a throwaway namespace it creates and removes. Needs nf_conntrack_max
 * >= size (the caller raises it). Returns { results, rows } for bench/run.mjs's report.
 */
export function tupleFilterBench({ size = 1048576, runs = 3, log = (s) => console.error(s) } = {}) {
  const max = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8'));
  if (max < size) throw new Error(`nf_conntrack_max is ${max}, the scenario needs ${size}: run it from bench/run.mjs or alone (it raises the knob)`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-bench-tuple-'));
  const ns = `ctpurge-bench-tuple-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_udp_timeout=86400', 'net.netfilter.nf_conntrack_udp_timeout_stream=86400']);
    const load = (lines, name) => {
      const file = path.join(tmp, name);
      writeFileSync(file, `${lines.join('\n')}\n`);
      execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-R', file], { stdio: 'ignore' });
    };
    const count = () => Number(execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-C'], { encoding: 'utf8' }).trim());
    const t = tupleTable(size);
    log(`\n== exact-tuple queries, ${size.toLocaleString('en-US')}-entry table ==`);
    load(t.rest, 'rest');
    load(t.target, 'target');
    load(t.kube, 'kube');
    if (count() !== size) throw new Error(`table has ${count()} entries, expected ${size}`);

    // One CLI run: wall time (process start included) and the library's own durationMs.
    const run = (args, userspace, expected) => {
      const env = { ...process.env, CTPURGE_NO_KERNEL_FILTER: userspace ? '1' : '' };
      const t0 = process.hrtime.bigint();
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, BIN, 'purge', ...args, '--json'], { encoding: 'utf8', env });
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`ctpurge ${args.join(' ')} failed: ${r.stderr}`);
      const o = JSON.parse(r.stdout.trim().split('\n').pop());
      const dry = args.includes('--dry-run');
      if ((dry ? o.matched : o.deleted) !== expected) throw new Error(`ctpurge ${args.join(' ')} (${userspace ? 'user space' : 'kernel'}): ${r.stdout}`);
      return { wall, api: o.durationMs / 1000, method: o.method };
    };

    const scenarios = [
      { name: `--proto tcp --dst ${TARGET.dst} --dport ${TARGET.dport} --dry-run`, args: ['--proto', 'tcp', '--dst', TARGET.dst, '--dport', String(TARGET.dport), '--dry-run'], expected: TARGET.count },
      { name: `--proto tcp --dst ${TARGET.dst} --dport ${TARGET.dport}`, args: ['--proto', 'tcp', '--dst', TARGET.dst, '--dport', String(TARGET.dport)], expected: TARGET.count, reload: () => load(t.target, 'target') },
      { name: `kube-proxy: --proto udp --reply-src ${KUBE.backend} --dry-run`, args: ['--proto', 'udp', '--reply-src', KUBE.backend, '--dry-run'], expected: KUBE.count },
      { name: `kube-proxy: --proto udp --reply-src ${KUBE.backend}`, args: ['--proto', 'udp', '--reply-src', KUBE.backend], expected: KUBE.count, reload: () => load(t.kube, 'kube') },
    ];
    const results = { size, scenarios: [] };
    for (const s of scenarios) {
      const kernel = [];
      const user = [];
      let method = '';
      // Alternated, so both paths see the same machine state.
      for (let i = 0; i < runs; i++) {
        const k = run(s.args, false, s.expected);
        method = k.method;
        kernel.push(k);
        s.reload?.();
        user.push(run(s.args, true, s.expected));
        s.reload?.();
        if (count() !== size) throw new Error(`table has ${count()} entries after "${s.name}", expected ${size}`);
        log(`  ${s.name}: kernel ${k.wall.toFixed(2)} s (${k.method}), user space ${user.at(-1).wall.toFixed(2)} s`);
      }
      results.scenarios.push({
        name: s.name,
        selected: s.expected,
        method,
        kernel: { wall: median(kernel.map((x) => x.wall)), api: median(kernel.map((x) => x.api)) },
        userspace: { wall: median(user.map((x) => x.wall)), api: median(user.map((x) => x.api)) },
      });
    }
    const N = size.toLocaleString('en-US');
    const fmt = (s) => `${s.median.toFixed(2)} s (${s.min.toFixed(2)}-${s.max.toFixed(2)})`;
    const rows = results.scenarios.map((s) => [
      `${N}: ${s.name} (${s.selected.toLocaleString('en-US')})`,
      `${fmt(s.kernel.wall)} [${s.method}]`,
      `${(s.kernel.wall.median / s.userspace.wall.median).toFixed(2)}x the user-space path (${fmt(s.userspace.wall)}); library alone ${(s.kernel.api.median / s.userspace.api.median).toFixed(2)}x (${s.kernel.api.median.toFixed(2)} vs ${s.userspace.api.median.toFixed(2)} s)${s.name.startsWith('kube') ? '' : '; target <= 0.40x'}`,
    ]);
    return { results, rows };
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

// Alone: raise the knobs for the run, put them back whatever happens.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.getuid?.() !== 0) {
    console.error('bench/tupleFilters.mjs needs root (a throwaway namespace, nf_conntrack_max).');
    process.exit(1);
  }
  const size = Number(process.env.BENCH_TUPLE_SIZE ?? 1048576);
  const restore = [];
  const setKnob = (file, value) => {
    const before = readFileSync(file, 'utf8').trim();
    if (Number(before) >= value) return;
    writeFileSync(file, String(value));
    restore.push(() => writeFileSync(file, before));
  };
  const putBack = () => {
    while (restore.length) restore.pop()();
  };
  process.on('exit', putBack);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  try {
    setKnob('/proc/sys/net/netfilter/nf_conntrack_max', size + 65536);
    setKnob('/sys/module/nf_conntrack/parameters/hashsize', size / 4);
    const { results, rows } = tupleFilterBench({ size, runs: Number(process.env.BENCH_RUNS ?? 3) });
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    console.log(`\nexact-tuple queries, kernel ${os.release()}, median (min-max)\n`);
    for (const r of rows) console.log(`${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`);
    const date = new Date().toISOString();
    mkdirSync(path.join(root, 'bench/results'), { recursive: true });
    const file = path.join(root, 'bench/results', `${date.slice(0, 10)}-tuple-filters.json`);
    writeFileSync(file, `${JSON.stringify({ date, kernel: os.release(), cpus: os.cpus().length, ...results, table: rows }, null, 2)}\n`);
    console.log(`\nwritten: ${path.relative(root, file)}`);
  } finally {
    putBack();
  }
}
