import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { ctpurge } from '../helpers/cli.js';
import { seriesOf } from '../helpers/prometheus.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { trafficPair } from '../helpers/traffic.js';

// The hazard of issue 12: with nf_conntrack_timestamp=1 (which doctor recommends), an age
// is the time since creation, so `--state ESTABLISHED --older N` takes a busy connection
// that is N old. `--idle N` is the time since the last packet: a busy flow never matches.
const PORT = 8080;
const WAIT_S = 4;
const THRESHOLD = 3;

/** A real TCP connection that sends one byte every 200 ms: busy, ASSURED, ESTABLISHED. */
function busyConnection(pair: ReturnType<typeof trafficPair>): { server: ChildProcess; client: ChildProcess } {
  const server = spawn('ip', ['netns', 'exec', pair.peer.name, '/usr/bin/python3', '-c', `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${pair.peerIp}', ${PORT})); s.listen(1); print('ready', flush=True)
c, _ = s.accept()
while c.recv(64): pass
`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const client = spawn('ip', ['netns', 'exec', pair.client.name, '/usr/bin/python3', '-c', `
import socket, time
for _ in range(100):
    try:
        c = socket.create_connection(('${pair.peerIp}', ${PORT}), timeout=1); break
    except OSError: time.sleep(0.05)
while True:
    c.sendall(b'x'); time.sleep(0.2)
`], { stdio: 'ignore' });
  return { server, client };
}

function lines(ns: TestNetns): string[] {
  return ns.conntrackList(['-p', 'tcp']);
}

/**
 * For a describe block: a traffic pair whose client namespace, once `setup` has run on it, holds
 * the busy connection (ASSURED) and a flow whose peer vanished (ASSURED ESTABLISHED, silent for
 * 2 h: 432,000 - 424,800 s), then `settleMs` of traffic; all removed after the block.
 */
function busyFlowLab(setup: (pair: ReturnType<typeof trafficPair>) => void, settleMs: number): () => ReturnType<typeof trafficPair> {
  let pair: ReturnType<typeof trafficPair>;
  let procs: { server: ChildProcess; client: ChildProcess } | undefined;
  beforeAll(async () => {
    pair = trafficPair({ peerAnswers: true });
    setup(pair);
    procs = busyConnection(pair);
    pair.client.load(['-I -p tcp -s 10.99.0.1 -d 192.0.2.7 --sport 40000 --dport 5432 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED']);
    const t0 = Date.now();
    while (!lines(pair.client).some((l) => l.includes(`dport=${PORT}`) && l.includes('[ASSURED]'))) {
      if (Date.now() - t0 > 10_000) throw new Error(`no ASSURED flow to port ${PORT}: ${lines(pair.client).join('\n')}`);
      await sleep(100);
    }
    await sleep(settleMs);
  }, 30_000);
  afterAll(() => {
    procs?.client.kill('SIGKILL');
    procs?.server.kill('SIGKILL');
    pair?.client.destroy();
    pair?.peer.destroy();
  });
  return () => pair;
}

describeKernel('--idle versus --older, with timestamps on and a real busy flow', () => {
  const lab = busyFlowLab((p) => p.client.sysctl('net.netfilter.nf_conntrack_timestamp', 1), WAIT_S * 1000);
  let pair: ReturnType<typeof trafficPair>;
  beforeAll(() => {
    pair = lab();
  });

  it('list shows both times with their sources: the busy flow is old but not idle', async () => {
    const ct = await Conntrack.open({ netns: pair.client.name });
    try {
      const entries = [];
      for await (const e of ct.list({ protocol: 'tcp', state: 'ESTABLISHED' })) entries.push(e);
      const busy = entries.find((e) => e.orig.dport === PORT);
      const gone = entries.find((e) => e.orig.dport === 5432);
      expect(busy).toMatchObject({ ageSource: 'timestamp', idleSource: 'timeout' });
      expect(busy?.age).toBeGreaterThanOrEqual(WAIT_S);
      expect(busy?.idle).toBeLessThan(1.5);
      expect(gone).toMatchObject({ ageSource: 'timestamp', idleSource: 'timeout' });
      expect(gone?.idle).toBeGreaterThanOrEqual(7199);
      expect(await ct.count({ state: 'ESTABLISHED', idleFor: THRESHOLD })).toBe(1);
      expect(await ct.count({ state: 'ESTABLISHED', olderThan: THRESHOLD })).toBe(2);
    } finally {
      await ct.close();
    }
    // NDJSON from C++ carries the same fields.
    const json = ctpurge(['list', '--netns', pair.client.name, '--json', '--proto', 'tcp']);
    const busy = json.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.orig.dport === PORT);
    expect(busy).toMatchObject({ ageSource: 'timestamp', idleSource: 'timeout' });
    expect(busy.idle).toBeLessThan(1.5);
    const table = ctpurge(['list', '--netns', pair.client.name, '--proto', 'tcp']);
    expect(table.stdout.split('\n')[0]).toMatch(/TIMEOUT\s+IDLE\s+AGE\s+AGE FROM/);
  });

  it('-o conntrack prints the lines conntrack -L prints, delta-time included', () => {
    const ours = ctpurge(['list', '--netns', pair.client.name, '-o', 'conntrack', '--proto', 'tcp']).stdout.trim().split('\n');
    const theirs = lines(pair.client);
    // Normalised: conntrack's use= (a refcount) is not ours to print; the timeout and the
    // delta-time may tick between the two dumps.
    const norm = (l: string) => l.replace(/ use=\d+/, '').replace(/^(tcp\s+6 )\d+/, '$1T').replace(/delta-time=\d+/, 'delta-time=D').replace(/\s+/g, ' ');
    expect(ours.every((l) => / delta-time=\d+$/.test(l))).toBe(true);
    expect(ours.map(norm).sort()).toEqual(theirs.map(norm).sort());
    const delta = (l: string) => Number(/delta-time=(\d+)/.exec(l)?.[1]);
    const busyOurs = ours.find((l) => l.includes(`dport=${PORT} `)) as string;
    const busyTheirs = theirs.find((l) => l.includes(`dport=${PORT} `)) as string;
    expect(Math.abs(delta(busyOurs) - delta(busyTheirs))).toBeLessThanOrEqual(1);
  });

  it('--idle takes the silent flow and never the busy one; --older takes the busy one too', () => {
    const idle = ctpurge(['--netns', pair.client.name, '--state', 'ESTABLISHED', '--idle', String(THRESHOLD), '--json']);
    expect(idle.status, idle.stderr).toBe(0);
    expect(JSON.parse(idle.stdout)).toMatchObject({ matched: 1, deleted: 1 });
    expect(lines(pair.client).some((l) => l.includes('dport=5432'))).toBe(false);
    expect(lines(pair.client).some((l) => l.includes(`dport=${PORT} `))).toBe(true);
    // With a threshold of 2 s: still busy, still not idle (the kernel reports whole seconds
    // left, rounded down, so a flow that just sent shows 1 s idle).
    const again = ctpurge(['--netns', pair.client.name, '--state', 'ESTABLISHED', '--idle', '2', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ matched: 0, deleted: 0 });
    const older = ctpurge(['--netns', pair.client.name, '--state', 'ESTABLISHED', '--older', String(THRESHOLD), '--json']);
    expect(older.status, older.stderr).toBe(0);
    expect(JSON.parse(older.stdout)).toMatchObject({ matched: 1, deleted: 1 });
    // The busy connection, deleted mid-flow, comes back as a new entry (loose pickup),
    // which is exactly why --older is the wrong tool for ESTABLISHED flows.
  });

  it('--idle rejects a bad duration with a one-line error naming it, before touching the table', () => {
    // (The busy flow's own entry comes and goes as the tests delete it: watch a still one.)
    pair.client.load(['-I -p udp -s 10.99.0.1 -d 192.0.2.9 --sport 1000 --dport 6000 -t 100']);
    for (const bad of [['--idle', 'soon'], ['--idle', '-5'], ['--idle']]) {
      const r = ctpurge(['--netns', pair.client.name, '--proto', 'udp', ...bad]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--idle/);
    }
    expect(pair.client.conntrackList(['-p', 'udp']).filter((l) => l.includes('dport=6000'))).toHaveLength(1);
  });
});

// A timeout policy gives a flow a timeout of its own: a busy flow under an hour's policy has
// 3,599 s left, which the sysctls alone (432,000 s) read as 5 days idle. The namespace's
// policies are candidates too: nft ct timeout objects (real traffic), cttimeout objects (nfct).
describeKernel('--idle with timeout policies: a busy flow under a short policy is never idle', () => {
  const lab = busyFlowLab(
    (p) =>
      p.client.exec('nft', ['-f', '-'], `table ip ctp_policy {
  ct timeout est1h { protocol tcp; l3proto ip; policy = { established: 3600 }; }
  chain out { type filter hook output priority 0; policy accept; tcp dport ${PORT} ct timeout set "est1h"; }
}
`),
    1500,
  );
  let pair: ReturnType<typeof trafficPair>;
  beforeAll(() => {
    pair = lab();
  });

  it('the busy flow has the policy\'s timeout, reads as idle for about a second, and --idle 6h keeps it', async () => {
    const json = ctpurge(['list', '--netns', pair.client.name, '--json', '--proto', 'tcp']);
    const entries = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const busy = entries.find((e) => e.orig.dport === PORT);
    // The policy's timeout (not the sysctl's 432,000 s): the policy applies.
    expect(busy.timeout).toBeGreaterThan(3590);
    expect(busy.timeout).toBeLessThanOrEqual(3600);
    expect(busy).toMatchObject({ idleSource: 'timeout' });
    expect(busy.idle).toBeLessThan(2);
    expect(entries.find((e) => e.orig.dport === 5432).idle).toBeGreaterThanOrEqual(7199);
    const doctor = ctpurge(['doctor', '--netns', pair.client.name]);
    expect(doctor.stdout).toMatch(/1 timeout policy \(counted in idle estimates\)/);
    const purge = ctpurge(['--netns', pair.client.name, '--state', 'ESTABLISHED', '--idle', '6h', '--json']);
    expect(purge.status, purge.stderr).toBe(0);
    expect(JSON.parse(purge.stdout)).toMatchObject({ matched: 0, deleted: 0 });
    const hour = ctpurge(['--netns', pair.client.name, '--state', 'ESTABLISHED', '--idle', '1h', '--json']);
    expect(JSON.parse(hour.stdout)).toMatchObject({ matched: 1, deleted: 1 });
    expect(lines(pair.client).some((l) => l.includes(`dport=${PORT} `))).toBe(true);
    expect(lines(pair.client).some((l) => l.includes('dport=5432'))).toBe(false);
  });

  it('a UDP entry whose helper set its timeout (sip: sip_timeout, 3,600 s) has an unknown idle time; over TCP the tracker\'s timeout stands', () => {
    const ns = TestNetns.create('ctp-sip');
    try {
      // udp_timeout_stream above sip_timeout: the sysctls alone would read the SIP entry's
      // 3,599 s left as 100 s idle, right after its packet.
      ns.sysctl('net.netfilter.nf_conntrack_udp_timeout_stream', 3700);
      ns.exec('nft', ['-f', '-'], `table ip ctp_sip {
  ct helper sip_udp { type "sip" protocol udp; }
  ct helper sip_tcp { type "sip" protocol tcp; }
  chain out { type filter hook output priority 0; policy accept; udp dport 5060 ct helper set "sip_udp"; tcp dport 5060 ct helper set "sip_tcp"; }
}
`);
      ns.exec('/usr/bin/python3', ['-c', `
import socket, time
sip = b'OPTIONS sip:x@127.0.0.1 SIP/2.0\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n'
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sip, ('127.0.0.1', 5060))
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(('127.0.0.1', 5060)); srv.listen(1)
c = socket.create_connection(('127.0.0.1', 5060)); a, _ = srv.accept()
c.sendall(sip); a.recv(1000); a.sendall(b'SIP/2.0 200 OK\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n'); c.recv(1000)
time.sleep(0.3)
`]);
      const entries = ctpurge(['list', '--netns', ns.name, '--json']).stdout.trim().split('\n').map((l) => JSON.parse(l));
      const udp = entries.find((e) => e.protocol === 'udp' && e.orig.dport === 5060);
      const tcp = entries.find((e) => e.protocol === 'tcp' && e.orig.dport === 5060);
      expect(ns.conntrackList(['-p', 'udp']).join('\n')).toMatch(/helper=sip/);
      // The helper's own timeout, not udp_timeout_stream's 3,700 s.
      expect(udp.timeout).toBeGreaterThan(3590);
      expect(udp.timeout).toBeLessThanOrEqual(3600);
      expect(udp).toMatchObject({ idle: null, idleSource: 'unknown' });
      expect(tcp).toMatchObject({ idleSource: 'timeout' });
      expect(tcp.idle).toBeLessThan(5);
      const purge = ctpurge(['--netns', ns.name, '--proto', 'udp', '--idle', '1m', '--json']);
      expect(JSON.parse(purge.stdout)).toMatchObject({ matched: 0, deleted: 0 });
    } finally {
      ns.destroy();
    }
  });

  it('a cttimeout policy (nfct, as iptables CT --timeout uses) counts as well', () => {
    const ns = TestNetns.create('ctp-cttimeout');
    try {
      ns.load(['-I -p udp -s 10.99.0.1 -d 192.0.2.9 --sport 1000 --dport 6000 -t 3590']);
      const idle = () => JSON.parse(ctpurge(['list', '--netns', ns.name, '--json']).stdout.trim()).idle;
      // 3,590 s left is more than any UDP sysctl (30 s, 120 s): unknown.
      expect(idle()).toBeNull();
      ns.exec('nfct', ['add', 'timeout', 'udp1h', 'inet', 'udp', 'unreplied', '3600']);
      const withPolicy = idle();
      expect(withPolicy).toBeGreaterThanOrEqual(10);
      expect(withPolicy).toBeLessThan(20);
    } finally {
      ns.destroy();
    }
  });
});

describeKernel('doctor names the cause from the table, and its command does what it says', () => {
  let ns: TestNetns;
  beforeAll(() => {
    ns = TestNetns.create('ctp-doc');
    const lines: string[] = [];
    // 300 ASSURED ESTABLISHED entries silent for 8.9 h (432,000 - 400,000 s), 100 busy ones.
    for (let i = 0; i < 400; i++) {
      lines.push(`-I -p tcp -s 10.7.${i >> 8}.${i & 255} -d 192.0.2.5 --sport ${30000 + i} --dport 5432 --state ESTABLISHED -t ${i < 300 ? 400000 : 431990} -u SEEN_REPLY,ASSURED`);
    }
    ns.load(lines);
  });
  afterAll(() => ns?.destroy());

  it('"75.0% of entries are ASSURED ESTABLISHED idle over 6 h", and the --idle purge it gives takes exactly those', () => {
    const d = ctpurge(['doctor', '--netns', ns.name, '--json']);
    expect(d.status, d.stderr).toBe(0);
    const report = JSON.parse(d.stdout);
    expect(report.idleEstablished).toBe(300);
    const f = report.findings.find((x: { title: string }) => x.title.includes('idle over 6 h'));
    expect(f.title).toBe('75.0% of entries are ASSURED ESTABLISHED idle over 6 h: peers that vanished');
    expect(f.commands[0]).toBe(`ctpurge --state ESTABLISHED --idle 6h --dry-run --netns ${ns.name}`);
    // The metrics see the same shape (a one-shot dry run writes them too).
    const prom = path.join(os.tmpdir(), `ctpurge-doc-${process.pid}.prom`);
    try {
      const dry = ctpurge(['--state', 'ESTABLISHED', '--dry-run', '--metrics-file', prom, '--netns', ns.name]);
      expect(dry.status, dry.stderr).toBe(0);
      const text = readFileSync(prom, 'utf8');
      const label = `netns="${ns.name}"`;
      expect(seriesOf(text, 'ctpurge_table_entries_by_state').get(`${label},state="ESTABLISHED"`)).toBe(400);
      const idle = seriesOf(text, 'ctpurge_table_entries_by_idle');
      expect(idle.get(`idle="6h-1d",${label}`)).toBe(300);
      expect(idle.get(`idle="<1m",${label}`)).toBe(100);
      expect([...idle.values()].reduce((a, b) => a + b, 0)).toBe(400);
    } finally {
      rmSync(prom, { force: true });
    }
    // Run the suggested command (without ctpurge's own name), as an operator would.
    const purge = ctpurge([...(f.commands[1] as string).split(' ').slice(1), '--json']);
    expect(JSON.parse(purge.stdout)).toMatchObject({ matched: 300, deleted: 300 });
    expect(ns.conntrackCount()).toBe(100);
    const stats = ctpurge(['stats', '--netns', ns.name]);
    expect(stats.stdout).toMatch(/what would free space/);
  });
});
