/**
 * A cancel before deleting deletes nothing: an aborted signal given to the library, a SIGTERM
 * to the CLI or the daemon while it waits for another purge's lock. During a run, no batch is
 * sent after the abort. Lock waits hold no thread of libuv's pool.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { AbortError, acquirePurgeLock, Conntrack } from '../../src/index.js';
import { catchesSignal, startCtpurge } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { staleTcpLine } from '../helpers/seed.js';
import { waitFor } from '../helpers/wait.js';

const N = 3000;

describeKernel('cancel before deleting deletes nothing', () => {
  let ns: TestNetns;
  let dir: string;
  const lockDir = () => path.join(dir, 'locks');
  freshNetnsAndDir('ctpurge-cancel-', (n, d) => {
    ns = n;
    dir = d;
    ns.load(Array.from({ length: N }, (_, i) => staleTcpLine(i)));
  });

  it('an aborted signal: purge (dump and flush), exportTo and events reject with an AbortError and touch nothing', async () => {
    const ct = await Conntrack.open({ netns: ns.name });
    try {
      const reason = new Error('shutting down');
      for (const signal of [AbortSignal.abort(), AbortSignal.abort(reason)]) {
        for (const query of [{ unreplied: true, olderThan: '1h' }, { unreplied: true }]) {
          const err = await ct.purge({ ...query, signal }).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(AbortError);
          expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: signal.reason });
          expect(ns.conntrackCount()).toBe(N);
        }
        await expect(ct.exportTo(1, { unreplied: true }, { signal })).rejects.toBeInstanceOf(AbortError);
        expect(() => ct.events({ signal })).toThrow(AbortError);
      }
      // The flush path is what the plain query takes here: it was refused above, not run.
      expect(ct.plan({ unreplied: true }, { allowFlush: true }).method).toBe('flush');
    } finally {
      await ct.close();
    }
  });

  it('an abort during a run: no batch after it, and the counts say what was deleted', async () => {
    ns.load(Array.from({ length: 60000 }, (_, i) => staleTcpLine(i, 3)));
    const total = N + 60000;
    const ct = await Conntrack.open({ netns: ns.name });
    try {
      const ac = new AbortController();
      // onDeleted is reported every 2,048 deleted entries: the abort comes early in the run.
      const r = await ct.purge({ unreplied: true, olderThan: '1h', signal: ac.signal, onDeleted: () => ac.abort() });
      expect(r.cancelled).toBe(true);
      expect(r.deleted).toBeGreaterThan(0);
      expect(r.deleted).toBeLessThan(total);
      // What is gone is exactly what the result counts: nothing sent after the abort went uncounted.
      expect(ns.conntrackCount()).toBe(total - r.deleted);
    } finally {
      await ct.close();
    }
  });

  it('SIGTERM while waiting for the lock: the one-shot and the daemon exit at once, nothing deleted', async () => {
    const lock = await acquirePurgeLock(ns.path, 1, { dir: lockDir() });
    try {
      for (const extra of [[], ['--every', '1h']]) {
        const run = startCtpurge(['--unreplied', '--netns', ns.name, '--lock-wait', '30s', ...extra], { CTPURGE_LOCK_DIR: lockDir() });
        // Once ctpurge's own first line has run (its early SIGHUP handler shows, bit 0 of SigCgt;
        // Node catches SIGTERM from its start, so that bit tells nothing), and a moment for the
        // lock's first tries. A SIGTERM that comes while the modules still load stops the
        // command the same way once it runs (bin/ctpurge.js).
        await waitFor('ctpurge to run', () => catchesSignal(run.child.pid, 1), 20_000);
        await new Promise((r) => setTimeout(r, 300));
        const t0 = Date.now();
        run.child.kill('SIGTERM');
        const code = await run.exited;
        expect(Date.now() - t0, extra.join(' ')).toBeLessThan(1500);
        expect(code).toBe(0);
        if (extra.length === 0) expect(run.err()).toMatch(/stopped while waiting for the purge lock; nothing was deleted/);
        expect(run.out()).not.toMatch(/purged/);
        expect(ns.conntrackCount()).toBe(N);
      }
    } finally {
      lock.release();
    }
  });

  it('lock waits hold no pool thread: with four waits pending, a file read is not delayed', async () => {
    const lock = await acquirePurgeLock(ns.path, 1, { dir: lockDir() });
    const ac = new AbortController();
    const waits = Array.from({ length: 6 }, () => acquirePurgeLock(ns.path, 30, { dir: lockDir(), signal: ac.signal }).catch((e: unknown) => e));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) await readFile('/proc/self/status');
      expect(performance.now() - t0).toBeLessThan(500);
    } finally {
      ac.abort();
      lock.release();
    }
    const t1 = Date.now();
    for (const w of await Promise.all(waits)) expect(w).toBeInstanceOf(AbortError);
    expect(Date.now() - t1).toBeLessThan(500);
    await waitFor('the lock to be free', () => true, 10);
  });
  it("native calls take at most half of libuv's pool: four event streams and 70 counts at once leave file reads undelayed", async () => {
    const ct = await Conntrack.open({ netns: ns.name });
    const ac = new AbortController();
    try {
      // An event stream holds a pool thread for each 200 ms poll slice: four of them once held the whole pool.
      const streams = Array.from({ length: 4 }, async () => {
        for await (const e of ct.events({ signal: ac.signal })) void e;
      });
      const counts = Array.from({ length: 70 }, () => ct.count({ unreplied: true }));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) await readFile('/proc/self/status');
      const took = performance.now() - t0;
      expect(took, `10 file reads took ${took.toFixed(0)} ms`).toBeLessThan(500);
      // The calls that waited for their turn all ran.
      for (const n of await Promise.all(counts)) expect(n).toBe(N);
      ac.abort();
      await Promise.all(streams);
    } finally {
      ac.abort();
      await ct.close();
    }
  });
});
