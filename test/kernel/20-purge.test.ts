import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Conntrack, type Entry } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { key, seedAge } from '../helpers/expect.js';
import { mixedTable, seedLine, type SeedEntry } from '../helpers/seed.js';
import { hpingAcks, trafficPair } from '../helpers/traffic.js';

const N = 4000;
const USERSPACE = { release: 'test', statusFilter: false, zoneFilter: false, tupleDumpFilter: false, tupleFlushFilter: false, kernelFilters: false };

function remainingKeys(ns: TestNetns): Set<string> {
  const out = new Set<string>();
  for (const line of ns.conntrackList()) {
    const m = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/.exec(line);
    const zone = /zone=(\d+)/.exec(line);
    if (m) out.add(key({ src: m[1] as string, dst: m[2] as string, sport: Number(m[3]), dport: Number(m[4]), zone: zone ? Number(zone[1]) : 0 }));
  }
  return out;
}

describeKernel('purge', () => {
  const model = mixedTable(N);
  const stale = (e: SeedEntry) => !e.replied && seedAge(e) >= 3600;
  let ns: TestNetns;
  let ct: Conntrack;
  beforeEach(async () => {
    ns = TestNetns.create();
    ns.load(model.map(seedLine));
    ct = await Conntrack.open({ netns: ns.name });
  });
  afterEach(async () => {
    await ct?.close();
    ns?.destroy();
  });

  it('--unreplied --older 3600 removes exactly the stale unreplied entries, IPv4 and IPv6, in every zone', async () => {
    const expected = model.filter(stale);
    expect(new Set(expected.map((e) => e.zone))).toEqual(new Set([0, 3]));
    expect(new Set(expected.map((e) => e.family))).toEqual(new Set(['ipv4', 'ipv6']));
    const deleted: Entry[] = [];
    const r = await ct.purge({ unreplied: true, olderThan: 3600, onDeleted: (e) => deleted.push(e) });
    expect(r).toMatchObject({ method: 'dump', matched: expected.length, deleted: expected.length, vanished: 0, tableSize: N, dryRun: false });
    expect(r.durationMs).toBeGreaterThan(0);
    // Every deleted entry matched at read time.
    for (const e of deleted) {
      expect(e.unreplied).toBe(true);
      expect(e.age).toBeGreaterThanOrEqual(3600);
    }
    expect(new Set(deleted.map((e) => key({ ...e.orig, zone: e.zone })))).toEqual(new Set(expected.map((e) => key(e))));
    // What is left, seen by conntrack itself, is exactly the rest of the model.
    expect(remainingKeys(ns)).toEqual(new Set(model.filter((e) => !stale(e)).map((e) => key(e))));
  });

  it('a dry run deletes nothing and reports what would go', async () => {
    const would: Entry[] = [];
    const r = await ct.purge({ unreplied: true, olderThan: '1h', dryRun: true, onDeleted: (e) => would.push(e) });
    expect(r).toMatchObject({ dryRun: true, deleted: 0, matched: model.filter(stale).length });
    expect(would).toHaveLength(r.matched);
    expect(ns.conntrackCount()).toBe(N);
  });

  it('--limit stops after N deletions, and the batch matched before the limit is still deleted and logged', async () => {
    const r = await ct.purge({ unreplied: true, olderThan: 3600, limit: 100 });
    expect(r).toMatchObject({ matched: 100, deleted: 100, limitReached: true });
    expect(ns.conntrackCount()).toBe(N - 100);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-limit-'));
    const fd = openSync(path.join(dir, 'audit.log'), 'a', 0o600);
    try {
      const logged = await ct.purge({ unreplied: true, olderThan: 3600, limit: 50, logFd: fd });
      expect(logged).toMatchObject({ matched: 50, deleted: 50, logged: 50, limitReached: true });
      expect(readFileSync(path.join(dir, 'audit.log'), 'utf8').trim().split('\n')).toHaveLength(50);
      const dry = await ct.purge({ unreplied: true, olderThan: 3600, limit: 7, dryRun: true });
      expect(dry).toMatchObject({ matched: 7, deleted: 0, limitReached: true });
      expect(ns.conntrackCount()).toBe(N - 150);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with no age or tuple condition, one kernel flush removes exactly the unreplied entries', async () => {
    const unreplied = model.filter((e) => !e.replied).length;
    const r = await ct.purge({ unreplied: true });
    expect(r).toMatchObject({ method: 'flush', deleted: unreplied, tableSize: N });
    expect(ns.conntrackList(['-u', 'UNREPLIED'])).toHaveLength(0);
    expect(remainingKeys(ns)).toEqual(new Set(model.filter((e) => e.replied).map((e) => key(e))));
  });

  it('a plan from ct.plan(): a dry run with it dumps and deletes nothing, the purge with it flushes exactly the unreplied entries', async () => {
    const unreplied = model.filter((e) => !e.replied).length;
    const plan = ct.plan({ unreplied: true }, { allowFlush: true });
    expect(plan.method).toBe('flush');
    const dry = await ct.purge({ plan, dryRun: true });
    expect(dry).toMatchObject({ method: 'dump', matched: unreplied, deleted: 0 });
    expect(ns.conntrackCount()).toBe(N);
    expect(await ct.count(plan)).toBe(unreplied);
    const r = await ct.purge({ plan });
    expect(r).toMatchObject({ method: 'flush', deleted: unreplied });
    expect(remainingKeys(ns)).toEqual(new Set(model.filter((e) => e.replied).map((e) => key(e))));
  });

  it('the flush honours the mark; a zone is matched per entry (the kernel compares zone ids in either direction)', async () => {
    const r = await ct.purge({ unreplied: true, zone: 3, mark: 7 });
    expect(r.method).toBe('dump');
    const expected = model.filter((e) => !e.replied && e.zone === 3 && e.mark === 7);
    expect(r.deleted).toBe(expected.length);
    expect(ns.conntrackCount()).toBe(N - expected.length);
  });

  it('the user-space filter path (kernels before 5.15) gives identical results', async () => {
    const other = TestNetns.create();
    try {
      other.load(model.map(seedLine));
      const old = await Conntrack.open({ netns: other.name, kernel: USERSPACE });
      const a = await ct.purge({ unreplied: true, mark: 7 });
      const b = await old.purge({ unreplied: true, mark: 7 });
      await old.close();
      expect(a.method).toBe('flush');
      expect(b.method).toBe('dump');
      expect(b.deleted).toBe(a.deleted);
      expect(remainingKeys(other)).toEqual(remainingKeys(ns));
      const c = await ct.purge({ unreplied: true, olderThan: 3600, protocol: 'tcp' });
      const old2 = await Conntrack.open({ netns: other.name, kernel: USERSPACE });
      const d = await old2.purge({ unreplied: true, olderThan: 3600, protocol: 'tcp' });
      await old2.close();
      expect(d.deleted).toBe(c.deleted);
      expect(remainingKeys(other)).toEqual(remainingKeys(ns));
    } finally {
      other.destroy();
    }
  });

  it('regression: conntrack -D -u UNREPLIED wipes replied flows too; ctpurge --unreplied never does', async () => {
    const peer = TestNetns.create();
    try {
      peer.load(model.map(seedLine));
      const replied = model.filter((e) => e.replied).length;
      peer.exec('conntrack', ['-D', '-u', 'UNREPLIED']);
      const leftByConntrack = peer.conntrackCount();
      // conntrack-tools 1.4.7 ignores the status on delete: replied flows are gone too.
      expect(leftByConntrack).toBeLessThan(replied);
      await ct.purge({ unreplied: true });
      await ct.purge({ unreplied: true, olderThan: 0 });
      expect(ns.conntrackCount()).toBe(replied);
      for await (const e of ct.list()) expect(e.unreplied).toBe(false);
    } finally {
      peer.destroy();
    }
  });

  it('timestamps win over the timeout estimate: fresh entries with long timeouts are kept', async () => {
    ns.sysctl('net.netfilter.nf_conntrack_timestamp', 1);
    const fresh = ['-I -p tcp -s 10.77.0.1 -d 192.0.2.1 --sport 1 --dport 80 --state ESTABLISHED -t 424800', '-I -p tcp -s fd77::1 -d fd77::2 --sport 1 --dport 80 --state ESTABLISHED -t 424800 -w 3'];
    ns.load(fresh);
    const got: Entry[] = [];
    for await (const e of ct.list({ src: ['10.77.0.1', 'fd77::1'] })) got.push(e);
    expect(got).toHaveLength(2);
    for (const e of got) {
      expect(e.ageSource).toBe('timestamp');
      expect(e.start).toBeInstanceOf(Date);
      expect(e.age).toBeLessThan(60);
    }
    const r = await ct.purge({ unreplied: true, olderThan: 3600 });
    expect(r.deleted).toBe(model.filter(stale).length);
    expect(await ct.count({ src: ['10.77.0.1', 'fd77::1'] })).toBe(2);
    // And with a short threshold, the timestamped entries go once they are old enough.
    await new Promise((res) => setTimeout(res, 2100));
    const r2 = await ct.purge({ unreplied: true, olderThan: 2, src: ['10.77.0.0/16', 'fd77::/16'] });
    expect(r2.deleted).toBe(2);
  });

  it('real pickups are young and survive --older 3600; --older 0 takes them', async () => {
    const pair = trafficPair();
    try {
      hpingAcks(pair.client, pair.peerIp, 300);
      const live = await Conntrack.open({ netns: pair.client.name });
      const before = await live.count({ unreplied: true, protocol: 'tcp' });
      expect(before).toBeGreaterThanOrEqual(250);
      expect((await live.purge({ unreplied: true, olderThan: 3600 })).deleted).toBe(0);
      expect(await live.count({ unreplied: true, protocol: 'tcp' })).toBe(before);
      const r = await live.purge({ unreplied: true, olderThan: 0, dport: 80 });
      expect(r.deleted).toBe(before);
      await live.close();
    } finally {
      pair.client.destroy();
      pair.peer.destroy();
    }
  });

  it('refuses an empty query and bad options before touching the table', async () => {
    // The full list of refusals is a unit test (test/unit/12-validation.test.ts); here, the table.
    await expect(ct.purge({})).rejects.toThrow(/refusing to purge with an empty query/);
    await expect(ct.purge({ unreplied: true, limit: -1 })).rejects.toThrow(RangeError);
    expect(ns.conntrackCount()).toBe(N);
  });

  it('an aborted signal rejects with an AbortError and deletes nothing (test/kernel/25-cancel.test.ts has the rest)', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(ct.purge({ unreplied: true, olderThan: 3600, signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(ns.conntrackCount()).toBe(N);
  });
});
