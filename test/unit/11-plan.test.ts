/**
 * The query plan against a model of what the kernel does with each request, without a
 * kernel: for random queries, entries and kernel versions, the lanes a dump sends select
 * exactly the matching entries once, and a flush deletes exactly them. An unfiltered flush
 * would delete entries that do not match, and fails this.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { kernelFeatures, type KernelFeatures } from '../../src/kernel.js';
import { hasCondition, isQueryPlan, planQuery, toPlan } from '../../src/plan.js';
import { parseCidr } from '../../src/parse/address.js';
import type { NativeCidr, NativeFilter, NativeKernelFilter } from '../../src/native.js';
import type { Query } from '../../src/query.js';

interface ModelEntry {
  family: 2 | 10;
  protocol: number;
  sport: number;
  dport: number;
  src: Uint8Array;
  dst: Uint8Array;
  replySrc: Uint8Array;
  replyDst: Uint8Array;
  status: number;
  mark: number;
  zone: number;
}

const V4 = ['10.0.0.1', '10.0.0.2', '192.0.2.81'];
const V6 = ['fd00::1', 'fd00::2'];
const PORTS = [80, 443, 1000];
const bytes = (a: string) => parseCidr(a, 'test').addr;
const hasPorts = (protocol: number) => protocol !== 1;

const entry: fc.Arbitrary<ModelEntry> = fc.constantFrom<2 | 10>(2, 10).chain((family) => {
  const addr = fc.constantFrom(...(family === 2 ? V4 : V6)).map(bytes);
  return fc.record({
    family: fc.constant(family),
    protocol: fc.constantFrom(6, 17, 1, 132),
    sport: fc.constantFrom(...PORTS),
    dport: fc.constantFrom(...PORTS),
    src: addr,
    dst: addr,
    replySrc: addr,
    replyDst: addr,
    status: fc.constantFrom(0, 2, 4, 6),
    mark: fc.constantFrom(0, 1, 7, 0x101),
    zone: fc.constantFrom(0, 3),
  });
});

const address = fc.oneof(fc.constantFrom(...V4, ...V6, '10.0.0.0/24'), fc.constant<string[]>(['10.0.0.1', '192.0.2.81']));
const port = fc.oneof(fc.constantFrom(...PORTS), fc.constant<[number, number]>([80, 443]));
const query: fc.Arbitrary<Query> = fc.record(
  {
    family: fc.constantFrom<'ipv4' | 'ipv6'>('ipv4', 'ipv6'),
    protocol: fc.constantFrom<'tcp' | 'udp' | 'icmp' | 'sctp'>('tcp', 'udp', 'icmp', 'sctp'),
    unreplied: fc.boolean(),
    assured: fc.boolean(),
    src: address,
    dst: address,
    replySrc: address,
    replyDst: address,
    sport: port,
    dport: port,
    mark: fc.constantFrom<Query['mark']>(7, { value: 0x101, mask: 0xff }),
    zone: fc.constantFrom(0, 3),
  },
  { requiredKeys: [] },
);
/** Mostly conditions a modern kernel compares in a flush, some it does not. */
const flushable: fc.Arbitrary<Query> = fc.record(
  {
    family: fc.constantFrom<'ipv4' | 'ipv6'>('ipv4', 'ipv6'),
    protocol: fc.constantFrom<'tcp' | 'udp' | 'sctp'>('tcp', 'udp', 'sctp'),
    unreplied: fc.boolean(),
    assured: fc.boolean(),
    src: fc.constantFrom('10.0.0.1', '192.0.2.81', '10.0.0.0/24', 'fd00::1'),
    replyDst: fc.constantFrom('10.0.0.2', 'fd00::2'),
    dport: fc.oneof(fc.constantFrom(...PORTS), fc.constant<[number, number]>([80, 443])),
    mark: fc.constantFrom<Query['mark']>(7, { value: 0x101, mask: 0xff }),
    zone: fc.constantFrom(0, 3),
  },
  { requiredKeys: [] },
);
const kernel: fc.Arbitrary<KernelFeatures> = fc
  .tuple(fc.constantFrom('5.4.0', '5.8.0', '5.10.0', '5.15.0', '6.8.0', '6.9.0', '6.11.0', '6.12.0', '6.18.0'), fc.boolean())
  .map(([release, off]) => kernelFeatures(release, off ? { CTPURGE_NO_KERNEL_FILTER: '1' } : {}));

function inCidrs(list: NativeCidr[] | undefined, family: number, a: Uint8Array): boolean {
  if (!list) return true;
  return list.some((c) => {
    if (c.family !== family) return false;
    for (let bit = 0; bit < c.prefix; bit++) {
      const m = 0x80 >> (bit % 8);
      if (((c.addr[bit >> 3] as number) & m) !== ((a[bit >> 3] as number) & m)) return false;
    }
    return true;
  });
}

/** What native/filter.cc Filter::matches decides (states and times left out: they never flush). */
function matches(f: NativeFilter, e: ModelEntry): boolean {
  const inRange = (r: [number, number] | undefined, p: number) => r === undefined || (hasPorts(e.protocol) && p >= r[0] && p <= r[1]);
  return (
    (!f.family || f.family === e.family) &&
    (f.protocol === undefined || f.protocol === e.protocol) &&
    (e.status & f.statusMask) === f.statusValue &&
    (f.mark === undefined || (e.mark & (f.markMask ?? 0xffffffff)) === (f.mark & (f.markMask ?? 0xffffffff))) &&
    (f.zone === undefined || f.zone === e.zone) &&
    inRange(f.sport, e.sport) &&
    inRange(f.dport, e.dport) &&
    inCidrs(f.src, e.family, e.src) &&
    inCidrs(f.dst, e.family, e.dst) &&
    inCidrs(f.replySrc, e.family, e.replySrc) &&
    inCidrs(f.replyDst, e.family, e.replyDst)
  );
}

/** What ctnetlink lets through a dump or flush request with this filter (a modern kernel). */
function kernelAccepts(k: NativeKernelFilter, e: ModelEntry): boolean {
  const addr = (want: Uint8Array | undefined, a: Uint8Array) => want === undefined || (e.family === 2 && want.every((b, i) => a[i] === b));
  return (
    (!k.family || k.family === e.family) &&
    (k.statusMask === undefined || (e.status & k.statusMask) === k.status) &&
    (k.mark === undefined || (e.mark & (k.markMask ?? 0xffffffff)) === k.mark) &&
    (k.zone === undefined || k.zone === e.zone) &&
    (k.protocol === undefined || k.protocol === e.protocol) &&
    (k.sport === undefined || (hasPorts(e.protocol) && k.sport === e.sport)) &&
    (k.dport === undefined || (hasPorts(e.protocol) && k.dport === e.dport)) &&
    addr(k.src, e.src) &&
    addr(k.dst, e.dst) &&
    addr(k.replySrc, e.replySrc) &&
    addr(k.replyDst, e.replyDst)
  );
}

function validPlan(q: Query, k: KernelFeatures, lanes: number, flush: boolean) {
  try {
    return planQuery(q, k, { lanes, flush });
  } catch {
    return null; // e.g. an IPv6 address with family ipv4: a usage error, tested elsewhere
  }
}

describe('planQuery against a model of the kernel', () => {
  it('dump lanes: every matching entry is sent and taken by exactly one lane, no other entry is taken', () => {
    fc.assert(
      fc.property(query, kernel, fc.constantFrom(1, 2), fc.array(entry, { minLength: 1, maxLength: 30 }), (q, k, lanes, entries) => {
        const plan = validPlan(q, k, lanes, false);
        fc.pre(plan !== null);
        if (plan === null) return;
        expect(plan.method).toBe('dump');
        expect(plan.lanes.length).toBeLessThanOrEqual(lanes);
        for (const e of entries) {
          const want = matches(plan.matchFilter, e);
          // The kernel's filter for the whole query never drops a match.
          if (want) expect(kernelAccepts(plan.kernelFilter, e)).toBe(true);
          const taken = plan.lanes.filter((l) => kernelAccepts(l.kernel, e) && matches(l.match, e)).length;
          expect(taken).toBe(want ? 1 : 0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('a flush deletes exactly the matching entries, and never without a condition', () => {
    let flushes = 0;
    fc.assert(
      fc.property(fc.oneof(query, flushable), fc.oneof(kernel, fc.constant(kernelFeatures('6.18.0', {}))), fc.array(entry, { minLength: 1, maxLength: 30 }), (q, k, entries) => {
        const plan = validPlan(q, k, 2, true);
        fc.pre(plan !== null);
        if (plan === null || plan.method !== 'flush') return;
        flushes++;
        expect(plan.empty).toBe(false);
        for (const l of plan.lanes) expect(hasCondition(l.kernel)).toBe(true);
        for (const e of entries) expect(plan.lanes.some((l) => kernelAccepts(l.kernel, e))).toBe(matches(plan.matchFilter, e));
      }),
      { numRuns: 3000 },
    );
    // The property was tested on flushes, not only on dumps.
    expect(flushes).toBeGreaterThan(100);
  });

  it('flushes only what the running kernel compares itself, and only when allowed', () => {
    const k = kernelFeatures('6.18.0', {});
    expect(planQuery({}, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ family: 'ipv4' }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, k, { flush: true }).method).toBe('flush');
    expect(planQuery({ unreplied: true }, k).method).toBe('dump');
    expect(planQuery({ unreplied: true, olderThan: 60 }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true, idleFor: 60 }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true, state: 'ESTABLISHED' }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ src: '10.0.0.0/24' }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ src: 'fd00::1' }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ protocol: 'sctp', dport: 80 }, k, { flush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, kernelFeatures('5.10.0', {}), { flush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, kernelFeatures('6.18.0', { CTPURGE_NO_KERNEL_FILTER: '1' }), { flush: true }).method).toBe('dump');
    // No family but an exact tuple: one request per family.
    expect(planQuery({ protocol: 'tcp' }, k, { flush: true }).lanes.map((l) => l.kernel)).toEqual([{ family: 2, protocol: 6 }, { family: 10, protocol: 6 }]);
  });

  it('a plan is used as it is where it fits, planned again where it does not, and never forged', () => {
    const k = kernelFeatures('6.18.0', {});
    const plan = planQuery({ unreplied: true }, k, { lanes: 2, flush: true });
    expect(isQueryPlan(plan)).toBe(true);
    expect(Object.isFrozen(plan) && Object.isFrozen(plan.lanes[0]?.kernel)).toBe(true);
    expect(toPlan(plan, kernelFeatures('6.18.0', {}), { lanes: 2, flush: true })).toBe(plan);
    // A dry run (no flush allowed) of the same plan dumps.
    expect(toPlan(plan, k, { lanes: 2 }).method).toBe('dump');
    expect(toPlan(plan, kernelFeatures('5.10.0', {}), { lanes: 2, flush: true }).method).toBe('dump');
    expect(isQueryPlan({ ...plan })).toBe(false);
    // The caller's own values are not frozen with the plan.
    const src = ['10.0.0.1'];
    expect(Object.isFrozen(planQuery({ src }, k).query)).toBe(true);
    expect(Object.isFrozen(src)).toBe(false);
    expect(() => planQuery({ unreplied: true }, k, { lanes: 3 })).toThrow(/^lanes: 3 is outside 1-2/);
    expect(() => planQuery({ unreplied: true }, k, { flush: 'yes' as never })).toThrow(/^flush: expected true or false/);
    expect(() => planQuery({ unreplied: true }, k, { bogus: 1 } as never)).toThrow(/unknown field 'bogus'/);
    // A copy is read as a query, and refused.
    expect(() => toPlan({ ...plan } as never, k, { flush: true })).toThrow(/unknown field 'query'/);
  });
});
