// A table-full incident and its rescue, watched: `npm run demo -- incident`, and a scenario of
// `npm run bench`. Everything happens in two throwaway namespaces made here and removed at the
// end, also on failure. No global knob is changed: nf_conntrack_max is global but the count is
// per namespace, so the client namespace is full while the host's own table is untouched.
//
//   1. Fill the client's table to nf_conntrack_max with ASSURED ESTABLISHED flows whose peers
//      vanished (idle 8.9 h). With INCIDENT_UNREPLIED_EVERY=20, every 20th is a stale
//      UNREPLIED one instead: then the kernel's early_drop evicts those itself (measured: 199
//      of 200 new connections answered on a full table); it never evicts an ASSURED entry,
//      which is why idle assured flows are what locks a modern table.
//   2. Real SYNs (hping3) over a veth pair to a peer that answers: with the table full, the
//      kernel drops them (per-CPU drop / early_drop / insert_failed counters).
//   3. Start `ctpurge --state ESTABLISHED --idle 1h --every 1s --when-above 90 --adaptive`
//      and sample the table until it is below 90%: the time to relief.
//   4. The same SYNs again: answered.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/ctpurge.js');
/** New connections tried before and after the rescue. */
export const SYNS = 200;
const PEER_IP = '10.98.0.2';

const run = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sums of the namespace's per-CPU conntrack counters (conntrack -S). */
function counters(ns) {
  const sum = { drop: 0, early_drop: 0, insert_failed: 0 };
  for (const line of run('ip', ['netns', 'exec', ns, 'conntrack', '-S']).split('\n')) {
    for (const k of Object.keys(sum)) {
      const m = new RegExp(`\\b${k}=(\\d+)`).exec(line);
      if (m) sum[k] += Number(m[1]);
    }
  }
  return sum;
}

const count = (ns) => Number(run('ip', ['netns', 'exec', ns, 'conntrack', '-C']).trim());

/**
 * hping3 SYNs to the peer: how many got an answer (SYN-ACK or RST) back. hping3 stops at the
 * first send the kernel refuses (a full table drops the packet in the output hook, and the
 * sender gets EPERM): that error is returned as `refused`.
 */
function hping(ns, ip, sport) {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'hping3', '-S', '-p', '80', '-s', String(sport), '-c', String(SYNS), '-i', 'u5000', ip], { encoding: 'utf8', timeout: 60_000 });
  const text = `${r.stdout}\n${r.stderr}`;
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(text);
  const refused = /sendto: ([^\n]+)/.exec(text)?.[1] ?? null;
  if (!m && !refused) throw new Error(`hping3 gave no statistics: ${text}`);
  return { sent: m ? Number(m[1]) : 0, answered: m ? Number(m[2]) : 0, refused };
}

/**
 * SYNS new TCP connections at once (non-blocking connect, then one second to settle): each is
 * answered (connected, or refused by the peer's RST) or failed (still waiting: its SYNs were
 * dropped; or the error the kernel gave).
 */
function connects(ns, ip) {
  const py = `
import socket, errno, json, select, time
socks = []
for i in range(${SYNS}):
    s = socket.socket(); s.setblocking(False)
    socks.append((s, s.connect_ex(("${ip}", 80))))
deadline = time.time() + 1.0
pending = [s for s, r in socks if r == errno.EINPROGRESS]
while pending and time.time() < deadline:
    _, w, _ = select.select([], pending, [], max(0, deadline - time.time()))
    pending = [s for s in pending if s not in w]
out = {"answered": 0, "failed": {}}
for s, r in socks:
    err = r if r not in (0, errno.EINPROGRESS) else (None if s in pending else s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    if err in (0, errno.ECONNREFUSED):
        out["answered"] += 1
    else:
        k = "timeout" if err is None else errno.errorcode.get(err, str(err))
        out["failed"][k] = out["failed"].get(k, 0) + 1
    s.close()
print(json.dumps(out))`;
  return JSON.parse(run('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-c', py]));
}

/** New connections from `ns` to the peer (hping3 SYNs, then SYNS connect() calls) and what the kernel's counters said meanwhile. */
function probe(ns, sport, log) {
  const c0 = counters(ns);
  const hp = hping(ns, PEER_IP, sport);
  const conn = connects(ns, PEER_IP);
  const c1 = counters(ns);
  const drops = Object.fromEntries(Object.keys(c0).map((k) => [k, c1[k] - c0[k]]));
  log(`hping3 -S: ${hp.refused ? `"sendto: ${hp.refused}" after ${hp.sent} SYNs` : `${hp.answered} of ${hp.sent} SYNs answered`}`);
  log(`${SYNS} new TCP connections: ${conn.answered} answered, failed: ${JSON.stringify(conn.failed)}; kernel counters: drop +${drops.drop}, early_drop +${drops.early_drop}, insert_failed +${drops.insert_failed}`);
  return { hping: hp, connects: conn, drops };
}

/**
 * Runs the incident. `log(line)` narrates. Returns the figures: table size, SYNs answered and
 * counters before and after, time to relief, and the table's use sampled every 100 ms.
 */
export async function runIncident({ log = (s) => console.log(s), unrepliedEvery = Number(process.env.INCIDENT_UNREPLIED_EVERY ?? 0) } = {}) {
  const tag = `${process.pid}`.slice(-5);
  const CLIENT = `ctpurge-incident-${tag}`;
  const PEER = `ctpurge-incident-peer-${tag}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-incident-'));
  let daemon = null;
  const cleanup = () => {
    daemon?.kill('SIGKILL');
    for (const ns of [CLIENT, PEER]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const max = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8'));
    for (const ns of [CLIENT, PEER]) {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    }
    run('ip', ['netns', 'exec', CLIENT, 'ip', 'link', 'add', 'veth-inc', 'type', 'veth', 'peer', 'name', 'veth-peer']);
    run('ip', ['netns', 'exec', CLIENT, 'ip', 'link', 'set', 'veth-peer', 'netns', PEER]);
    run('ip', ['netns', 'exec', CLIENT, 'ip', 'addr', 'add', '10.98.0.1/24', 'dev', 'veth-inc']);
    run('ip', ['netns', 'exec', CLIENT, 'ip', 'link', 'set', 'veth-inc', 'up']);
    run('ip', ['netns', 'exec', PEER, 'ip', 'addr', 'add', `${PEER_IP}/24`, 'dev', 'veth-peer']);
    run('ip', ['netns', 'exec', PEER, 'ip', 'link', 'set', 'veth-peer', 'up']);
    // Conntrack is active in the client (an nft rule that uses it), as on any host with a firewall.
    run('ip', ['netns', 'exec', CLIENT, 'nft', '-f', '-'], 'table inet incident {\n chain out {\n type filter hook output priority 0;\n ct state new counter\n }\n}\n');

    // 1. Fill: ASSURED ESTABLISHED flows silent for 8.9 h (and, if asked, stale UNREPLIED ones, 2 h).
    log(`filling ${CLIENT} to nf_conntrack_max (${max.toLocaleString('en-US')}, global; this namespace's count only)...`);
    const lines = [];
    for (let i = 0; i < max; i++) {
      const src = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      lines.push(unrepliedEvery > 0 && i % unrepliedEvery === 0
        ? `-I -p tcp -s ${src} -d 192.0.2.80 --sport ${1024 + (i % 60000)} --dport 80 --state ESTABLISHED -t 424800`
        : `-I -p tcp -s ${src} -d 192.0.2.5 --sport ${1024 + (i % 60000)} --dport 5432 --state ESTABLISHED -t 400000 -u SEEN_REPLY,ASSURED`);
    }
    writeFileSync(path.join(dir, 'fill'), `${lines.join('\n')}\n`);
    spawnSync('ip', ['netns', 'exec', CLIENT, 'conntrack', '-R', path.join(dir, 'fill')], { stdio: 'ignore' });
    const full = count(CLIENT);
    log(`table: ${full.toLocaleString('en-US')} of ${max.toLocaleString('en-US')} entries (${((full / max) * 100).toFixed(1)}%)`);

    // 2. New connections while it is full, watched by ctpurge top (one snapshot over the probe).
    const topArgs = ['top', '--once', '--interval', '2s', '--netns', CLIENT];
    const top = spawn(process.execPath, [BIN, ...topArgs], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CTPURGE_LOCK_DIR: dir } });
    let topOut = '';
    top.stdout.on('data', (d) => (topOut += d));
    const topDone = new Promise((r) => top.once('exit', r));
    await sleep(300);
    const probeBefore = probe(CLIENT, 30000, log);
    await topDone;
    log(`$ ctpurge ${topArgs.join(' ')}`);
    for (const line of topOut.split('\n').slice(1, 4)) if (line) log(`  ${line}`);

    // 3. The rescue.
    const args = ['--state', 'ESTABLISHED', '--idle', '1h', '--every', '1s', '--when-above', '90', '--adaptive', '--netns', CLIENT];
    log(`$ ctpurge ${args.join(' ')}`);
    const started = performance.now();
    daemon = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CTPURGE_LOCK_DIR: dir } });
    let out = '';
    daemon.stdout.on('data', (d) => (out += d));
    daemon.stderr.on('data', (d) => (out += d));
    const samples = [];
    let reliefMs = null;
    while (performance.now() - started < 60_000) {
      const n = count(CLIENT);
      const t = performance.now() - started;
      samples.push({ ms: Math.round(t), usage: n / max });
      if (reliefMs === null && n < 0.9 * max) reliefMs = Math.round(t);
      if (reliefMs !== null && t - reliefMs > 1500) break;
      await sleep(100);
    }
    if (reliefMs === null) throw new Error(`no relief within 60 s: ${out}`);
    log(`relief after ${(reliefMs / 1000).toFixed(2)} s (from starting ctpurge to the table under 90%)`);
    log(`table use over time: ${samples.filter((_, i) => i % 3 === 0).map((s) => `${(s.ms / 1000).toFixed(1)}s ${(s.usage * 100).toFixed(0)}%`).join(', ')}`);

    // 4. The same connections now.
    const probeAfter = probe(CLIENT, 40000, log);
    daemon.kill('SIGTERM');
    const code = await new Promise((r) => daemon.once('exit', r));
    daemon = null;
    log(`ctpurge said: ${out.trim().split('\n')[0]}`);
    return {
      max,
      full,
      hpingBefore: probeBefore.hping,
      before: probeBefore.connects,
      dropsBefore: probeBefore.drops,
      reliefMs,
      hpingAfter: probeAfter.hping,
      after: probeAfter.connects,
      dropsAfter: probeAfter.drops,
      samples,
      daemonExit: code,
      remaining: count(CLIENT),
    };
  } finally {
    cleanup();
  }
}
