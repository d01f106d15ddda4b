import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { loadNative, type NativeSummary } from '../../src/native.js';
import { compileQuery, laneFilters } from '../../src/query.js';
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
      const lanes = laneFilters(compileQuery({}).filter, 2);
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
