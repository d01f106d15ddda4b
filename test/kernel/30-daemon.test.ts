/** The daemon (--every): purges as entries go stale, its metrics file, the purge lock, signals. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { acquirePurgeLock } from '../../src/index.js';
import { BIN, ctpurge, startCtpurge } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { staleTcpLine } from '../helpers/seed.js';
import { waitFor } from '../helpers/wait.js';

const STALE = (i: number) => staleTcpLine(i, 1);

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
      await waitFor('the first metrics file', () => existsSync(prom), 10_000);
      // Young at first: nothing to purge.
      expect(ns.conntrackCount()).toBe(300);
      await waitFor('the entries to go stale and be purged', () => ns.conntrackCount() === 0, 15_000);
      // New entries arrive and go stale in turn.
      ns.load(Array.from({ length: 200 }, (_, i) => STALE(1000 + i)));
      await waitFor('the second wave', () => ns.conntrackCount() === 0, 15_000);
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
      await waitFor('the first run', () => d.out().includes('purged'), 10_000);
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
    await waitFor('the purge to start', () => ns.conntrackCount() < 60000, 20_000);
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
      await waitFor('the daemon\'s run', () => holder.out().includes('purged'), 10_000);
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
    await waitFor('the purge to start', () => ns.conntrackCount() < 40000, 20_000);
    d.child.kill('SIGKILL');
    await d.exited;
    const left = ns.conntrackCount();
    const r = ctpurge(['--unreplied', '--older', '1h', '--netns', ns.name, '--json', '--lock-wait', '2s'], lockEnv());
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: left, tableSize: left });
    expect(ns.conntrackCount()).toBe(0);
  });
});
