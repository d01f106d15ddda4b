import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, acquirePurgeLock, type ConntrackEvent } from '../../src/index.js';
import { BIN, ctpurge, startCtpurge } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { hpingAcks, trafficPair } from '../helpers/traffic.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { staleTcpLine } from '../helpers/seed.js';

const STALE = (i: number) => staleTcpLine(i, 1);

function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

const daemon = startCtpurge;

describeKernel('the daemon (--every), metrics, locks and signals', () => {
  let ns: TestNetns;
  let dir: string;
  const lockEnv = () => ({ CTPURGE_LOCK_DIR: path.join(dir, 'locks') });
  freshNetnsAndDir('ctpurge-daemon-', (n, d) => {
    ns = n;
    dir = d;
  });

  it('purges entries as they go stale, keeps the metrics file valid, and stops cleanly on SIGTERM', async () => {
    const prom = path.join(dir, 'm.prom');
    // Entries go stale while the daemon runs: with timestamps on, an entry's age is exact.
    ns.sysctl('net.netfilter.nf_conntrack_timestamp', 1);
    ns.load(Array.from({ length: 300 }, (_, i) => STALE(i)));
    const d = daemon(['--unreplied', '--older', '2', '--every', '500ms', '--metrics-file', prom, '--netns', ns.name], lockEnv());
    try {
      await waitFor(() => existsSync(prom), 10_000, 'the first metrics file');
      // Young at first: nothing to purge.
      expect(ns.conntrackCount()).toBe(300);
      await waitFor(() => ns.conntrackCount() === 0, 15_000, 'the entries to go stale and be purged');
      // New entries arrive and go stale in turn.
      ns.load(Array.from({ length: 200 }, (_, i) => STALE(1000 + i)));
      await waitFor(() => ns.conntrackCount() === 0, 15_000, 'the second wave');
      let previous = parsePrometheus(readFileSync(prom, 'utf8'));
      await new Promise((r) => setTimeout(r, 1200));
      const now = parsePrometheus(readFileSync(prom, 'utf8'));
      for (const [name, v] of previous) if (v.type === 'counter') expect(now.get(name)!.value).toBeGreaterThanOrEqual(v.value);
      expect(now.get('ctpurge_entries_deleted_total')!.value).toBe(500);
      expect(now.get('ctpurge_runs_total')!.value).toBeGreaterThan(previous.get('ctpurge_runs_total')!.value);
      previous = now;
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
      const final = parsePrometheus(readFileSync(prom, 'utf8'));
      expect(final.get('ctpurge_runs_total')!.value).toBeGreaterThanOrEqual(previous.get('ctpurge_runs_total')!.value);
      expect(d.out()).toMatch(/purged 300 of 300 entries/);
      expect(d.err()).toBe('');
    } finally {
      d.child.kill('SIGKILL');
    }
  });

  it('serves /metrics on loopback while running', async () => {
    const port = 20000 + (process.pid % 20000);
    const d = daemon(['--unreplied', '--every', '1s', '--metrics-listen', String(port), '--netns', ns.name], lockEnv());
    try {
      let body = '';
      await waitFor(() => d.out().includes('purged'), 10_000, 'the first run');
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      body = await res.text();
      expect(res.status).toBe(200);
      expect(parsePrometheus(body).get('ctpurge_runs_total')!.value).toBeGreaterThanOrEqual(1);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
    }
  });

  it('SIGTERM during a big purge finishes the batch in flight and exits 0', async () => {
    ns.load(Array.from({ length: 60000 }, (_, i) => STALE(i)));
    const d = daemon(['--unreplied', '--older', '1h', '--every', '1h', '--netns', ns.name, '--json'], lockEnv());
    // Once deletions have started the daemon's handlers are in place (a slow start, e.g.
    // under the sanitizers, would otherwise meet the signal's default action).
    await waitFor(() => ns.conntrackCount() < 60000, 20_000, 'the purge to start');
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    // Deletions had started (waited for above): fewer than 60,000 are left.
    const left = ns.conntrackCount();
    expect(left).toBeLessThan(60000);
    // Whatever was reported as deleted is really gone.
    const lines = d.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const deleted = lines.reduce((n, l) => n + (l.result?.deleted ?? 0), 0);
    expect(60000 - left).toBe(deleted);
  });

  it('a concurrent one-shot waits for the lock, then refuses clearly', async () => {
    const lock = await acquirePurgeLock(ns.path, 1, { dir: path.join(dir, 'locks') });
    try {
      const t0 = Date.now();
      const r = ctpurge(['--unreplied', '--netns', ns.name, '--lock-wait', '1s'], lockEnv());
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toMatch(new RegExp(`^ctpurge: another ctpurge is purging ${ns.path} \\(pid ${process.pid}\\)`));
    } finally {
      lock.release();
    }
    // The same namespace by /proc path shares the lock.
    const holder = daemon(['--unreplied', '--older', '1h', '--every', '1h', '--netns', ns.name], lockEnv());
    try {
      await waitFor(() => holder.out().includes('purged'), 10_000, 'the daemon\'s run');
    } finally {
      holder.child.kill('SIGTERM');
      await holder.exited;
    }
    expect(ctpurge(['--unreplied', '--netns', ns.name], lockEnv()).status).toBe(0);
  });

  it('kill -9 leaves no stale lock: the next run completes with the right counts', async () => {
    ns.load(Array.from({ length: 40000 }, (_, i) => STALE(i)));
    // A process killed while it holds the lock: the kernel drops an flock with its holder.
    const holder = spawn(process.execPath, ['--input-type=module', '-e',
      `import { acquirePurgeLock } from ${JSON.stringify(path.resolve(BIN, '../../dist/index.js'))};
       await acquirePurgeLock(${JSON.stringify(ns.path)}, 1, { dir: ${JSON.stringify(path.join(dir, 'locks'))} });
       console.log('locked'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout?.on('data', (b: Buffer) => b.toString().includes('locked') && resolve()));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.on('exit', r));
    // And a daemon killed in the middle of its purge.
    const d = daemon(['--unreplied', '--older', '1h', '--every', '1h', '--netns', ns.name], lockEnv());
    await waitFor(() => ns.conntrackCount() < 40000, 20_000, 'the purge to start');
    d.child.kill('SIGKILL');
    await d.exited;
    const left = ns.conntrackCount();
    const r = ctpurge(['--unreplied', '--older', '1h', '--netns', ns.name, '--json', '--lock-wait', '2s'], lockEnv());
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: left, tableSize: left });
    expect(ns.conntrackCount()).toBe(0);
  });
});

describeKernel('events', () => {
  let pair: ReturnType<typeof trafficPair>;
  let ct: Conntrack;
  beforeAll(async () => {
    pair = trafficPair();
    ct = await Conntrack.open({ netns: pair.client.name });
  });
  afterAll(async () => {
    await ct?.close();
    pair?.client.destroy();
    pair?.peer.destroy();
  });

  it('sees new entries from real traffic and their destruction', async () => {
    const ac = new AbortController();
    const seen: ConntrackEvent[] = [];
    const done = (async () => {
      for await (const ev of ct.events({ query: { protocol: 'tcp', dport: 80 }, signal: ac.signal })) seen.push(ev);
    })();
    await new Promise((r) => setTimeout(r, 300));
    hpingAcks(pair.client, pair.peerIp, 50, 30000);
    await waitFor(() => seen.filter((e) => e.type === 'new').length >= 40, 10_000, 'new events');
    await ct.purge({ protocol: 'tcp', dport: 80, olderThan: 0 });
    await waitFor(() => seen.filter((e) => e.type === 'destroy').length >= 40, 10_000, 'destroy events');
    ac.abort();
    await done;
    const news = seen.filter((e): e is Extract<ConntrackEvent, { entry: unknown }> => e.type === 'new');
    expect(news.every((e) => e.entry.orig.dport === 80 && e.entry.orig.dst === pair.peerIp)).toBe(true);
    expect(seen.some((e) => e.type === 'lost')).toBe(false);
  });

  it('reports lost events when the receive buffer overflows', async () => {
    const it = ct.events({ types: ['new'], receiveBuffer: 4096 });
    // The first read subscribes; one event completes it.
    const first = it.next();
    await new Promise((r) => setTimeout(r, 300));
    pair.client.load(['-I -p udp -s 10.60.255.1 -d 10.61.0.1 --sport 1000 --dport 53 -t 60']);
    const r = await first;
    expect(r.done).toBe(false);
    // Nobody reads now: a burst far larger than the 4 KiB buffer overflows it.
    pair.client.load(Array.from({ length: 5000 }, (_, i) => `-I -p udp -s 10.60.${i >> 8}.${i & 255} -d 10.61.0.1 --sport 1000 --dport 53 -t 60`));
    const next = await it.next();
    await it.return?.(undefined);
    expect(next.done).toBe(false);
    expect(next.value).toMatchObject({ type: 'lost' });
    expect((next.value as { count: number }).count).toBeGreaterThan(0);
  });

  it('ctpurge watch prints events and stops on SIGTERM', async () => {
    const d = daemon(['watch', '--netns', pair.client.name, '--proto', 'udp', '--json']);
    await new Promise((r) => setTimeout(r, 500));
    pair.client.load(['-I -p udp -s 10.70.0.1 -d 10.70.0.2 --sport 5 --dport 6 -t 60']);
    await waitFor(() => d.out().includes('10.70.0.1'), 10_000, 'the watch line');
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const line = JSON.parse(d.out().trim().split('\n').find((l) => l.includes('10.70.0.1')) as string);
    expect(line).toMatchObject({ type: 'new', entry: { protocol: 'udp', orig: { src: '10.70.0.1', dport: 6 } } });
  });
});

describeKernel('systemd units', () => {
  it('systemd-analyze verify accepts them where it is available', () => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
    if (which.status !== 0) {
      // Not installed on this machine: the unit files are still checked for the essentials.
      const unit = readFileSync(path.resolve(BIN, '../../deploy/systemd/ctpurge.service'), 'utf8');
      expect(unit).toMatch(/^AmbientCapabilities=CAP_NET_ADMIN$/m);
      expect(unit).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN$/m);
      expect(unit).toMatch(/^ProtectSystem=strict$/m);
      expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
      expect(unit).toMatch(/^DynamicUser=yes$/m);
      return;
    }
    const dir = path.resolve(BIN, '../../deploy/systemd');
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'ctpurge.service'), path.join(dir, 'ctpurge.timer')], { encoding: 'utf8' });
    expect(r.stderr.split('\n').filter((l) => /ctpurge\.(service|timer)/.test(l) && !/Command .* is not executable/.test(l))).toEqual([]);
  });
});
