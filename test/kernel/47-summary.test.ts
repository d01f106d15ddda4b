import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { loadNative } from '../../src/addon.js';
import type { NativeSummary } from '../../src/native.js';
import { kernelFeatures } from '../../src/kernel.js';
import { planQuery } from '../../src/plan.js';
import { tableSummary } from '../../src/summary.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

// Top talkers, exactly: ten sources own 1% of the table each, among 90,000 sources seen once,
// spread through the table. Counted in one pass when the counts fit in the summary's memory
// budget, and with heavy hitters then an exact count of the candidates when they do not.
const N = 100_000;

describeKernel('summary: the top talkers among 100k sources, exactly', () => {
  let ns: TestNetns;
  let ct: Conntrack;
  beforeAll(async () => {
    ns = TestNetns.create('ctp-sum');
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const heavy = i % 10 === 0 ? (i / 10) % 10 : -1; // every 10th entry: one of the ten
      const src = heavy >= 0 ? `10.200.0.${heavy + 1}` : `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      lines.push(`-I -p udp -s ${src} -d 192.0.2.${1 + (i % 3)} --sport ${heavy >= 0 ? 2000 + Math.floor(i / 100) : 1024 + (i % 60000)} --dport ${i % 2 ? 53 : 123} -t 3000`);
    }
    ns.load(lines);
    ct = await Conntrack.open({ netns: ns.name });
  }, 120_000);
  afterAll(async () => {
    await ct?.close();
    ns?.destroy();
  });

  function expectTalkers(s: ReturnType<typeof tableSummary>): void {
    expect(s.total).toBe(N);
    expect(s.topSources.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, k) => ({ key: `10.200.0.${k + 1}`, count: 1000 })));
    expect(s.topSources.slice(10).every((t) => t.count === 1)).toBe(true);
    expect(s.topDestinations).toEqual([
      { key: '192.0.2.1', count: 33334 },
      { key: '192.0.2.2', count: 33333 },
      { key: '192.0.2.3', count: 33333 },
    ]);
    expect(s.topDestinationPorts).toEqual([{ key: 'udp/123', count: 50000 }, { key: 'udp/53', count: 50000 }]);
    expect(s.byProtocol).toEqual([{ key: 'udp', count: N }]);
  }

  it('reports the ten 1% sources with their exact counts, first, and the breakdowns add up', async () => {
    expect(ns.conntrackCount()).toBe(N);
    const s = await ct.summary({}, { top: 12 });
    expectTalkers(s);
    expect(s.talkersExactAbove).toBe(0); // 100k addresses fit in the budget: one exact pass
    // The same numbers from the kernel's side.
    expect(await ct.count({ src: '10.200.0.3' })).toBe(1000);
  });

  it('reports the same without the memory for exact counts: heavy hitters, then a second pass', async () => {
    const h = await loadNative().open(ns.path);
    try {
      const lanes = planQuery({}, kernelFeatures(), { lanes: 2 }).lanes;
      const exact: NativeSummary = await h.summary(lanes, { talkers: true, top: 12 });
      // No memory for exact counts, and fewer counters than the 1% sources' share needs to be sure.
      const heavy: NativeSummary = await h.summary(lanes, { talkers: true, top: 12, memory: 0, capacity: 1024 });
      expect(exact.exactAbove).toBe(0);
      expect(heavy.exactAbove).toBe(Math.floor(N / 1024));
      expectTalkers(tableSummary(heavy, 12, true));
      // A budget that runs out part-way: the exact counts are handed over to the heavy hitters.
      const partial: NativeSummary = await h.summary(lanes, { talkers: true, top: 12, memory: 256 * 1024, capacity: 1024 });
      expect(partial.exactAbove).toBe(Math.floor(N / 1024));
      expectTalkers(tableSummary(partial, 12, true));
      // Destinations (3 addresses): the same counts either way.
      expect(tableSummary(heavy, 12, true).topDestinations).toEqual(tableSummary(exact, 12, true).topDestinations);
    } finally {
      h.close();
    }
  });
});

// The exact tables grow in place (mremap, then the entries moved within the mapping): after a
// dozen doublings, every address must still have one slot and its whole count. 60,000 IPv6
// entries (and 20,000 IPv4 ones): six sources own 1,000 each, the rest are seen once; the
// top 1,000 is computed here from the model, ties in address byte order.
describeKernel('summary: exact counts after the tables grew in place, IPv6 and IPv4', () => {
  const V6 = 60_000;
  const V4 = 20_000;
  let ns: TestNetns;
  const model = new Map<string, number>();
  const v6 = (i: number) => `fd00:${(1 + (i >> 16)).toString(16)}::${(i & 0xffff).toString(16)}`;
  beforeAll(() => {
    ns = TestNetns.create('ctp-grow');
    const lines: string[] = [];
    for (let i = 0; i < V6 + V4; i++) {
      const heavy = i % 10 === 0 && i < 60_000 ? (i / 10) % 6 : -1;
      const src = heavy >= 0 ? `fd00:ff::${heavy + 1}` : i < V6 ? v6(i) : `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      model.set(src, (model.get(src) ?? 0) + 1);
      const dst = src.includes(':') ? 'fd00:1:2::1' : '192.0.2.1';
      lines.push(`-I -p udp -s ${src} -d ${dst} --sport ${1024 + (i % 60000)} --dport ${heavy >= 0 ? 3000 + Math.floor(i / 60) : 53} -t 3000`);
    }
    ns.load(lines);
  }, 120_000);
  afterAll(() => ns?.destroy());

  /** Address text in byte order (IPv4 before IPv6, as AF_INET < AF_INET6), for the ties. */
  function bytesKey(a: string): string {
    if (!a.includes(':')) return `0:${a.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('')}`;
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return `1:${groups.map((g) => g.padStart(4, '0')).join('')}`;
  }

  it('one pass, and the top 1,000 sources equal the model', async () => {
    const h = await loadNative().open(ns.path);
    try {
      const n = await h.summary(planQuery({}, kernelFeatures(), { lanes: 2 }).lanes, { talkers: true, top: 1000 });
      expect(n.exactAbove).toBe(0);
      const expected = [...model]
        .sort((a, b) => b[1] - a[1] || (bytesKey(a[0]) < bytesKey(b[0]) ? -1 : 1))
        .slice(0, 1000)
        .map(([key, count]) => ({ key, count }));
      const got = tableSummary(n, 1000, true).topSources;
      expect(got.slice(0, 6)).toEqual(expected.slice(0, 6));
      expect(got).toEqual(expected);
      expect(got.slice(0, 6).every((t) => t.count === 1000)).toBe(true);
    } finally {
      h.close();
    }
  });
});
