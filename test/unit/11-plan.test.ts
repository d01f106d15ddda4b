/**
 * The query plan against a model of what the kernel does with each request, without a
 * kernel: for random queries, entries and kernel versions, the lanes a dump sends select
 * exactly the matching entries once, and a flush deletes exactly them. An unfiltered flush
 * would delete entries that do not match, and fails this.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { kernelFeatures, type KernelFeatures } from '../../src/kernel.js';
import { readFileSync } from 'node:fs';
import { conditionKeys, FLUSH_RULES, flushRequests, hasCondition, isQueryPlan, planQuery, toPlan } from '../../src/plan.js';
import { bytes, entry, kernelAccepts, matches, matchesOwn, PORTS, V4, V6, ZONES, type ModelEntry } from '../helpers/planModel.js';
import { compileQuery, type Query } from '../../src/query.js';

const zoneId = fc.constantFrom(0, 3, 5);
/** Marks: exact, masked, a mask of 0 (every mark), and one with bits outside its mask (refused). */
const markQuery = fc.constantFrom<Query['mark']>(7, { value: 0x1, mask: 0xff }, { value: 0x101, mask: 0xfff }, { value: 0, mask: 0 }, { value: 5, mask: 0 }, { value: 0x101, mask: 0xff });

/** An exclusion: one or two conditions. */
const exclusion: fc.Arbitrary<Query> = fc.record(
  {
    dport: fc.constantFrom(...PORTS),
    src: fc.constantFrom(...V4),
    mark: fc.constantFrom<Query['mark']>(7, 0),
    zone: zoneId,
    unreplied: fc.boolean(),
  },
  { requiredKeys: [] },
).filter((q) => Object.keys(q).length > 0 && Object.keys(q).length <= 2);
const address = fc.oneof(fc.constantFrom(...V4, ...V6, '10.0.0.0/24', '0.0.0.0/0', '::/0'), fc.constant<string[]>(['10.0.0.1', '192.0.2.81']), fc.constant<string[]>(['0.0.0.0/0', '::/0']));
const status = fc.constantFrom<Query['status']>('ASSURED', ['SEEN_REPLY', 'ASSURED'], 'UNREPLIED', 'SRC_NAT_DONE', ['OFFLOAD'], 'CONFIRMED');
const label = fc.constantFrom<Query['labels']>(1, [1, 5], 3);
const port = fc.oneof(fc.constantFrom(...PORTS), fc.constant<[number, number]>([80, 443]), fc.constant<[number, number]>([0, 65535]));
const query: fc.Arbitrary<Query> = fc.record(
  {
    family: fc.constantFrom<'ipv4' | 'ipv6'>('ipv4', 'ipv6'),
    protocol: fc.constantFrom<'tcp' | 'udp' | 'icmp' | 'sctp'>('tcp', 'udp', 'icmp', 'sctp'),
    unreplied: fc.boolean(),
    assured: fc.boolean(),
    status,
    srcNat: fc.boolean(),
    dstNat: fc.boolean(),
    anyNat: fc.boolean(),
    labels: label,
    src: address,
    dst: address,
    replySrc: address,
    replyDst: address,
    sport: port,
    dport: port,
    replySport: port,
    replyDport: port,
    mark: markQuery,
    zone: zoneId,
    origZone: zoneId,
    replyZone: zoneId,
    except: fc.oneof(exclusion, fc.array(exclusion, { minLength: 1, maxLength: 2 })),
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
    status,
    src: fc.constantFrom('10.0.0.1', '192.0.2.81', '10.0.0.0/24', 'fd00::1'),
    replyDst: fc.constantFrom('10.0.0.2', 'fd00::2'),
    dport: fc.oneof(fc.constantFrom(...PORTS), fc.constant<[number, number]>([80, 443])),
    mark: fc.constantFrom<Query['mark']>(7, { value: 0x1, mask: 0xff }, { value: 0, mask: 0 }),
  },
  { requiredKeys: [] },
);
const kernel: fc.Arbitrary<KernelFeatures> = fc
  .tuple(fc.constantFrom('5.4.0', '5.8.0', '5.10.0', '5.15.0', '6.8.0', '6.9.0', '6.11.0', '6.12.0', '6.18.0'), fc.boolean())
  .map(([release, off]) => kernelFeatures(release, off ? { CTPURGE_NO_KERNEL_FILTER: '1' } : {}));

function validPlan(q: Query, k: KernelFeatures, lanes: number, flush: boolean) {
  try {
    return planQuery(q, k, { lanes, allowFlush: flush });
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
    expect(planQuery({}, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ family: 'ipv4' }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, k, { allowFlush: true }).method).toBe('flush');
    expect(planQuery({ unreplied: true }, k).method).toBe('dump');
    expect(planQuery({ unreplied: true, olderThan: 60 }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true, idleFor: 60 }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true, state: 'ESTABLISHED' }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ src: '10.0.0.0/24' }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ src: 'fd00::1' }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ protocol: 'sctp', dport: 80 }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, kernelFeatures('5.10.0', {}), { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, kernelFeatures('6.18.0', { CTPURGE_NO_KERNEL_FILTER: '1' }), { allowFlush: true }).method).toBe('dump');
    // No family but an exact tuple: one request per family.
    expect(planQuery({ protocol: 'tcp', dport: 80 }, k, { allowFlush: true }).lanes.map((l) => ({ ...l.kernel }))).toEqual([{ family: 2, protocol: 6, dport: 80 }, { family: 10, protocol: 6, dport: 80 }]);
    // A family or a protocol alone selects all of it: never flushed (and a purge refuses it).
    expect(planQuery({ protocol: 'tcp' }, k, { allowFlush: true }).method).toBe('dump');
    // Zones are compared by id in either direction: never flushed, whatever the zone.
    for (const zone of ['zone', 'origZone', 'replyZone']) for (const id of [0, 5]) expect(planQuery({ [zone]: id, unreplied: true }, k, { allowFlush: true }).method).toBe('dump');
    // A mark is sent as given; a mask of 0 alone never flushes.
    expect(planQuery({ mark: { value: 1, mask: 0xff } }, k, { allowFlush: true }).lanes[0]?.kernel).toMatchObject({ mark: 1, markMask: 0xff });
    expect(planQuery({ mark: { value: 0, mask: 0 } }, k, { allowFlush: true }).method).toBe('dump');
  });

  it('a plan is used as it is where it fits, planned again where it does not, and never forged', () => {
    const k = kernelFeatures('6.18.0', {});
    const plan = planQuery({ unreplied: true }, k, { lanes: 2, allowFlush: true });
    expect(isQueryPlan(plan)).toBe(true);
    expect(Object.isFrozen(plan) && Object.isFrozen(plan.lanes[0]?.kernel)).toBe(true);
    expect(toPlan(plan, kernelFeatures('6.18.0', {}), { lanes: 2, allowFlush: true })).toBe(plan);
    // A dry run (no flush allowed) of the same plan dumps.
    expect(toPlan(plan, k, { lanes: 2 }).method).toBe('dump');
    expect(toPlan(plan, kernelFeatures('5.10.0', {}), { lanes: 2, allowFlush: true }).method).toBe('dump');
    expect(isQueryPlan({ ...plan })).toBe(false);
    // The caller's own values are not frozen with the plan.
    const src = ['10.0.0.1'];
    expect(Object.isFrozen(planQuery({ src }, k).query)).toBe(true);
    expect(Object.isFrozen(src)).toBe(false);
    expect(() => planQuery({ unreplied: true }, k, { lanes: 3 })).toThrow(/^lanes: 3 is outside 1-2/);
    expect(() => planQuery({ unreplied: true }, k, { allowFlush: 'yes' as never })).toThrow(/^allowFlush: expected true or false/);
    expect(() => planQuery({ unreplied: true }, k, { bogus: 1 } as never)).toThrow(/^bogus: unknown field of plan options/);
    // A copy is read as a query, and refused.
    expect(() => toPlan({ ...plan } as never, k, { allowFlush: true })).toThrow(/^query: unknown field of query/);
  });
});

describe('the flush is an allow-list', () => {
  const k = kernelFeatures('6.18.0', {});

  it('every filter key the addon reads is placed in FLUSH_RULES (compared or dump)', () => {
    // The keys native/jsConvert.cc's filterFromJs reads: a key added there and not placed
    // here would be a condition the flush planner knows nothing about.
    const source = readFileSync(new URL('../../native/jsConvert.cc', import.meta.url), 'utf8');
    const body = /Filter filterFromJs\([^)]*\) \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? '';
    const read = new Set([...body.matchAll(/"([A-Za-z]+)"/g)].map((m) => m[1] as string));
    expect(read.size).toBeGreaterThan(15);
    expect([...read].filter((key) => !(key in FLUSH_RULES))).toEqual([]);
    expect(Object.keys(FLUSH_RULES).filter((key) => !read.has(key))).toEqual([]);
  });

  it('a condition it does not know means a dump, not a flush of what the rest selects', () => {
    const f = compileQuery({ protocol: 'tcp', dport: 80, family: 'ipv4' }).filter;
    expect(flushRequests(f, k)).not.toBeNull();
    // The review's case: one more field, unknown to the planner.
    expect(flushRequests({ ...f, bogusSelector: [1] } as never, k)).toBeNull();
    for (const [key, rule] of Object.entries(FLUSH_RULES)) {
      if (rule !== 'dump') continue;
      const value = key === 'hasStates' ? true : key.endsWith('States') ? 2 : 0;
      expect(flushRequests({ ...f, [key]: value } as never, k), key).toBeNull();
    }
  });

  it('a compared condition the request cannot carry means a dump', () => {
    const base = compileQuery({ family: 'ipv4', unreplied: true }).filter;
    expect(flushRequests({ ...base, sport: [1, 2] }, k)).toBeNull();
    expect(flushRequests({ ...base, protocol: 132, sport: [5, 5] }, k)).toBeNull();
    expect(flushRequests({ ...base, src: compileQuery({ src: ['10.0.0.1', '10.0.0.2'] }).filter.src ?? [] }, k)).toBeNull();
    expect(flushRequests({ ...base, mark: 1, markMask: 0xff }, kernelFeatures('5.8.0', {}))).toBeNull();
    expect(flushRequests(base, kernelFeatures('5.10.0', {}))).toBeNull();
    // statusValue 0 is carried with statusMask (unreplied: SEEN_REPLY clear).
    expect(conditionKeys(base)).toEqual(['family', 'statusMask']);
  });
});

describe('a purge is refused for what the query selects, not for how many conditions it has', () => {
  /** Entries that differ from a base in one field at a time: a narrowing condition fails one of them. */
  function variants(family: 2 | 10, protocol: number): ModelEntry[] {
    const addrs = (family === 2 ? [...V4, '172.16.0.1'] : [...V6, '2001:db8::9']).map(bytes);
    const base: ModelEntry = { family, protocol, sport: 80, dport: 80, src: addrs[0] as Uint8Array, dst: addrs[0] as Uint8Array, replySrc: addrs[0] as Uint8Array, replyDst: addrs[0] as Uint8Array, status: 0, mark: 0, ...ZONES[0] } as ModelEntry;
    const out: ModelEntry[] = [];
    for (const p of [0, 80, 443, 1000, 65535]) out.push({ ...base, sport: p }, { ...base, dport: p });
    for (const a of addrs) out.push({ ...base, src: a }, { ...base, dst: a }, { ...base, replySrc: a }, { ...base, replyDst: a });
    for (const status of [0, 2, 4, 6]) out.push({ ...base, status });
    for (const mark of [0, 1, 5, 7, 0x101, 0xffffffff]) out.push({ ...base, mark });
    for (const z of ZONES) out.push({ ...base, ...z });
    return out;
  }

  it('selective exactly when some entry of its family and protocol stays', () => {
    fc.assert(
      fc.property(query, fc.array(entry, { minLength: 1, maxLength: 30 }), (q, entries) => {
        const plan = validPlan(q, kernelFeatures('6.18.0', {}), 1, false);
        fc.pre(plan !== null);
        if (plan === null) return;
        const f = plan.matchFilter;
        const families = f.family ? [f.family as 2 | 10] : ([2, 10] as const);
        const protocols = f.protocol !== undefined ? [f.protocol] : [6, 17, 1, 132];
        const kind = (e: ModelEntry) => families.includes(e.family) && protocols.includes(e.protocol);
        if (!plan.selective) {
          // Not selective: every entry of its kind matches, or is kept only by an exclusion.
          for (const e of entries.filter(kind)) expect(matchesOwn(f, e)).toBe(true);
          expect(plan.unselective.length > 0 || plan.empty || Object.keys(q).every((key) => key === 'family' || key === 'protocol' || key === 'except')).toBe(true);
        } else {
          // Selective: some entry of its kind does not.
          const all = families.flatMap((fam) => protocols.flatMap((p) => variants(fam, p)));
          expect(all.some((e) => !matches(f, e))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('names the conditions that cannot narrow', () => {
    const k = kernelFeatures('6.18.0', {});
    expect(planQuery({ mark: { value: 0, mask: 0 } }, k)).toMatchObject({ selective: false, unselective: [{ field: 'mark' }] });
    expect(planQuery({ src: '10.1.0.1/0' }, k)).toMatchObject({ selective: false, unselective: [{ field: 'src' }] });
    expect(planQuery({ src: '0.0.0.0/0', family: 'ipv4' }, k).selective).toBe(false);
    expect(planQuery({ src: ['0.0.0.0/0'] }, k).selective).toBe(false);
    expect(planQuery({ src: ['0.0.0.0/0', '::/0'] }, k).selective).toBe(false);
    expect(planQuery({ dport: [0, 65535], protocol: 'tcp' }, k).selective).toBe(false);
    expect(planQuery({ family: 'ipv6', protocol: 'udp' }, k).selective).toBe(false);
    expect(planQuery({ olderThan: 0 }, k).selective).toBe(false);
    expect(planQuery({ state: ['NONE', 'SYN_SENT'].slice(1) }, k).selective).toBe(true);
    expect(planQuery({ zone: 0 }, k).selective).toBe(true);
    expect(planQuery({ mark: 5, src: '10.0.0.0/0' }, k).selective).toBe(true);
    expect(() => planQuery({ mark: { value: 0x10000, mask: 0xffff } }, k)).toThrow(/^mark\.value: 0x10000 has bits outside the mask 0xffff/);
    expect(() => planQuery({ mark: { value: 5, mask: 0 } }, k)).toThrow(/^mark\.value: /);
  });
});

describe('exclusions', () => {
  const k = kernelFeatures('6.18.0', {});
  it('compile into the filter, are described, never flush, and never make a query selective', () => {
    const plan = planQuery({ state: 'ESTABLISHED', idleFor: '6h', except: { dst: '10.1.2.3', dport: 5432 } }, k, { allowFlush: true });
    expect(plan.description).toBe('state ESTABLISHED, idle for 6h, except (dst 10.1.2.3, dport 5432)');
    expect(plan.matchFilter.except).toHaveLength(1);
    expect(plan.matchFilter.except?.[0]).toMatchObject({ family: 2, dport: [5432, 5432] });
    expect(planQuery({ unreplied: true, except: [{ dport: 22 }, { src: '10.0.0.0/8' }] }, k, { allowFlush: true }).method).toBe('dump');
    expect(planQuery({ unreplied: true }, k, { allowFlush: true }).method).toBe('flush');
    expect(planQuery({ except: { dport: 22 } }, k).selective).toBe(false);
    // The kernel filter is the query's own: exclusions only narrow, per entry.
    expect(planQuery({ unreplied: true, except: { unreplied: true } }, k).kernelFilter).toMatchObject({ statusMask: 2, status: 0 });
  });

  it('bad exclusions name the field', () => {
    expect(() => compileQuery({ unreplied: true, except: {} })).toThrow(/^except: an empty exclusion would keep every entry/);
    expect(() => compileQuery({ unreplied: true, except: [{ dport: 1 }, { dport: 70000 }] })).toThrow(/^except\[1\]\.dport: /);
    expect(() => compileQuery({ unreplied: true, except: { dport: 1, except: { dport: 2 } } as never })).toThrow(/^except: an exclusion has no exclusions of its own/);
    expect(() => compileQuery({ unreplied: true, except: [] })).toThrow(/^except: empty list/);
    expect(() => compileQuery({ unreplied: true, except: 5 as never })).toThrow(/^except: /);
  });
});

describe('lanes', () => {
  const k612 = kernelFeatures('6.12.0', {});
  const plan = (q: Query, max = 2) => planQuery(q, k612, { lanes: max });

  it('a dump is one lane, read ahead on a second thread when planned for 2: a split walks the table once per lane', () => {
    for (const q of [{ dport: [1, 1024] }, { family: 'ipv4', protocol: 'tcp' }, { src: '10.1.0.0/16' }, { protocol: 'tcp', dst: '192.0.2.81', dport: 80 }] as Query[]) {
      const two = plan(q);
      expect(two.lanes, JSON.stringify(q)).toHaveLength(1);
      expect(two.lanes[0]?.readAhead).toBe(true);
      // The lane is the whole query: its kernel filter is the plan's.
      expect(two.lanes[0]?.kernel).toEqual(two.kernelFilter);
      expect(two.lanes[0]?.match).toEqual(two.matchFilter);
      expect(plan(q, 1).lanes.map((l) => l.readAhead)).toEqual([false]);
    }
  });

  it('flush requests are never read ahead (nothing comes back)', () => {
    const flush = planQuery({ protocol: 'tcp', dport: 80 }, k612, { lanes: 2, allowFlush: true });
    expect(flush.method).toBe('flush');
    expect(flush.lanes.every((l) => l.readAhead === undefined)).toBe(true);
  });
});
