/**
 * The query plan: everything decided about a query before any kernel I/O, in one place and
 * without a kernel. A plan says how a purge deletes (one filtered flush, or dump, match and
 * delete), whether the dump is read ahead on a thread of its own, what the kernel is asked to
 * filter by, and what every entry it sends is checked against. The native layer only executes
 * it (docs/architecture.md).
 */
import { AF_INET, AF_INET6 } from './parse/address.js';
import { bare, booleanField, fieldError, integerField, ownOptions } from './validate.js';
import type { KernelFeatures } from './kernel.js';
import { compileQuery, UNSET_FILTER, type Query, type Unselective } from './query.js';
import type { NativeCidr, NativeFilter, KernelFilter, NativeLane } from './native.js';

export interface PlanOptions {
  /**
   * Threads a dump may use (1 or 2). Default 1. With 2 the dump is read ahead on a thread of its
   * own: the kernel's dump work (in the thread that receives) runs beside the parsing, matching
   * and deleting (see docs/performance.md).
   */
  lanes?: number;
  /**
   * Whether a purge may use a filtered flush, which deletes what no one has seen: only a
   * purge that needs no entry (no dry run, limit, onDeleted or audit log). Default false.
   */
  allowFlush?: boolean;
}

export interface QueryPlan {
  /** The validated query (own fields only), frozen. */
  readonly query: Readonly<Query>;
  /** Human-readable form, e.g. "unreplied, older than 1h, tcp". */
  readonly description: string;
  /** True when the query has no condition at all (it selects every entry). */
  readonly empty: boolean;
  /**
   * True when some condition narrows the query beyond its family and protocol; a purge
   * refuses a plan that is not (see CompiledQuery.selective).
   */
  readonly selective: boolean;
  /** The conditions given that cannot narrow (a mask of 0, a /0 prefix, every state...). */
  readonly unselective: readonly Unselective[];
  /**
   * How a purge with this plan deletes: 'flush' (one filtered flush request per lane) when
   * flushes were allowed and the kernel compares every condition itself; else 'dump'.
   */
  readonly method: 'flush' | 'dump';
  /** The whole query as the kernel filters it while dumping. */
  readonly kernelFilter: Readonly<KernelFilter>;
  /** The whole query as every entry is checked. */
  readonly matchFilter: Readonly<NativeFilter>;
  /** 'dump': the one dump (read ahead when planned for 2 threads). 'flush': the flush requests. */
  readonly lanes: readonly Readonly<NativeLane>[];
  /** What it was planned for: a plan made for another kernel, lane count or flush permission is planned again. */
  readonly kernel: Readonly<KernelFeatures>;
  readonly maxLanes: number;
  readonly allowFlush: boolean;
}

const FULL_MASK = 0xffffffff;
/** Plans made by planQuery: a look-alike object is never taken for one. */
const made = new WeakSet<object>();

/** True for a plan made by planQuery (not a copy or a look-alike). */
export function isQueryPlan(value: unknown): value is QueryPlan {
  return typeof value === 'object' && value !== null && made.has(value);
}

/**
 * Validates a query and plans it. Throws TypeError/RangeError with the field named
 * (err.field); never touches the kernel.
 */
export function planQuery(query: Query, kernel: KernelFeatures, options: PlanOptions = {}): QueryPlan {
  const o = ownOptions<PlanOptions>(options, 'plan options', ['lanes', 'allowFlush']);
  const maxLanes = o.lanes === undefined ? 1 : integerField(o.lanes, 'lanes', 1, 2);
  const allowFlush = o.allowFlush === undefined ? false : booleanField(o.allowFlush, 'allowFlush');
  const compiled = compileQuery(query);
  const match = compiled.filter;
  // Only a selective query is ever flushed (a purge refuses the others): a mask of 0 or a /0
  // prefix is "compared" by the kernel, and would flush the whole family.
  const flushes = allowFlush && compiled.selective ? flushRequests(match, kernel) : null;
  const lanes: NativeLane[] = flushes ?? [bare({ kernel: kernelFilter(match, kernel), match, readAhead: maxLanes >= 2 })];
  const plan: QueryPlan = {
    // Shallow copies, frozen here so that deepFreeze stops at them: their values are the
    // caller's own (a list of addresses, a mark object) and stay the caller's to change.
    query: Object.freeze(bare({ ...compiled.query })),
    description: compiled.description,
    empty: compiled.empty,
    selective: compiled.selective,
    unselective: compiled.unselective,
    method: flushes ? 'flush' : 'dump',
    kernelFilter: kernelFilter(match, kernel),
    matchFilter: match,
    lanes,
    kernel: Object.freeze(bare({ ...kernel })),
    maxLanes,
    allowFlush,
  };
  deepFreeze(plan);
  made.add(plan);
  return plan;
}

/** True when plan was made for these kernel features, lanes and flush permission. */
export function planFits(plan: QueryPlan, kernel: KernelFeatures, options: PlanOptions = {}): boolean {
  return plan.maxLanes === (options.lanes ?? 1) && plan.allowFlush === (options.allowFlush ?? false) && sameFeatures(plan.kernel, kernel);
}

/**
 * A query, or a plan, as a plan for these kernel features and options: a plan made for them
 * is used as it is; one made for others is planned again from its validated query.
 */
export function toPlan(query: Query | QueryPlan, kernel: KernelFeatures, options: PlanOptions = {}): QueryPlan {
  if (!isQueryPlan(query)) return planQuery(query, kernel, options);
  return planFits(query, kernel, options) ? query : planQuery(query.query, kernel, options);
}

function sameFeatures(a: KernelFeatures, b: KernelFeatures): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof KernelFeatures>;
  for (const k of keys) if (k !== 'release' && a[k] !== b[k]) return false;
  return true;
}

/**
 * The refusal every purge entry point shares: a query that selects every entry of its family
 * and protocol (none, or only conditions such as a mask of 0 or a /0 prefix) would empty the
 * table, or all of its TCP, in one call.
 */
export function refuseUnselective(plan: QueryPlan, what: string): void {
  if (plan.selective) return;
  const example = 'give at least one condition that narrows it (e.g. { unreplied: true, olderThan: 3600 })';
  if (plan.empty) throw fieldError(TypeError, 'query', `refusing to ${what} with an empty query, which would delete every entry; ${example}`);
  const why = plan.unselective.map((u) => `${u.field}: ${u.reason}`).join('; ');
  throw fieldError(TypeError, 'query', `refusing to ${what} with a query that selects every entry of its kind (${plan.description}${why ? `; ${why}` : ''}); ${example}`);
}

/**
 * The part of a filter the running kernel applies itself while dumping. Everything is
 * checked again per entry, so a kernel condition may select more than the match, never less.
 */
export function kernelFilter(f: NativeFilter, kernel: KernelFeatures): KernelFilter {
  if (!kernel.kernelFilters) return bare({ family: 0 });
  const d: KernelFilter = bare({ family: f.family, ...kernelConditions(f, kernel) });
  const zone = zonePrefilter(f);
  if (zone !== undefined && kernel.zoneFilter) d.zone = zone;
  if (kernel.tupleDumpFilter) Object.assign(d, kernelTuple(f));
  return d;
}

/**
 * The kernel's zone filter compares an entry's zone id in either direction
 * (nf_ct_zone_equal_any), while the match compares each of the three zones conntrack -L shows.
 * A nonzero zone id asked for in any of them selects a superset of the match, so it may filter
 * a dump; zone 0 never (an entry with a zone of one direction has zone 0 in the other), and no
 * zone ever makes a flush.
 */
function zonePrefilter(f: NativeFilter): number | undefined {
  return [f.zone, f.origZone, f.replyZone].find((z) => z !== undefined && z !== 0);
}

/** Status and mark, where this kernel compares them the way the match does. */
function kernelConditions(f: NativeFilter, kernel: KernelFeatures): Partial<KernelFilter> {
  const d: Partial<KernelFilter> = bare({});
  if (kernel.statusFilter && f.statusMask !== 0) {
    d.status = f.statusValue;
    d.statusMask = f.statusMask;
  }
  if (f.mark !== undefined) {
    const mask = f.markMask ?? FULL_MASK;
    // 5.8 as released skipped entries that matched under a partial mask. The kernel compares
    // (mark & mask) with the value as given, as the match does.
    if (mask === FULL_MASK || kernel.maskedMarkFilter !== false) {
      d.mark = f.mark;
      d.markMask = mask;
    }
  }
  return d;
}

/**
 * The exact-tuple conditions the kernel's CTA_FILTER compares the way the match does:
 * protocol; one port (TCP/UDP: for SCTP, DCCP and UDP-Lite it lets every port through); one
 * IPv4 address (/32) per direction and side (IPv6 never: the kernel's IPv6 comparison is
 * inverted). Nothing without a family: the kernel needs one to compare addresses.
 */
function kernelTuple(f: NativeFilter): Partial<KernelFilter> {
  const t: Partial<KernelFilter> = bare({});
  if (f.family !== AF_INET && f.family !== AF_INET6) return t;
  if (f.protocol !== undefined) {
    t.protocol = f.protocol;
    if (f.protocol === 6 || f.protocol === 17) {
      if (f.sport !== undefined && f.sport[0] === f.sport[1]) t.sport = f.sport[0];
      if (f.dport !== undefined && f.dport[0] === f.dport[1]) t.dport = f.dport[0];
    }
  }
  if (f.family === AF_INET) {
    for (const key of ['src', 'dst', 'replySrc', 'replyDst'] as const) {
      const one = exactV4(f[key]);
      if (one) t[key] = one;
    }
  }
  return t;
}

function exactV4(list: NativeCidr[] | undefined): Uint8Array | undefined {
  const c = list?.length === 1 ? list[0] : undefined;
  return c?.family === AF_INET && c.prefix === 32 ? c.addr.slice(0, 4) : undefined;
}

const TUPLE_KEYS = ['protocol', 'sport', 'dport', 'src', 'dst', 'replySrc', 'replyDst'] as const;

/**
 * How a filtered flush treats each condition of the match, for every key of NativeFilter (the
 * type makes a new key a compile error until it is placed here): 'compared' when the kernel
 * can compare it in a flush exactly as the match does (and flushRequests then checks that the
 * request carries it), 'dump' when it never can. The allow-list: a condition that is set and
 * not 'compared', or not carried into the request, means dump, match and delete.
 */
export const FLUSH_RULES: { readonly [K in keyof Required<NativeFilter>]: 'compared' | 'dump' } = Object.freeze({
  family: 'compared',
  protocol: 'compared',
  sport: 'compared',
  dport: 'compared',
  src: 'compared',
  dst: 'compared',
  replySrc: 'compared',
  replyDst: 'compared',
  mark: 'compared',
  markMask: 'compared',
  statusMask: 'compared',
  statusValue: 'compared',
  // States and times are never compared in a flush; zones only by id in either direction.
  hasStates: 'dump',
  tcpStates: 'dump',
  sctpStates: 'dump',
  dccpStates: 'dump',
  zone: 'dump',
  origZone: 'dump',
  replyZone: 'dump',
  olderThan: 'dump',
  idleFor: 'dump',
  // Reply ports are matched per entry (the kernel could compare one exact reply port in a
  // CTA_FILTER; not used yet).
  replySport: 'dump',
  replyDport: 'dump',
  // Matched per entry: the kernel has no "except".
  except: 'dump',
  // NAT is read from the two tuples, labels from the entry: a flush compares neither.
  srcNat: 'dump',
  dstNat: 'dump',
  anyNat: 'dump',
  labels: 'dump',
  ids: 'dump',
});

/** The values of a filter's keys that select nothing (compileQuery's starting filter). */
const UNSET: Partial<Record<keyof NativeFilter, unknown>> = UNSET_FILTER;

/** The keys of a filter that hold a condition: own, and not at their "nothing" value. */
export function conditionKeys(f: NativeFilter): (keyof NativeFilter)[] {
  return (Object.keys(f) as (keyof NativeFilter)[]).filter((k) => f[k] !== undefined && (!(k in UNSET) || f[k] !== UNSET[k]));
}

/** Whether a flush request carries a 'compared' condition of the match exactly. */
function carried(k: keyof NativeFilter, f: NativeFilter, request: KernelFilter): boolean {
  switch (k) {
    case 'family': return request.family === f.family;
    case 'protocol': return request.protocol === f.protocol;
    case 'sport': case 'dport': return f[k]?.[0] === f[k]?.[1] && request[k] === f[k]?.[0];
    case 'src': case 'dst': case 'replySrc': case 'replyDst': return request[k] !== undefined;
    case 'mark': case 'markMask': return request.mark === f.mark && request.markMask === (f.markMask ?? FULL_MASK);
    case 'statusMask': case 'statusValue': return request.statusMask === f.statusMask && request.status === f.statusValue;
    default: return false;
  }
}

/**
 * The flush requests (DELETE without a tuple) that remove exactly what the filter selects,
 * or null when one condition is not compared by the running kernel in a flush (FLUSH_RULES):
 * an exact tuple only from 6.12 (before, the same DELETE is refused or read as a delete of one
 * tuple). A query without a family but with tuple conditions is flushed once per family. A
 * request without any condition would empty the table: never.
 */
export function flushRequests(f: NativeFilter, kernel: KernelFeatures): NativeLane[] | null {
  if (!kernel.kernelFilters) return null;
  const keys = conditionKeys(f);
  if (keys.some((k) => FLUSH_RULES[k] !== 'compared')) return null;
  const tuple = TUPLE_KEYS.some((k) => f[k] !== undefined);
  if (tuple && !kernel.tupleFlushFilter) return null;
  const parts = tuple && f.family === 0 ? [AF_INET, AF_INET6].map((family) => bare({ ...f, family })) : [f];
  const lanes: NativeLane[] = [];
  for (const part of parts) {
    const request: KernelFilter = bare({ family: part.family, ...kernelConditions(part, kernel), ...kernelTuple(part) });
    // Every condition of the query must be in the request, or the flush takes more.
    if (!conditionKeys(part).every((k) => carried(k, part, request))) return null;
    if (!hasCondition(request)) return null;
    lanes.push(bare({ kernel: request, match: part }));
  }
  return lanes;
}

/** Whether a kernel filter selects anything less than a whole family. */
export function hasCondition(k: KernelFilter): boolean {
  return k.statusMask !== undefined || k.mark !== undefined || k.zone !== undefined || TUPLE_KEYS.some((key) => k[key] !== undefined);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
