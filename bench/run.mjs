// npm run bench: ctpurge against the tools people use today, on the same tables, in the same
// run. Tables live in throwaway namespaces; nf_conntrack_max and hashsize are raised for the
// run and put back, also on failure.
import { removedVariables } from './environment.mjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureLag } from './lag.mjs';
import { runIncident } from '../scripts/incident.mjs';
import { tupleFilterBench } from './tupleFilters.mjs';
import { allNetnsBench } from './allNetns.mjs';
import { topBench } from './top.mjs';
import { reportRows, stats } from './report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/ctpurge.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
// Tables above 2M entries take minutes to load and to measure: one run each by default.
const RUNS_LARGE = Number(process.env.BENCH_RUNS_LARGE ?? 1);
// The comparisons behind the targets (the purge against the C reference, list --json against
// conntrack -L) alternate more runs up to 2M entries: a single run on a shared VM varies by
// a fifth to a half (the kernel's walk is bound by memory latency), and their median steadies the ratio.
const TARGET_RUNS = Number(process.env.BENCH_TARGET_RUNS ?? 5);
const SIZES = (process.env.BENCH_SIZES ?? '262144,1048576,4194304').split(',').map(Number);
const PIPELINE = process.env.BENCH_PIPELINE !== '0';
const TUPLE = process.env.BENCH_TUPLE !== '0';
const INCIDENT = process.env.BENCH_INCIDENT !== '0';
const ALL_NETNS = process.env.BENCH_ALLNETNS !== '0';
const TOP = process.env.BENCH_TOP !== '0';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-bench-'));
const namespaces = new Set();
const restore = [];

if (process.getuid?.() !== 0) {
  console.error('npm run bench needs root (throwaway namespaces, nf_conntrack_max).');
  process.exit(1);
}
if (!existsSync('/usr/bin/time')) execFileSync('apt-get', ['install', '-y', '-qq', 'time'], { stdio: 'inherit' });

// The plain-C peer of the purge (bench/reference/purge.c): libmnl, one filtered dump, then
// batched deletes.
const REF = path.join(tmp, 'purge-ref');
execFileSync('cc', ['-O2', '-o', REF, path.join(root, 'bench/reference/purge.c'), '-lmnl'], { stdio: 'inherit' });

function cleanup() {
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns]);
  namespaces.clear();
  while (restore.length) restore.pop()();
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const restoreValue = new Map();
function setKnob(file, value) {
  const before = readFileSync(file, 'utf8').trim();
  if (Number(before) >= value) return;
  writeFileSync(file, String(value));
  restoreValue.set(file, before);
  restore.push(() => writeFileSync(file, before));
}

function netns(name) {
  const full = `ctpurge-bench-${name}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', full]);
  namespaces.add(full);
  for (const [k, v] of Object.entries(BENCH_SYSCTLS)) execFileSync('ip', ['netns', 'exec', full, 'sysctl', '-q', '-w', `${k}=${v}`]);
  return full;
}
function dropNs(ns) {
  spawnSync('ip', ['netns', 'del', ns]);
  namespaces.delete(ns);
}

/** Runs a command, returns { wall (s), rss (KB) } (and its output, with capture). */
function timed(cmd, args, { shell = false, capture = false } = {}) {
  const out = path.join(tmp, 'time');
  const argv = shell ? ['-f', '%e %M', '-o', out, 'bash', '-c', cmd] : ['-f', '%e %M', '-o', out, cmd, ...args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', argv, { stdio: ['ignore', capture ? 'pipe' : 'ignore', 'pipe'], maxBuffer: 1 << 26, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${shell ? cmd : [cmd, ...args].join(' ')} failed: ${r.stderr}`);
  const [, rss] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, rss, stdout: r.stdout ?? '' };
}

// Table layout: 1/4 stale UNREPLIED, 1/8 young UNREPLIED, 5/8 replied; TCP and UDP; all
// IPv4 (what most hosts have, the default table), or half IPv6 (mixed). Ages come from the
// timeouts (timestamps off), against the namespace's own
// policy timeouts: UDP's are raised to a day in the bench namespaces (BENCH_SYSCTLS) so UDP
// entries can be old, and so nothing expires while a multi-minute run goes on.
// Stale IPv4 sources are 10.1.0.0/16 (for the CIDR race).
const BENCH_SYSCTLS = { 'net.netfilter.nf_conntrack_udp_timeout': 86400, 'net.netfilter.nf_conntrack_udp_timeout_stream': 86400 };
function classes(n, mixed = false) {
  const stale = [];
  const young = [];
  const replied = [];
  for (let i = 0; i < n; i++) {
    const v6 = mixed && i % 2 === 1;
    const a = mixed ? i >> 1 : i;
    const sport = 1024 + (a % 60000);
    const hi = Math.floor(a / 60000);
    const kind = i % 8;
    const tcp = (i >> 3) % 2 === 0;
    if (kind < 2) {
      const src = v6 ? `fd00:1::${hi.toString(16)}:${(a & 0xffff).toString(16)}` : `10.1.${hi & 255}.${(a >> 8) & 255}`;
      const dst = v6 ? 'fd00:ff::80' : '192.0.2.80';
      // 7,200 s old: 432,000 - 424,800 (TCP), 86,400 - 79,200 (UDP).
      stale.push(tcp
        ? `-I -p tcp -s ${src} -d ${dst} --sport ${sport} --dport 80 --state ESTABLISHED -t 424800`
        : `-I -p udp -s ${src} -d ${dst} --sport ${sport} --dport 53 -t 79200`);
    } else if (kind === 2) {
      const src = v6 ? `fd00:2::${hi.toString(16)}:${(a & 0xffff).toString(16)}` : `10.2.${hi & 255}.${(a >> 8) & 255}`;
      const dst = v6 ? 'fd00:ff::443' : '192.0.2.43';
      // 1,000 s (TCP) and 400 s (UDP) old: young.
      young.push(tcp
        ? `-I -p tcp -s ${src} -d ${dst} --sport ${sport} --dport 443 --state ESTABLISHED -t 431000`
        : `-I -p udp -s ${src} -d ${dst} --sport ${sport} --dport 443 -t 86000`);
    } else {
      const src = v6 ? `fd00:3::${hi.toString(16)}:${(a & 0xffff).toString(16)}:${kind}` : `10.${3 + kind}.${hi & 255}.${(a >> 8) & 255}`;
      replied.push(tcp
        ? `-I -p tcp -s ${src} -d ${v6 ? 'fd00:ff::22' : '192.0.2.22'} --sport ${sport} --dport 22 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`
        : `-I -p udp -s ${src} -d ${v6 ? 'fd00:ff::123' : '192.0.2.123'} --sport ${sport} --dport 123 -t 80000 -u SEEN_REPLY,ASSURED`);
    }
  }
  return { stale, young, replied };
}

function load(ns, lines, name) {
  const file = path.join(tmp, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-R', file], { stdio: 'ignore' });
}
const count = (ns) => Number(execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-C'], { encoding: 'utf8' }).trim());
const ctp = (ns, args) => ['ip', ['netns', 'exec', ns, process.execPath, BIN, ...args]];
// Tables up to this size are also measured half IPv6 (the purge against the C reference).
const MIXED_MAX = Number(process.env.BENCH_MIXED_MAX ?? 1048576);

/**
 * A full walk of the table (a dump the kernel filters down to nothing, by a mark no entry has):
 * every measured run starts on a table that a walk has visited since it was loaded.
 */
const walk = (ns) => execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-L', '-m', '3735928559'], { stdio: 'ignore' });

/**
 * ctpurge's purge of the stale quarter against the plain-C reference, alternated run by run (the
 * one that goes first changes), each on the freshly reloaded table after one walk; then the
 * parts: ctpurge's dry run (the dump alone, read ahead) and the reference's dump and deletes,
 * timed inside the processes. `conntrack -L -u UNREPLIED` (list only) is the CLI peer.
 */
function comparePurge(ns, c, n, runs, label) {
  const purge = [];
  const reference = [];
  const listUnreplied = [];
  const inProcess = { purge: [], dryRun: [], refDump: [], refDelete: [] };
  const reload = () => {
    load(ns, c.stale, 'stale');
    walk(ns);
  };
  walk(ns);
  const ours = () => {
    const t = timed(...ctp(ns, ['--unreplied', '--older', '3600', '--json']), { capture: true });
    if (count(ns) !== n - c.stale.length) throw new Error('purge left the wrong count');
    inProcess.purge.push(JSON.parse(t.stdout).durationMs / 1000);
    purge.push(t);
    reload();
    return t;
  };
  const theirs = () => {
    const t = timed('ip', ['netns', 'exec', ns, REF, '3600'], { capture: true });
    if (count(ns) !== n - c.stale.length) throw new Error('the C reference left the wrong count');
    const [, dump, del] = t.stdout.trim().split(' ').map(Number);
    inProcess.refDump.push(dump);
    inProcess.refDelete.push(del);
    reference.push(t);
    reload();
    return t;
  };
  for (let i = 0; i < runs; i++) {
    listUnreplied.push(timed('ip', ['netns', 'exec', ns, 'conntrack', '-L', '-u', 'UNREPLIED']).wall);
    let t;
    let ref;
    if (i % 2 === 0) {
      t = ours();
      ref = theirs();
    } else {
      ref = theirs();
      t = ours();
    }
    const dry = timed(...ctp(ns, ['--unreplied', '--older', '3600', '--dry-run', '--json']), { capture: true });
    inProcess.dryRun.push(JSON.parse(dry.stdout).durationMs / 1000);
    console.error(`  ${label} purge run ${i + 1}: ${t.wall.toFixed(2)} s, ${t.rss} KB; C reference ${ref.wall.toFixed(2)} s, ${ref.rss} KB`);
  }
  const parts = Object.fromEntries(Object.entries(inProcess).map(([k, v]) => [k, stats(v)]));
  return { purge, reference, listUnreplied, parts };
}

const results = { date: new Date().toISOString(), machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version, conntrack: execFileSync('conntrack', ['--version'], { encoding: 'utf8' }).trim(), environmentRemoved: removedVariables }, sizes: {} };

setKnob('/proc/sys/net/netfilter/nf_conntrack_max', Math.max(...SIZES) + 65536);
setKnob('/sys/module/nf_conntrack/parameters/hashsize', Math.max(...SIZES) / 4);

for (const n of SIZES) {
  console.error(`\n== ${n.toLocaleString('en-US')}-entry table ==`);
  const c = classes(n);
  const staleV4 = c.stale.filter((l) => l.includes(' -s 10.1.'));
  const ns = netns(`t${n}`);
  const r = {};
  load(ns, c.stale, 'stale');
  load(ns, c.young, 'young');
  load(ns, c.replied, 'replied');
  if (count(ns) !== n) throw new Error(`table has ${count(ns)} entries, expected ${n}`);

  const runs = n > 2_000_000 ? RUNS_LARGE : RUNS;
  r.runs = runs;
  const targetRuns = n > 2_000_000 ? runs : Math.max(runs, TARGET_RUNS);
  r.targetRuns = targetRuns;
  const { purge, reference, listUnreplied, parts } = comparePurge(ns, c, n, targetRuns, 'all IPv4');
  // The same purge as a grace: a timeout update per entry instead of a delete. The graced
  // entries are then deleted and loaded again for the next run.
  const grace = [];
  for (let i = 0; i < runs; i++) {
    const t = timed(...ctp(ns, ['--unreplied', '--older', '3600', '--grace', '60s', '--no-wait', '-q']));
    if (count(ns) !== n) throw new Error('a grace changed the table size');
    grace.push(t);
    // Their age is no longer known from the timeout left: deleted by their sources instead.
    timed(...ctp(ns, ['--src', '10.1.0.0/16', '--src', 'fd00:1::/32', '-q']));
    if (count(ns) !== n - c.stale.length) throw new Error('the graced entries were not all there');
    load(ns, c.stale, 'stale');
    walk(ns);
    console.error(`  grace run ${i + 1}: ${t.wall.toFixed(2)} s, ${t.rss} KB`);
  }
  r.grace = { ...stats(grace.map((p) => p.wall)), updated: c.stale.length, peakRssMB: stats(grace.map((p) => p.rss / 1024)) };
  r.purge = { ...stats(purge.map((p) => p.wall)), deleted: c.stale.length, peakRssMB: stats(purge.map((p) => p.rss / 1024)), entriesPerSecond: Math.round(n / stats(purge.map((p) => p.wall)).median) };
  r.conntrackListUnreplied = stats(listUnreplied);
  r.reference = { ...stats(reference.map((p) => p.wall)), peakRssMB: stats(reference.map((p) => p.rss / 1024)) };
  r.parts = parts;

  // Same-size deletion by source CIDR (the stale IPv4 sources).
  const cidrCtp = [];
  const cidrCt = [];
  for (let i = 0; i < runs; i++) {
    cidrCtp.push(timed(...ctp(ns, ['--src', '10.1.0.0/16', '-q'])).wall);
    if (count(ns) !== n - staleV4.length) throw new Error('ctpurge --src left the wrong count');
    load(ns, staleV4, 'stalev4');
    walk(ns);
    cidrCt.push(timed('ip', ['netns', 'exec', ns, 'conntrack', '-D', '-s', '10.1.0.0', '--mask-src', '255.255.0.0']).wall);
    if (count(ns) !== n - staleV4.length) throw new Error('conntrack -D left the wrong count');
    load(ns, staleV4, 'stalev4');
    walk(ns);
  }
  r.cidrDelete = { deleted: staleV4.length, ctpurge: stats(cidrCtp), conntrack: stats(cidrCt) };

  // list everything as NDJSON vs conntrack -L -o extended.
  const listCtp = [];
  const listCt = [];
  const listOurs = () => listCtp.push(timed(`ip netns exec ${ns} ${process.execPath} ${BIN} list --json > /dev/null`, [], { shell: true }).wall);
  const listTheirs = () => listCt.push(timed(`ip netns exec ${ns} conntrack -L -o extended > /dev/null 2>&1`, [], { shell: true }).wall);
  for (let i = 0; i < targetRuns; i++) {
    // Alternated: the one that goes first changes.
    for (const f of i % 2 === 0 ? [listOurs, listTheirs] : [listTheirs, listOurs]) f();
  }
  r.listAll = { ctpurge: stats(listCtp), conntrack: stats(listCt) };

  // Time and peak RSS of every read-only operation, output to /dev/null (memory must stay flat).
  r.footprint = {};
  // count is the API's (the CLI has no count command), over the whole table as stats reads it:
  // olderThan 0 has every entry dumped, parsed and aged (no kernel filter narrows it).
  const countScript = `import { Conntrack } from ${JSON.stringify(path.join(root, 'dist/index.js'))}; const ct = await Conntrack.open({ lanes: 2 }); console.log(await ct.count({ olderThan: 0 }));`;
  const readOnly = {
    'list --json': `${BIN} list --json`,
    'list -o conntrack': `${BIN} list -o conntrack`,
    list: `${BIN} list`,
    'stats --json': `${BIN} stats --json`,
    'dry run': `${BIN} --unreplied --older 3600 --dry-run -q`,
    count: `--input-type=module -e '${countScript}'`,
  };
  for (const [name, args] of Object.entries(readOnly)) {
    const t = [];
    for (let i = 0; i < runs; i++) t.push(timed(`ip netns exec ${ns} ${process.execPath} ${args} > /dev/null 2>&1`, [], { shell: true }));
    r.footprint[name] = { wall: stats(t.map((x) => x.wall)), peakRssMB: stats(t.map((x) => x.rss / 1024)) };
  }
  const ctL = [];
  for (let i = 0; i < runs; i++) ctL.push(timed(`ip netns exec ${ns} conntrack -L > /dev/null 2>&1`, [], { shell: true }));
  r.footprint['conntrack -L'] = { wall: stats(ctL.map((t) => t.wall)), peakRssMB: stats(ctL.map((t) => t.rss / 1024)) };

  // Embedded: timer lag in a Node process while each API operation runs (bench/lag.mjs).
  // Before the flush runs below: they delete a namespace of millions of entries, and the
  // kernel's teardown of it, in the background, stalled a CPU for tens of ms.
  // Three runs at every size, 4M included: one pause of the machine's decides a single run.
  r.lag = measureLag({ ns, root, runs: RUNS, reload: () => load(ns, c.stale, 'stale') });

  // --unreplied with no age: the kernel's filtered flush, vs conntrack -F of the same count.
  const unreplied = c.stale.length + c.young.length;
  const flushCtp = [];
  const flushApi = [];
  const flushCt = [];
  const other = netns(`f${n}`);
  for (let i = 0; i < runs; i++) {
    const t = timed(...ctp(ns, ['--unreplied', '--json']));
    flushCtp.push(t.wall);
    if (count(ns) !== n - unreplied) throw new Error('flush left the wrong count');
    load(ns, c.stale, 'stale');
    load(ns, c.young, 'young');
    // The flush request alone, through the API (no process start-up).
    const api = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e',
      `import { Conntrack } from ${JSON.stringify(path.join(root, 'dist/index.js'))}; const ct = await Conntrack.open(); const r = await ct.purge({ unreplied: true }); console.log(JSON.stringify(r));`], { encoding: 'utf8' });
    const apiResult = JSON.parse(api.stdout);
    if (apiResult.method !== 'flush' || apiResult.deleted !== unreplied) throw new Error(`API flush: ${api.stdout}${api.stderr}`);
    flushApi.push(apiResult.durationMs / 1000);
    load(ns, c.stale, 'stale');
    load(ns, c.young, 'young');
    load(other, [...c.stale, ...c.young], 'unreplied');
    flushCt.push(timed('ip', ['netns', 'exec', other, 'conntrack', '-F']).wall);
    if (count(other) !== 0) throw new Error('conntrack -F left entries');
  }
  dropNs(other);
  r.flush = { deleted: unreplied, ctpurgeCli: stats(flushCtp), ctpurgeApi: stats(flushApi), conntrackF: stats(flushCt) };

  if (r.lag.purge.n !== c.stale.length) throw new Error(`embedded purge deleted ${r.lag.purge.n}`);
  dropNs(ns);

  // The same purge on a table half IPv6: the family mix changes the kernel's work per entry.
  if (n <= MIXED_MAX) {
    const m = classes(n, true);
    const mixed = netns(`m${n}`);
    load(mixed, m.stale, 'stale');
    load(mixed, m.young, 'young');
    load(mixed, m.replied, 'replied');
    if (count(mixed) !== n) throw new Error(`mixed table has ${count(mixed)} entries, expected ${n}`);
    const cmp = comparePurge(mixed, m, n, targetRuns, 'half IPv6');
    r.mixed = { purge: stats(cmp.purge.map((p) => p.wall)), reference: stats(cmp.reference.map((p) => p.wall)), parts: cmp.parts };
    dropNs(mixed);
  }
  results.sizes[n] = r;
}

// Exact-tuple queries with and without the kernel's tuple filter (bench/tupleFilters.mjs),
// on the largest table size up to 1M (the knobs above are already raised for it).
if (TUPLE) {
  const tuple = tupleFilterBench({ size: Math.min(Math.max(...SIZES), 1048576), runs: RUNS });
  results.tupleFilters = { ...tuple.results, rows: tuple.rows };
}

// ctpurge top against iptstate on a 1M table under a SYN flood of 10,000 new flows a second.
if (TOP) results.top = await topBench({ size: 1048576, rate: 10000, seconds: 60 });

// A container host: 200 namespaces of 5,000 entries, stats --all-netns against the shell loops.
if (ALL_NETNS) results.allNetns = await allNetnsBench({ runs: RUNS });

// The table-full incident (scripts/incident.mjs) at the raised nf_conntrack_max: time to relief.
if (INCIDENT) {
  // At 1M + 64k whatever the table sizes (the table is filled to nf_conntrack_max), and never
  // below the machine's own value, which is put back at exit.
  const MAX = '/proc/sys/net/netfilter/nf_conntrack_max';
  const INCIDENT_MAX = 1048576 + 65536;
  const original = Number(restoreValue.get(MAX) ?? Infinity);
  if (Number(readFileSync(MAX, 'utf8')) > INCIDENT_MAX && original <= INCIDENT_MAX) writeFileSync(MAX, String(INCIDENT_MAX));
  const { samples, ...r } = await runIncident({ log: (s) => console.error(`  incident: ${s}`) });
  results.incident = { ...r, samples: samples.length };
}

// The seed's shell pipeline: one conntrack -D per entry, on a 2,000-entry table.
if (PIPELINE) {
  const ns = netns('pipe');
  const lines = [];
  for (let i = 0; i < 2000; i++) {
    lines.push(i < 1800
      ? `-I -p tcp -s 10.1.${i >> 8}.${i & 255} -d 192.0.2.80 --sport ${20000 + i} --dport 80 --state ESTABLISHED -t 424800`
      : `-I -p tcp -s 10.3.${i >> 8}.${i & 255} -d 192.0.2.22 --sport ${20000 + i} --dport 22 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`);
  }
  const pipeline = `conntrack -L 2>/dev/null | grep UNREPLIED | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^src=/ && !s) s = substr($i, 5); if ($i ~ /^dst=/ && !d) d = substr($i, 5); if ($i ~ /^sport=/ && !sp) sp = substr($i, 7); if ($i ~ /^dport=/ && !dp) dp = substr($i, 7) } print "-p tcp -s " s " -d " d " --sport " sp " --dport " dp; s = d = sp = dp = "" }' | while read -r args; do conntrack -D $args > /dev/null 2>&1; done`;
  const runs = [];
  const ctpRuns = [];
  for (let i = 0; i < RUNS; i++) {
    load(ns, lines, 'pipe');
    runs.push(timed(`ip netns exec ${ns} bash -c '${pipeline.replace(/'/g, `'\\''`)}'`, [], { shell: true }).wall);
    if (count(ns) !== 200) throw new Error(`pipeline left ${count(ns)}`);
    execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-F'], { stdio: 'ignore' });
    load(ns, lines, 'pipe');
    ctpRuns.push(timed(...ctp(ns, ['--unreplied', '--older', '3600', '-q'])).wall);
    execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-F'], { stdio: 'ignore' });
  }
  dropNs(ns);
  const s = stats(runs);
  // Each conntrack -D dumps the whole table again: cost per entry grows with the table, so
  // the total grows with deletions x table size. Scaled from 1,800 of 2,000.
  const perEntry = s.median / 1800;
  const extrapolate = (del, size) => perEntry * (del / 1800) * (size / 2000) * 1800;
  results.pipeline = { table: 2000, deleted: 1800, wall: s, ctpurge: stats(ctpRuns), perEntryMs: perEntry * 1000, extrapolated262144of1048576Hours: extrapolate(262144, 1048576) / 3600 };
}

cleanup();

// Report.
const rows = reportRows(results);
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(`\nctpurge bench, ${results.date.slice(0, 10)}, ${results.machine.cpus} vCPU ${results.machine.model}, kernel ${results.machine.kernel}, ${RUNS} runs each (${SIZES.some((n) => n <= 2_000_000) ? `${Math.max(RUNS, TARGET_RUNS)} for the comparisons behind the targets, ` : ''}${RUNS_LARGE} above 2M entries; median (min-max))${removedVariables.length ? `; commands run without ${removedVariables.join(', ')}, as from a systemd unit or cron` : ''}\n`);
for (const r of rows) console.log(`${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`);
mkdirSync(path.join(root, 'bench/results'), { recursive: true });
// Named by the day and the sizes, and numbered when that name is taken: every run is kept.
const base = path.join(root, 'bench/results', `${results.date.slice(0, 10)}-${SIZES.map((n) => (n >= 1048576 ? `${n / 1048576}m` : `${n / 1024}k`)).join('-')}`);
const taken = readdirSync(path.dirname(base)).filter((f) => f === `${path.basename(base)}.json` || f.startsWith(`${path.basename(base)}-run`)).length;
let file = taken === 0 ? `${base}.json` : `${base}-run${taken + 1}.json`;
for (let k = taken + 2; existsSync(file); k++) file = `${base}-run${k}.json`;
writeFileSync(file, `${JSON.stringify({ ...results, table: rows }, null, 2)}\n`);
console.log(`\nwritten: ${path.relative(root, file)}`);
