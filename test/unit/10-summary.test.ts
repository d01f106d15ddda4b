import { describe, expect, it } from 'vitest';
import { Conntrack, DURATION_BUCKETS } from '../../src/index.js';
import { emptySummary, fakeBinding } from '../helpers/fakeBinding.js';

/** Talkers in the native layout: [family, last two IPv4 bytes, count], already in order. */
function talkers(rows: [number, number, number][]) {
  const families = new Uint8Array(rows.length);
  const addrs = new Uint8Array(rows.length * 16);
  const counts = new Float64Array(rows.length);
  rows.forEach(([fam, a, c], i) => {
    families[i] = fam;
    addrs.set(fam === 2 ? [10, 0, a >> 8, a & 255] : [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a >> 8, a & 255], i * 16);
    counts[i] = c;
  });
  return { families, addrs, counts };
}

describe('summary (from the native pass)', () => {
  it('turns the native counts into the TableSummary: names, merged state names, buckets, candidates, talkers, ports', async () => {
    const n = emptySummary();
    n.total = 100;
    n.unreplied = 30;
    n.protocols[6] = 70;
    n.protocols[17] = 30;
    n.states.tcp[3] = 60; // ESTABLISHED
    n.states.tcp[1] = 10; // SYN_SENT
    n.states.sctp[4] = 5; // ESTABLISHED too: merged by name
    n.ipv4 = 80;
    n.ipv6 = 20;
    n.ageSources[2] = 100;
    n.exactAbove = 6; // the native pass fell back to heavy hitters
    n.idle[0] = 40;
    n.idle[4] = 55;
    n.idle[7] = 5;
    n.age[3] = 100;
    n.candidates.set([30, 55, 0]);
    n.dports = new Float64Array([6, 999, 10, 6, 1006, 10, 17, 53, 30, 6, 80, 50]);
    n.sources = talkers([[2, 7, 40], [2, 1, 20], [10, 1, 20], [2, 300, 1]]);
    const row = (proto: number, state: number, reply: number, idle: number[], age: number[]) => [proto, state, reply, ...idle, ...age];
    n.classes = new Float64Array([
      ...row(17, 255, 0, [30, 0, 0, 0, 0, 0, 0, 0], [30, 0, 0, 0, 0, 0, 0, 0]),
      ...row(6, 3, 1, [5, 0, 0, 0, 55, 0, 0, 5], [0, 0, 0, 60, 0, 0, 0, 5]),
    ]);
    n.destinations = talkers([[2, 5, 100]]);
    const { binding, calls } = fakeBinding({ summary: n });
    const ct = await Conntrack.open({ binding, lanes: 2 });
    const s = await ct.summary({ protocol: 'tcp' }, { top: 3 });
    expect(calls.summary[0]?.options).toEqual({ talkers: true, top: 3, cancel: expect.any(Int32Array) });
    expect(calls.summary[0]?.lanes.every((l) => l.match.protocol === 6)).toBe(true);
    expect(s).toMatchObject({ total: 100, unreplied: 30, replied: 70, talkersExactAbove: 6 });
    expect(s.byProtocol).toEqual([{ key: 'tcp', count: 70 }, { key: 'udp', count: 30 }]);
    expect(s.byState).toEqual([{ key: 'ESTABLISHED', count: 65 }, { key: 'SYN_SENT', count: 10 }]);
    expect(s.byFamily).toEqual([{ key: 'ipv4', count: 80 }, { key: 'ipv6', count: 20 }]);
    expect(s.byAgeSource).toEqual([{ key: 'timeout', count: 100 }]);
    expect(s.byIdle).toHaveLength(DURATION_BUCKETS.length + 1);
    expect(s.byIdle.map((b) => b.key)).toEqual(['<1m', '1m-10m', '10m-1h', '1h-6h', '6h-1d', '1d-5d', '>=5d', 'unknown']);
    expect(s.byIdle[4]).toEqual({ key: '6h-1d', count: 55 });
    expect(s.candidates.map((c) => [c.args, c.matched])).toEqual([['--unreplied --older 1h', 30], ['--state ESTABLISHED --idle 6h', 55], ['--state ESTABLISHED --idle 1d', 0]]);
    expect(s.topSources).toEqual([{ key: '10.0.0.7', count: 40 }, { key: '10.0.0.1', count: 20 }, { key: 'fd00::1', count: 20 }]);
    expect(s.topDestinations).toEqual([{ key: '10.0.0.5', count: 100 }]);
    expect(s.distributions).toEqual([
      { group: 'tcp ESTABLISHED', reply: 'assured', total: 65, idle: [5, 0, 0, 0, 55, 0, 0, 5], age: [0, 0, 0, 60, 0, 0, 0, 5] },
      { group: 'udp', reply: 'unreplied', total: 30, idle: [30, 0, 0, 0, 0, 0, 0, 0], age: [30, 0, 0, 0, 0, 0, 0, 0] },
    ]);
    // Port ties in text order, like the top lists always were.
    expect(s.topDestinationPorts).toEqual([{ key: 'tcp/80', count: 50 }, { key: 'udp/53', count: 30 }, { key: 'tcp/1006', count: 10 }]);
  });

  it('talkers: false asks the native pass for no top lists', async () => {
    const { binding, calls } = fakeBinding();
    const ct = await Conntrack.open({ binding });
    const s = await ct.summary({}, { talkers: false });
    expect(calls.summary[0]?.options).toEqual({ talkers: false, top: 10, cancel: expect.any(Int32Array) });
    expect([s.topSources, s.topDestinations, s.topDestinationPorts]).toEqual([[], [], []]);
    await expect(ct.summary({}, { talkers: 'no' as never })).rejects.toThrow(/talkers: expected true or false/);
  });
});
