/**
 * Safety valves: --max-delete stops a purge before it deletes more than allowed, exits 3 and
 * says so (rsync's convention); doctor takes no selector.
 */
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { ctpurge, startCtpurge } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { seriesOf } from '../helpers/prometheus.js';
import { staleTcpLine } from '../helpers/seed.js';
import { waitFor } from '../helpers/wait.js';

describeKernel('--max-delete and doctor\'s selectors', () => {
  let ns: TestNetns;
  freshNetnsAndDir('ctpurge-max-', (n) => {
    ns = n;
    ns.load(Array.from({ length: 100 }, (_, i) => staleTcpLine(i)));
  });

  it('a count: stops after it when more matched, exit 3, the message says what happened', () => {
    const dry = ctpurge(['--unreplied', '--max-delete', '30', '--dry-run', '--netns', ns.name]);
    expect(dry.status).toBe(3);
    expect(dry.stderr).toMatch(/^ctpurge: stopped at --max-delete 30: more entries matched; a purge would delete 30 and stop/m);
    expect(ns.conntrackCount()).toBe(100);
    const r = ctpurge(['--unreplied', '--max-delete', '30', '--json', '--netns', ns.name]);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 30, method: 'dump', maxDelete: 30, maxDeleteReached: true });
    expect(r.stderr).toMatch(/stopped at --max-delete 30: more entries matched; 30 deleted\. Check the selectors, or raise --max-delete/);
    expect(ns.conntrackCount()).toBe(70);
    // Room enough: the run completes, exit 0.
    const all = ctpurge(['--unreplied', '--max-delete', '70', '--json', '--netns', ns.name]);
    expect(all.status, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout)).toMatchObject({ deleted: 70, maxDeleteReached: false });
  });

  it('a share of the table, and the smaller of --limit and --max-delete', () => {
    // 7/100 in binary floating point is a hair above 0.07: 7% of 100 is 7, never 8.
    const seven = ctpurge(['--unreplied', '--max-delete', '7%', '--dry-run', '--netns', ns.name]);
    expect(seven.status).toBe(3);
    expect(seven.stderr).toMatch(/--max-delete 7 \(7% of 100\): more entries matched; a purge would delete 7 and stop/);
    const r = ctpurge(['--unreplied', '--max-delete', '25%', '--json', '--netns', ns.name]);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 25 });
    expect(r.stderr).toMatch(/--max-delete 25 \(25% of 100\)/);

    // --limit below it: a plain limit, exit 0.
    const l = ctpurge(['--unreplied', '--max-delete', '50', '--limit', '10', '--json', '--netns', ns.name]);
    expect(l.status).toBe(0);
    expect(JSON.parse(l.stdout)).toMatchObject({ deleted: 10, limitReached: true, maxDeleteReached: false });
    expect(ns.conntrackCount()).toBe(65);
    for (const bad of ['0%', '101%', 'x', '-1']) expect(ctpurge(['--unreplied', '--max-delete', bad, '--netns', ns.name]).status, bad).toBe(2);
    expect(ns.conntrackCount()).toBe(65);
  });

  it('a share rounds up: on a nearly empty table 50% still takes its one stale entry (the shipped rules\' guard)', () => {
    ns.exec('conntrack', ['-F']);
    ns.load([staleTcpLine(0)]);
    const r = ctpurge(['--unreplied', '--max-delete', '50%', '--json', '--netns', ns.name]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 1, maxDelete: 1, maxDeleteReached: false });
    expect(ns.conntrackCount()).toBe(0);
  });

  it('a one-shot run --max-delete stopped counts as a failed run in its metrics, as a daemon\'s does', () => {
    const prom = path.join(os.tmpdir(), `ctpurge-maxdel-${process.pid}.prom`);
    try {
      const r = ctpurge(['--unreplied', '--max-delete', '10', '-q', '--metrics-file', prom, '--netns', ns.name]);
      expect(r.status).toBe(3);
      const text = readFileSync(prom, 'utf8');
      expect(seriesOf(text, 'ctpurge_errors_total').get(`netns="${ns.name}"`)).toBe(1);
      expect(seriesOf(text, 'ctpurge_entries_deleted_total').get(`netns="${ns.name}"`)).toBe(10);
      // A run with room enough is no failure.
      const ok = ctpurge(['--unreplied', '--max-delete', '1000', '-q', '--metrics-file', prom, '--netns', ns.name]);
      expect(ok.status, ok.stderr).toBe(0);
      expect(seriesOf(readFileSync(prom, 'utf8'), 'ctpurge_errors_total').get(`netns="${ns.name}"`)).toBe(0);
    } finally {
      rmSync(prom, { force: true });
    }
  });

  it('a daemon: each run stops at it, says so and goes on', async () => {
    const d = startCtpurge(['--unreplied', '--max-delete', '40', '--every', '300ms', '--netns', ns.name]);
    try {
      await waitFor('the table to empty in runs of 40', () => ns.conntrackCount() === 0, 10_000);
      await waitFor('the messages', () => (d.err().match(/stopped at --max-delete 40/g) ?? []).length >= 2, 5000);
    } finally {
      d.child.kill('SIGTERM');
    }
    expect(await d.exited).toBe(0);
  });

  it('doctor refuses selectors instead of ignoring them', () => {
    const r = ctpurge(['doctor', '--unreplied', '--netns', ns.name]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("ctpurge: --unreplied does not apply to 'doctor' (doctor reads the whole table: it takes no selector)\n");
  });
});
