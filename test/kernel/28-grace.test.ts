/**
 * --grace on real connections: in a namespace where a connection breaks at its next packet
 * once its entry is gone (nf_conntrack_tcp_loose=0 and `ct state invalid drop`), the
 * connections that speak within the grace keep working and the silent ones expire; the same
 * run without --grace breaks them all. Then what the kernel refuses or would undo (fixed
 * timeouts), entries due to expire sooner, dry runs, limits, the audit log and batches.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { ctpurge, startCtpurge } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { trafficPair } from '../helpers/traffic.js';

const PORT = 7400;
const CONNECTIONS = 12;
const TALKERS = 5;

/**
 * Connections from the client namespace to an echo server on the peer, driven over stdin:
 * "talk MS" makes the first TALKERS send a byte every MS ms; "probe" sends one byte on each and
 * prints which got it back within 1.5 s (a JSON array of booleans).
 */
const CLIENT = `
const net = require('node:net');
const [host, port, n, talkers] = process.argv.slice(1);
const socks = [];
let got = [];
let talk = null;
for (let i = 0; i < Number(n); i++) {
  const s = net.connect(Number(port), host);
  s.setNoDelay(true);
  s.on('error', () => {});
  s.on('data', (d) => { if (d.includes('p')) got[i] = true; });
  s.on('connect', () => { socks.push(s); if (socks.length === Number(n)) process.stdout.write('ready\\n'); });
}
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'talk') talk = setInterval(() => socks.slice(0, Number(talkers)).forEach((s) => s.write('x')), Number(arg));
  if (cmd === 'quiet') clearInterval(talk);
  if (cmd === 'probe') {
    got = [];
    socks.forEach((s) => s.write('p'));
    setTimeout(() => process.stdout.write(JSON.stringify(socks.map((_, i) => got[i] === true)) + '\\n'), 1500);
  }
});
`;

interface Clients {
  child: ChildProcessWithoutNullStreams;
  line(): Promise<string>;
  send(cmd: string): void;
}

function startClients(ns: TestNetns, host: string): Clients {
  // The test runs in the host's namespace: the clients' sockets must be in the client's.
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', CLIENT, host, String(PORT), String(CONNECTIONS), String(TALKERS)], { stdio: 'pipe' });
  let buf = '';
  const waiting: ((l: string) => void)[] = [];
  const lines: string[] = [];
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  return {
    child,
    line: () => {
      const l = lines.shift();
      if (l !== undefined) return Promise.resolve(l);
      return new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no line from the clients in 15 s')), 15_000);
        waiting.push((x) => {
          clearTimeout(t);
          resolve(x);
        });
      });
    },
    send: (cmd) => child.stdin.write(`${cmd}\n`),
  };
}

describeKernel('--grace on real connections: the live ones keep working, the silent ones expire', () => {
  let client: TestNetns;
  let peer: TestNetns;
  let peerIp: string;
  let server: ChildProcessWithoutNullStreams;
  let clients: Clients | undefined;

  beforeAll(async () => {
    ({ client, peer, peerIp } = trafficPair({ peerAnswers: true }));
    // A packet without an entry is INVALID (no mid-stream pickup) and dropped: a connection
    // whose entry is gone breaks at its next packet.
    client.sysctl('net.netfilter.nf_conntrack_tcp_loose', 0);
    client.exec('nft', ['-f', '-'], 'table inet g {\n chain o {\n type filter hook output priority 0;\n ct state invalid drop\n }\n chain i {\n type filter hook input priority 0;\n ct state invalid drop\n }\n}\n');
    server = spawn('ip', ['netns', 'exec', peer.name, process.execPath, '-e', `require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(${PORT})`], { stdio: 'pipe' });
    for (let i = 0; i < 50; i++) {
      if (peer.exec('ss', ['-ltn']).includes(`:${PORT}`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterEach(() => {
    clients?.child.kill('SIGKILL');
    clients = undefined;
  });
  afterAll(() => {
    server?.kill('SIGKILL');
    client?.destroy();
    peer?.destroy();
  });

  async function connect(): Promise<Clients> {
    const c = startClients(client, peerIp);
    expect(await c.line()).toBe('ready');
    c.send('probe');
    expect(JSON.parse(await c.line())).toEqual(Array(CONNECTIONS).fill(true));
    return c;
  }

  it('with --grace 3s: the talkers stay and work, the silent ones expire; the run says so', async () => {
    clients = await connect();
    clients.send('talk 400');
    const r = ctpurge(['--netns', client.name, '--state', 'ESTABLISHED', '--dport', String(PORT), '--grace', '3s', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout) as { graced: number; deleted: number; grace: number; graceOutcome: { expired: number; alive: number } };
    expect(summary).toMatchObject({ grace: 3, graced: CONNECTIONS, deleted: 0, graceOutcome: { expired: CONNECTIONS - TALKERS, alive: TALKERS } });
    clients.send('quiet');
    clients.send('probe');
    const works = JSON.parse(await clients.line()) as boolean[];
    expect(works).toEqual(Array.from({ length: CONNECTIONS }, (_, i) => i < TALKERS));
  }, 30_000);

  it('the contrast: the same run without --grace deletes them all, and every one breaks, the talkers too', async () => {
    clients = await connect();
    clients.send('talk 400');
    const r = ctpurge(['--netns', client.name, '--state', 'ESTABLISHED', '--dport', String(PORT), '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: CONNECTIONS });
    clients.send('quiet');
    clients.send('probe');
    expect(JSON.parse(await clients.line())).toEqual(Array(CONNECTIONS).fill(false));
  }, 30_000);

  it('the text summary says how many got the grace, then what became of them', async () => {
    clients = await connect();
    const r = ctpurge(['--netns', client.name, '--state', 'ESTABLISHED', '--dport', String(PORT), '--grace', '2s']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^gave ${CONNECTIONS} of \\d+ entries 2 s to show a packet \\(${CONNECTIONS} matched, 0 vanished\\) in [\\d.]+ s$`));
    expect(lines[1]).toBe(`after the grace: ${CONNECTIONS} expired, 0 proved alive`);
  }, 30_000);
});

describeKernel('--grace: what it leaves as it is, dry runs, limits, the audit log and batches', () => {
  let ns: TestNetns;
  let dir: string;
  const N = 6000;

  freshNetnsAndDir('ctpurge-grace-', (n, d) => {
    ns = n;
    dir = d;
  }, 'all');

  /** N UDP entries with 600 s left; every 10th with a fixed timeout, every 10th+1 with 5 s left. */
  function load(): void {
    ns.exec('conntrack', ['-F']);
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const t = i % 10 === 1 ? 5 : 600;
      lines.push(`-I -p udp -s 10.8.${i >> 8}.${i & 255} -d 10.9.0.1 --sport 4000 --dport 53 -t ${t}${i % 10 === 0 ? ' -u FIXED_TIMEOUT' : ''}`);
    }
    ns.load(lines);
    expect(ns.conntrackCount()).toBe(N);
  }

  /** Seconds left of each entry, by source address. */
  function timeouts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const line of ns.conntrackList(['-p', 'udp'])) {
      const m = /^udp\s+17\s+(\d+)\s+src=(\S+)/.exec(line);
      if (m) out.set(m[2] as string, Number(m[1]));
    }
    return out;
  }

  it('gives every other match the grace in batches; fixed timeouts and entries due sooner are counted and left as they are', async () => {
    load();
    const ct = await Conntrack.open({ netns: ns.path });
    try {
      const r = await ct.purge({ protocol: 'udp', dport: 53, grace: 30 });
      expect(r).toMatchObject({ grace: 30, matched: N, deleted: 0, graced: N * 0.8, fixedTimeout: N / 10, expiring: N / 10, offloaded: 0, vanished: 0, method: 'dump' });
      expect(typeof r.settle).toBe('function');
    } finally {
      await ct.close();
    }
    const left = timeouts();
    expect(left.size).toBe(N);
    for (const [src, t] of left) {
      const i = (Number(src.split('.')[2]) << 8) + Number(src.split('.')[3]);
      if (i % 10 === 0) expect(t, src).toBeGreaterThan(500);
      else if (i % 10 === 1) expect(t, src).toBeLessThanOrEqual(5);
      else expect(t, src).toBeLessThanOrEqual(30);
    }
  });

  it('a dry run counts the same and changes nothing; a limit caps the updates', async () => {
    load();
    const dry = ctpurge(['--netns', ns.name, '--proto', 'udp', '--dport', '53', '--grace', '30s', '--dry-run', '--json']);
    expect(dry.status).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, matched: N, graced: 0, fixedTimeout: N / 10, expiring: N / 10 });
    expect([...timeouts().values()].filter((t) => t <= 30).length).toBe(N / 10);
    const limited = ctpurge(['--netns', ns.name, '--proto', 'udp', '--dport', '53', '--grace', '30s', '--limit', '100', '--no-wait', '--json']);
    expect(limited.status).toBe(0);
    expect(JSON.parse(limited.stdout)).toMatchObject({ graced: 100, limitReached: true });
    expect([...timeouts().values()].filter((t) => t <= 30).length).toBe(N / 10 + 100);
  });

  it('--log writes each graced entry before its update, with "grace"; the grace ends and they expire', () => {
    load();
    const file = path.join(dir, 'audit.log');
    const r = ctpurge(['--netns', ns.name, '--proto', 'udp', '--src', '10.8.0.0/24', '--grace', '2s', '--log', file, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout) as { graced: number; graceOutcome: { expired: number; alive: number } };
    // 256 matches: 26 with a fixed timeout; the ones with 5 s left get the shorter 2 s.
    expect(summary.graced).toBe(230);
    expect(summary.graceOutcome).toEqual({ expired: 230, alive: 0, complete: true });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { grace: number; orig: { src: string } });
    expect(lines).toHaveLength(230);
    expect(lines.every((l) => l.grace === 2 && l.orig.src.startsWith('10.8.0.'))).toBe(true);
    // The graced ones are gone; the fixed ones of that range stay.
    const left = [...timeouts().keys()].filter((s) => s.startsWith('10.8.0.'));
    expect(left).toHaveLength(26);
    expect(left.every((s) => Number(s.split('.')[3]) % 10 === 0)).toBe(true);
  }, 30_000);

  it('the daemon: each run graces, and the metrics count what expired once the grace is over', async () => {
    load();
    const prom = path.join(dir, 'grace.prom');
    const d = startCtpurge(['--netns', ns.name, '--proto', 'udp', '--src', '10.8.1.0/24', '--grace', '1s', '--every', '1s', '--metrics-file', prom]);
    try {
      const series = () => {
        const text = existsSync(prom) ? readFileSync(prom, 'utf8') : '';
        const get = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
        return { graced: get('ctpurge_entries_graced_total'), expired: get('ctpurge_grace_expired_total'), alive: get('ctpurge_grace_alive_total') };
      };
      // 256 in the range: 26 with a fixed timeout stay; the rest get 1 s and expire.
      await waitFor('the grace of the first run to be counted', () => series().expired === 230, 15_000);
      expect(series()).toEqual({ graced: 230, expired: 230, alive: 0 });
      expect(d.out()).toMatch(/ gave 230 of [\d,]+ entries 1 s to show a packet .*\(run [0-9a-f]{12}\)/);
      expect(d.out()).toMatch(/ after the grace: 230 expired, 0 proved alive \(run [0-9a-f]{12}\)/);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
    }
    expect(d.err()).toBe('');
    // Runs that gave nothing say nothing about a grace.
    expect(d.out().match(/after the grace/g)).toHaveLength(1);
  }, 30_000);

  it('a SIGTERM during the wait ends it: what expired so far is said, and that the wait was cut short', async () => {
    load();
    const run = startCtpurge(['--netns', ns.name, '--proto', 'udp', '--src', '10.8.2.0/24', '--grace', '30s']);
    await waitFor('the grace to be given', () => /^gave \d+ of /.test(run.out()), 10_000);
    const graced = Number(/^gave (\d+) of /.exec(run.out())?.[1]);
    // 256 in the range, less 25 with a fixed timeout and 25 due within 30 s anyway.
    expect(graced).toBe(206);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.out()).toMatch(new RegExp(`\\nthe wait for the grace was cut short: 0 expired so far, ${graced} not yet\\n$`));
  }, 20_000);

  it('bad --grace values are usage errors naming the option; the table is untouched', () => {
    load();
    for (const [args, re] of [
      [['--grace', '0'], /^ctpurge: --grace: expected 1s to 5m in whole seconds/],
      [['--grace', '6m'], /^ctpurge: --grace: expected 1s to 5m/],
      [['--grace', '1.5s'], /^ctpurge: --grace: expected 1s to 5m in whole seconds/],
      [['--grace', 'soon'], /^ctpurge: --grace: /],
      [['--no-wait'], /^ctpurge: --no-wait needs --grace/],
    ] as [string[], RegExp][]) {
      const r = ctpurge(['--netns', ns.name, '--proto', 'udp', '--dport', '53', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect([...timeouts().values()].filter((t) => t <= 30).length).toBe(N / 10);
  });
});
