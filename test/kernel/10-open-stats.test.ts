import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, ConntrackError } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

describeKernel('open, stats and settings in a throwaway namespace', () => {
  let ns: TestNetns;
  let ct: Conntrack;
  beforeAll(async () => {
    ns = TestNetns.create();
    ns.load([
      '-I -p tcp -s 10.1.0.1 -d 192.0.2.80 --sport 40000 --dport 80 --state ESTABLISHED -t 424800',
      '-I -p udp -s fd00::1 -d fd00::2 --sport 4000 --dport 53 -t 30 -w 3 -m 7',
    ]);
    ct = await Conntrack.open({ netns: ns.name });
  });
  afterAll(async () => {
    await ct?.close();
    ns?.destroy();
  });

  it('opens by name and by path, and counts only its own namespace', async () => {
    expect(ct.netns).toBe(ns.path);
    const byPath = await Conntrack.open({ netns: ns.path });
    expect(await byPath.count()).toBe(2);
    await byPath.close();
    expect(await ct.count()).toBe(ns.conntrackCount());
  });

  it('stats gives count, max, usage, buckets and per-CPU counters', async () => {
    const s = await ct.stats();
    expect(s.count).toBe(2);
    expect(s.max).toBeGreaterThan(0);
    expect(s.usage).toBeCloseTo(2 / s.max);
    expect(s.buckets).toBeGreaterThan(0);
    expect(s.perCpu.length).toBeGreaterThanOrEqual(1);
    expect(s.totals).toHaveProperty('drop');
  });

  it('reads the namespace\'s own policy timeouts, not the host\'s', async () => {
    ns.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', 7777);
    const s = await ct.settings();
    expect(s.timeouts.tcp.established).toBe(7777);
    expect(s.timeouts.tcp.unacknowledged).toBe(300);
    ns.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', 432000);
  });

  it('a missing namespace is ENOENT with a hint, before any kernel request', async () => {
    const err = await Conntrack.open({ netns: 'ctp-does-not-exist' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConntrackError);
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'open', operation: 'open' });
    expect((err as Error).message).toMatch(/ip netns list/);
  });

  it('a file that is not a network namespace is refused', async () => {
    const err = await Conntrack.open({ netns: '/etc/hostname' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINVAL' });
    const mnt = await Conntrack.open({ netns: '/proc/self/ns/mnt' }).catch((e: unknown) => e);
    expect(mnt).toMatchObject({ code: 'EINVAL' });
  });

  it('a closed handle refuses work', async () => {
    const h = await Conntrack.open({ netns: ns.name });
    await h.close();
    expect(h.closed).toBe(true);
    await expect(h.count()).rejects.toThrow(/closed/);
  });
});
