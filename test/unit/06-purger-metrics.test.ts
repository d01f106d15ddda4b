import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Conntrack, DURATION_BUCKETS, Purger, nextInterval, type PurgeResult, type PurgerRun, type TableSummary } from '../../src/index.js';
import { PurgeMetrics } from '../../src/metrics.js';
import { metricsFileWriter } from '../../src/cli/jobMetrics.js';
import { fakeBinding as sharedFake } from '../helpers/fakeBinding.js';
import { parsePrometheus, seriesOf } from '../helpers/prometheus.js';

// The native layer injected (test/helpers/fakeBinding.ts): the scheduler's logic is tested without a kernel.
function fakeBinding(opts: { count?: number; max?: number; purgeMs?: number; deleted?: () => number } = {}) {
  const { binding, calls } = sharedFake({ count: opts.count ?? 1000, max: opts.max ?? 10000, delayMs: opts.purgeMs ?? 10, ...(opts.deleted ? { deleted: opts.deleted } : {}) });
  return {
    binding,
    calls: {
      get purges() {
        return calls.purge.length;
      },
      get maxConcurrent() {
        return calls.maxConcurrent;
      },
      get cancelled() {
        return calls.cancelled;
      },
    },
  };
}

const kernel = { release: '6.18', statusFilter: true, zoneFilter: true, tupleDumpFilter: true, tupleFlushFilter: true, kernelFilters: true };

/** Advances fake time in steps, letting the purger's promise chains run in between. */
async function tick(ms: number, step = 100): Promise<void> {
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  };
  await settle();
  let t = 0;
  do {
    await vi.advanceTimersByTimeAsync(Math.min(step, ms - t));
    await settle();
    t += step;
  } while (t < ms);
}

describe('Purger (fake timers)', () => {
  beforeEach(() => {
    // setImmediate stays real: tick() uses it to let promise chains settle between steps.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at start, then every interval, and never overlaps a slow run', async () => {
    const { binding, calls } = fakeBinding({ purgeMs: 25_000 });
    const ct = await Conntrack.open({ binding, kernel });
    const runs: PurgerRun[] = [];
    const p = new Purger(ct, { query: { unreplied: true }, every: '10s' }).start();
    p.on('run', (r) => runs.push(r));
    await tick(0);
    expect(calls.purges).toBe(1);
    // The run takes 25 s, longer than the interval: no second run starts meanwhile.
    await tick(24_000);
    expect(calls.purges).toBe(1);
    await tick(1_000);
    expect(runs).toHaveLength(1);
    // The next one starts one interval after the end of the previous one.
    await tick(9_999);
    expect(calls.purges).toBe(1);
    await tick(1);
    expect(calls.purges).toBe(2);
    expect(calls.maxConcurrent).toBe(1);
    // runNow() during a run joins it rather than starting another.
    const joined = p.runNow();
    await tick(100);
    expect(calls.purges).toBe(2);
    await tick(25_000, 1_000);
    await joined;
    expect(calls.maxConcurrent).toBe(1);
    const stopping = p.stop();
    await tick(30_000, 1_000);
    await stopping;
  });

  it('an AbortSignal stops it: the run in flight is cancelled after its batch, no more runs', async () => {
    const { binding, calls } = fakeBinding({ purgeMs: 5_000 });
    const ct = await Conntrack.open({ binding, kernel });
    const ac = new AbortController();
    const p = new Purger(ct, { query: { unreplied: true }, every: 1, signal: ac.signal }).start();
    let stopped = false;
    p.on('stop', () => (stopped = true));
    await tick(1_000);
    ac.abort();
    await tick(5_000);
    expect(stopped).toBe(true);
    expect(calls.cancelled).toBe(1);
    await tick(60_000, 1_000);
    expect(calls.purges).toBe(1);
  });

  it('the first run starts at once (it holds the process until it ends); the timers after it are unref\'d', async () => {
    const { binding, calls } = fakeBinding();
    const ct = await Conntrack.open({ binding, kernel });
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const p = new Purger(ct, { query: { unreplied: true }, every: 60 }).start();
    expect(p.running).toBe(true);
    expect(p.active).toBe(true);
    await tick(50);
    expect(calls.purges).toBe(1);
    expect(p.running).toBe(false);
    const timer = spy.mock.results.at(-1)?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    spy.mockRestore();
    await p.stop();
  });

  it('whenAbove skips runs while the table is below the threshold', async () => {
    const { binding, calls } = fakeBinding({ count: 5000, max: 10000 });
    const ct = await Conntrack.open({ binding, kernel });
    const runs: PurgerRun[] = [];
    const p = new Purger(ct, { query: { unreplied: true }, every: 1, whenAbove: 0.8 }).start();
    p.on('run', (r) => runs.push(r));
    await tick(3_500);
    expect(calls.purges).toBe(0);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs.every((r) => r.skipped && r.result === null && r.usage === 0.5)).toBe(true);
    await p.stop();
  });

  it('with adaptive, skipped runs stay at the base interval: the first purge after the table crosses whenAbove is at most one interval late', async () => {
    let count = 5000;
    const { binding, calls } = fakeBinding({ count: 10000, max: 10000, deleted: () => 10 });
    const ct = await Conntrack.open({ binding, kernel });
    // The fake's stats answer count; make the table quiet (50%), then full (90%).
    const usage = vi.spyOn(ct, 'usage').mockImplementation(async () => ({ count, max: 10000, usage: count / 10000 }));
    const runs: PurgerRun[] = [];
    const p = new Purger(ct, { query: { unreplied: true }, every: 0.2, adaptive: true, whenAbove: 0.8 });
    p.on('run', (r) => runs.push(r));
    p.start();
    await tick(1_500);
    // Quiet skips grew the interval to every x 8 before.
    expect(runs.length).toBeGreaterThanOrEqual(5);
    expect(runs.every((r) => r.skipped && r.nextInSeconds === 0.2)).toBe(true);
    count = 9000;
    const crossed = Date.now();
    await vi.waitFor(() => expect(calls.purges).toBe(1), { timeout: 2_000, interval: 20 });
    expect(Date.now() - crossed).toBeLessThan(600);
    await p.stop();
    usage.mockRestore();
  });

  it('adaptive mode stays within its bounds', async () => {
    let deleted = 500; // 50% of the table: a large share
    const { binding } = fakeBinding({ count: 1000, deleted: () => deleted });
    const ct = await Conntrack.open({ binding, kernel });
    const p = new Purger(ct, { query: { unreplied: true }, every: 80, adaptive: true }).start();
    const intervals: number[] = [];
    p.on('run', (r) => intervals.push(r.nextInSeconds));
    await tick(200_000, 1_000);
    expect(Math.min(...intervals)).toBe(10); // every / 8
    deleted = 0;
    await tick(10_000_000, 10_000);
    expect(Math.max(...intervals)).toBe(640); // every * 8
    expect(intervals.every((i) => i >= 10 && i <= 640)).toBe(true);
    await p.stop();
  });

  it('the adaptive rule', () => {
    const s = { interval: 60, min: 10, max: 600 };
    expect(nextInterval(s, 200, 1000, 0.1)).toBe(30); // 20% deleted
    expect(nextInterval(s, 0, 1000, 0.85)).toBe(30); // under pressure
    expect(nextInterval(s, 5, 1000, 0.1)).toBe(90); // 0.5%: found little
    expect(nextInterval(s, 50, 1000, 0.1)).toBe(60); // in between: keep
    expect(nextInterval({ ...s, interval: 12 }, 500, 1000, 0)).toBe(10);
    expect(nextInterval({ ...s, interval: 500 }, 0, 1000, 0)).toBe(600);
  });

  it('refuses bad options', async () => {
    const { binding } = fakeBinding();
    const ct = await Conntrack.open({ binding, kernel });
    expect(() => new Purger(ct, { query: {}, every: 60 })).toThrow(/empty query/);
    expect(() => new Purger(ct, { query: { unreplied: true }, every: 'often' })).toThrow(/every/);
    expect(() => new Purger(ct, { query: { unreplied: true }, every: 60, whenAbove: 80 })).toThrow(/whenAbove/);
    expect(() => new Purger(ct, { query: { unreplied: true }, every: 60, adaptive: { min: 120 } })).toThrow(/adaptive/);
  });
});

describe('metrics', () => {
  const result = (deleted: number): PurgeResult => ({ run: '0123456789ab', matched: deleted, deleted, vanished: 0, scanned: 100, tableSize: 1000, durationMs: 1500, method: 'dump', dryRun: false, cancelled: false, limitReached: false, lostReports: 0, logged: 0, grace: null, graced: 0, fixedTimeout: 0, offloaded: 0, expiring: 0, settle: null });

  it('renders every metric with HELP and TYPE, and counters only grow', () => {
    const m = new PurgeMetrics({ netns: '/var/run/netns/a"b' });
    m.recordRun(result(10), { count: 990, max: 262144 }, 1_700_000_000_000);
    const a = parsePrometheus(m.render());
    expect([...a.keys()].sort()).toEqual([
      'ctpurge_conntrack_entries', 'ctpurge_conntrack_max', 'ctpurge_entries_deleted_total', 'ctpurge_entries_graced_total',
      'ctpurge_entries_matched_total', 'ctpurge_errors_total', 'ctpurge_grace_alive_total', 'ctpurge_grace_expired_total',
      'ctpurge_last_run_duration_seconds', 'ctpurge_last_run_timestamp_seconds', 'ctpurge_runs_total',
    ]);
    expect(a.get('ctpurge_runs_total')).toMatchObject({ type: 'counter', value: 1 });
    // A grace run counts its entries at once, and what became of them once the grace is over.
    m.recordRun({ ...result(0), grace: 60, graced: 7 }, { count: 990, max: 262144 });
    m.recordGrace({ expired: 5, alive: 2 });
    const g = parsePrometheus(m.render());
    expect([g.get('ctpurge_entries_graced_total')?.value, g.get('ctpurge_grace_expired_total')?.value, g.get('ctpurge_grace_alive_total')?.value]).toEqual([7, 5, 2]);
    expect(g.get('ctpurge_entries_deleted_total')?.value).toBe(10);
    expect(a.get('ctpurge_entries_deleted_total')?.value).toBe(10);
    expect(a.get('ctpurge_conntrack_entries')).toMatchObject({ type: 'gauge', value: 990 });
    expect(a.get('ctpurge_last_run_timestamp_seconds')?.value).toBe(1_700_000_000);
    expect(a.get('ctpurge_last_run_duration_seconds')?.value).toBe(1.5);
    expect(a.get('ctpurge_runs_total')?.labels).toBe('{netns="/var/run/netns/a\\"b"}');
    m.recordError();
    m.recordRun(result(5), { count: 995, max: 262144 });
    const b = parsePrometheus(m.render());
    for (const [name, v] of a) if (v.type === 'counter') expect(b.get(name)!.value).toBeGreaterThanOrEqual(v.value);
    expect(b.get('ctpurge_entries_deleted_total')?.value).toBe(15);
    expect(b.get('ctpurge_errors_total')?.value).toBe(1);
    // A one-shot run has no interval; a scheduled one exports the one it will wait.
    expect(b.has('ctpurge_interval_seconds')).toBe(false);
    m.recordRun(result(0), { count: 995, max: 262144, nextInSeconds: 150 });
    expect(parsePrometheus(m.render()).get('ctpurge_interval_seconds')).toMatchObject({ type: 'gauge', value: 150 });
  });

  it('the table shape: one series per state and per idle bucket, bounded, summing to the table', () => {
    const m = new PurgeMetrics({ netns: '/var/run/netns/blue' });
    expect(m.render()).not.toMatch(/ctpurge_table_/);
    const byIdle = DURATION_BUCKETS.map((b, i) => ({ key: b.label, count: i })).concat([{ key: 'unknown', count: 2 }]);
    m.recordTable({ total: 30, unreplied: 4, byState: [{ key: 'ESTABLISHED', count: 20 }, { key: 'SYN_SENT', count: 1 }], byIdle } as unknown as TableSummary, 1_700_000_000_000);
    const text = m.render();
    parsePrometheus(text); // every line well-formed, HELP and TYPE first
    expect(seriesOf(text, 'ctpurge_table_entries_by_state')).toEqual(new Map([
      ['netns="/var/run/netns/blue",state="ESTABLISHED"', 20],
      ['netns="/var/run/netns/blue",state="SYN_SENT"', 1],
      ['netns="/var/run/netns/blue",state="none"', 9],
    ]));
    const idle = seriesOf(text, 'ctpurge_table_entries_by_idle');
    expect(idle.size).toBe(DURATION_BUCKETS.length + 1);
    expect(idle.get('idle="6h-1d",netns="/var/run/netns/blue"')).toBe(4);
    expect(seriesOf(text, 'ctpurge_table_entries_unreplied').get('netns="/var/run/netns/blue"')).toBe(4);
    expect(seriesOf(text, 'ctpurge_table_read_timestamp_seconds').get('netns="/var/run/netns/blue"')).toBe(1_700_000_000);
  });
});

describe('an abort before deleting touches nothing', () => {
  it('purge and exportTo with an aborted signal reject with an AbortError and reach no native purge', async () => {
    const { binding, calls } = sharedFake();
    const ct = await Conntrack.open({ binding, kernel });
    const signal = AbortSignal.abort();
    await expect(ct.purge({ unreplied: true, signal })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    await expect(ct.purge({ unreplied: true, olderThan: 60, signal })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(ct.exportTo(1, {}, { signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(() => ct.events({ signal })).toThrow(/aborted before it started/);
    expect(calls.purge).toHaveLength(0);
    expect(calls.export).toHaveLength(0);
    expect(calls.events).toHaveLength(0);
  });

  it('stop() during the lock wait ends the wait: no purge, no error event', async () => {
    const { binding, calls } = sharedFake();
    const ct = await Conntrack.open({ binding, kernel });
    const errors: Error[] = [];
    let waiting = false;
    const purger = ct.schedule({
      query: { unreplied: true },
      every: 60,
      lock: (signal) =>
        new Promise((_, reject) => {
          waiting = true;
          signal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true });
        }),
    });
    purger.on('error', (e) => errors.push(e));
    const run = purger.runNow();
    await new Promise((r) => setTimeout(r, 20));
    expect(waiting).toBe(true);
    await purger.stop();
    await run;
    expect(calls.purge).toHaveLength(0);
    expect(errors).toEqual([]);
  });
});

describe('a Purger never fails silently', () => {
  it('with no error listener, a failed run is a process warning (once per message); with one, an error event', async () => {
    const { binding } = sharedFake();
    const ct = await Conntrack.open({ binding, kernel });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const p = ct.schedule({ query: { unreplied: true }, every: 60 });
      await ct.close();
      await p.runNow();
      await p.runNow();
      await new Promise((r) => setImmediate(r));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ code: 'CTPURGE_PURGER_ERROR' });
      expect(warnings[0]?.message).toMatch(/no 'error' listener: .*closed/);
      const errors: Error[] = [];
      p.on('error', (e) => errors.push(e));
      await p.runNow();
      expect(errors).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a namespace that is gone or replaced stops the schedule with an error naming it', async () => {
    const { binding, calls } = sharedFake();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-purger-'));
    const file = path.join(dir, 'ns');
    writeFileSync(file, '');
    try {
      const ct = await Conntrack.open({ binding, kernel });
      const target = { kernel: ct.kernel, lanes: ct.lanes, netns: file, usage: () => ct.usage(), purge: (o: Parameters<typeof ct.purge>[0]) => ct.purge(o) };
      for (const replace of [false, true]) {
        writeFileSync(file, '');
        const p = new Purger(target, { query: { unreplied: true }, every: 60 });
        const errors: Error[] = [];
        p.on('error', (e) => errors.push(e));
        let stopped = false;
        p.on('stop', () => (stopped = true));
        await p.start().firstRun;
        const before = calls.purge.length;
        // A new file renamed over the old one has another inode, as a new namespace would.
        if (replace) {
          writeFileSync(`${file}.new`, 'x');
          renameSync(`${file}.new`, file);
        } else {
          rmSync(file);
        }
        await p.runNow();
        await new Promise((r) => setImmediate(r));
        expect(calls.purge.length).toBe(before);
        expect(errors[0]).toMatchObject({ code: replace ? 'ESTALE' : 'ENOENT', operation: 'netns' });
        expect(errors[0]?.message).toMatch(replace ? /was replaced by a new namespace/ : /is gone/);
        expect(p.active).toBe(false);
        expect(stopped).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metricsFileWriter: a daemon\'s --metrics-file writes', () => {
  it('one write at a time; writes asked for meanwhile make one more, with the counters as they are then', async () => {
    let counter = 0;
    let inFlight = 0;
    let most = 0;
    const written: number[] = [];
    const write = metricsFileWriter(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      const value = counter;
      await new Promise((r) => setTimeout(r, 20));
      written.push(value);
      inFlight--;
    });
    counter = 1;
    const first = write();
    counter = 2;
    void write();
    counter = 3;
    const last = write();
    await first;
    await last;
    expect(most).toBe(1);
    // The first write had counter 1; the two asked meanwhile made one, after it, with 3.
    expect(written).toEqual([1, 3]);
    // Idle again: a new call writes at once.
    counter = 4;
    await write();
    expect(written).toEqual([1, 3, 4]);
  });

  it('a failed write is said on stderr and the next still happens', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      let n = 0;
      const write = metricsFileWriter(async () => {
        if (n++ === 0) throw new Error('EACCES: permission denied');
      });
      await write();
      await write();
      expect(n).toBe(2);
      expect(err).toHaveBeenCalledWith('ctpurge: --metrics-file: EACCES: permission denied\n');
    } finally {
      err.mockRestore();
    }
  });
});
