/**
 * A model of what the kernel keeps of an entry and does with a dump or flush request, and of
 * what native/filter.cc decides for it: the plan's property tests (test/unit/11-plan.test.ts)
 * hold planQuery to it without a kernel.
 */
import fc from 'fast-check';
import { parseCidr } from '../../src/parse/address.js';
import type { KernelFilter, NativeCidr, NativeFilter } from '../../src/native.js';

export interface ModelEntry {
  family: 2 | 10;
  protocol: number;
  sport: number;
  dport: number;
  replySport: number;
  replyDport: number;
  src: Uint8Array;
  dst: Uint8Array;
  replySrc: Uint8Array;
  replyDst: Uint8Array;
  status: number;
  mark: number;
  /** Label bits 0-7 (labels[0]); the rest are 0. */
  labels: number;
  /** At most one of the three is nonzero, as in the kernel. */
  zone: number;
  origZone: number;
  replyZone: number;
}

export const V4 = ['10.0.0.1', '10.0.0.2', '192.0.2.81'];
export const V6 = ['fd00::1', 'fd00::2'];
export const PORTS = [80, 443, 1000];
export const bytes = (a: string) => parseCidr(a, 'test').addr;
export const hasPorts = (protocol: number) => protocol !== 1;

/** An entry's zone: none, of both directions, or of one (conntrack -I --zone, --orig-zone, --reply-zone). */
export const ZONES = [
  { zone: 0, origZone: 0, replyZone: 0 },
  { zone: 3, origZone: 0, replyZone: 0 },
  { zone: 0, origZone: 3, replyZone: 0 },
  { zone: 0, origZone: 0, replyZone: 3 },
  { zone: 0, origZone: 5, replyZone: 0 },
];

export const entry: fc.Arbitrary<ModelEntry> = fc.constantFrom<2 | 10>(2, 10).chain((family) => {
  const addr = fc.constantFrom(...(family === 2 ? V4 : V6)).map(bytes);
  return fc.tuple(fc.record({
    family: fc.constant(family),
    protocol: fc.constantFrom(6, 17, 1, 132),
    sport: fc.constantFrom(...PORTS),
    dport: fc.constantFrom(...PORTS),
    replySport: fc.constantFrom(...PORTS),
    replyDport: fc.constantFrom(...PORTS),
    src: addr,
    dst: addr,
    replySrc: addr,
    replyDst: addr,
    // SEEN_REPLY 2, ASSURED 4, SRC_NAT_DONE 0x80, DST_NAT_DONE 0x100, OFFLOAD 0x4000.
    status: fc.constantFrom(0, 2, 4, 6, 0x82, 0x186, 0x180, 0x4006),
    mark: fc.constantFrom(0, 1, 7, 0x101),
    labels: fc.constantFrom(0, 0b10, 0b100010),
  }), fc.constantFrom(...ZONES)).map(([e, zones]) => ({ ...e, ...zones }));
});


export function inCidrs(list: NativeCidr[] | undefined, family: number, a: Uint8Array): boolean {
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
export function matches(f: NativeFilter, e: ModelEntry): boolean {
  return matchesOwn(f, e) && !(f.except ?? []).some((x) => matchesOwn(x, e));
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.every((x, i) => x === b[i]);
/** NAT as conntrack -n/-g reads it: set up by the kernel, and showing in the reply tuple. */
const sourceNated = (e: ModelEntry) => (e.status & 0x80) !== 0 && (!sameBytes(e.replyDst, e.src) || (hasPorts(e.protocol) && e.replyDport !== e.sport));
const destinationNated = (e: ModelEntry) => (e.status & 0x100) !== 0 && (!sameBytes(e.replySrc, e.dst) || (hasPorts(e.protocol) && e.replySport !== e.dport));

/** The filter's own conditions, without its exclusions. */
export function matchesOwn(f: NativeFilter, e: ModelEntry): boolean {
  const inRange = (r: [number, number] | undefined, p: number) => r === undefined || (hasPorts(e.protocol) && p >= r[0] && p <= r[1]);
  const wanted = (want: boolean | undefined, has: boolean) => want === undefined || want === has;
  return (
    wanted(f.srcNat, sourceNated(e)) &&
    wanted(f.dstNat, destinationNated(e)) &&
    wanted(f.anyNat, sourceNated(e) || destinationNated(e)) &&
    (f.labels === undefined || (f.labels.slice(1).every((b) => b === 0) && ((f.labels[0] as number) & e.labels) === f.labels[0])) &&
    inRange(f.replySport, e.replySport) &&
    inRange(f.replyDport, e.replyDport) &&
    (!f.family || f.family === e.family) &&
    (f.protocol === undefined || f.protocol === e.protocol) &&
    (e.status & f.statusMask) === f.statusValue &&
    (f.mark === undefined || (e.mark & (f.markMask ?? 0xffffffff)) === f.mark) &&
    (f.zone === undefined || f.zone === e.zone) &&
    (f.origZone === undefined || f.origZone === e.origZone) &&
    (f.replyZone === undefined || f.replyZone === e.replyZone) &&
    inRange(f.sport, e.sport) &&
    inRange(f.dport, e.dport) &&
    inCidrs(f.src, e.family, e.src) &&
    inCidrs(f.dst, e.family, e.dst) &&
    inCidrs(f.replySrc, e.family, e.replySrc) &&
    inCidrs(f.replyDst, e.family, e.replyDst)
  );
}

/** What ctnetlink lets through a dump or flush request with this filter (a modern kernel). */
export function kernelAccepts(k: KernelFilter, e: ModelEntry): boolean {
  const addr = (want: Uint8Array | undefined, a: Uint8Array) => want === undefined || (e.family === 2 && want.every((b, i) => a[i] === b));
  return (
    (!k.family || k.family === e.family) &&
    (k.statusMask === undefined || (e.status & k.statusMask) === k.status) &&
    (k.mark === undefined || (e.mark & (k.markMask ?? 0xffffffff)) === k.mark) &&
    // nf_ct_zone_equal_any: the entry's one zone id, whatever its direction.
    (k.zone === undefined || k.zone === e.zone + e.origZone + e.replyZone) &&
    (k.protocol === undefined || k.protocol === e.protocol) &&
    (k.sport === undefined || (hasPorts(e.protocol) && k.sport === e.sport)) &&
    (k.dport === undefined || (hasPorts(e.protocol) && k.dport === e.dport)) &&
    addr(k.src, e.src) &&
    addr(k.dst, e.dst) &&
    addr(k.replySrc, e.replySrc) &&
    addr(k.replyDst, e.replyDst)
  );
}

