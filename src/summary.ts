/**
 * Breakdowns of a table (protocol, state, reply status, idle time, age, top talkers), from one
 * native pass (native/summaryWorker.cc): no JS object or string per entry, and memory bounded
 * whatever the number of distinct addresses.
 */
import { AGE_SOURCES } from './entry.js';
import { formatIpv4, formatIpv6 } from './parse/address.js';
import { protocolName, stateName } from './protocols.js';
import type { NativeSummary, NativeTalkers } from './native.js';

/** A key and its count; in the top lists, ties are in key order (addresses in byte order). */
export interface Ranked {
  key: string;
  count: number;
}

export interface TableSummary {
  total: number;
  byProtocol: Ranked[];
  byState: Ranked[];
  unreplied: number;
  replied: number;
  byFamily: Ranked[];
  /** Age source counts: how many ages are exact, estimated, unknown. */
  byAgeSource: Ranked[];
  topSources: Ranked[];
  topDestinations: Ranked[];
  topDestinationPorts: Ranked[];
  /** Entries per idle-time bucket (time since the last packet), in DURATION_BUCKETS order, then 'unknown'. */
  byIdle: Ranked[];
  /** Entries per age bucket (time since creation, see Entry.age), same buckets. */
  byAge: Ranked[];
  /**
   * Idle-time and age histograms (the byIdle buckets) per protocol state and reply status,
   * largest group first: `{ group: 'tcp ESTABLISHED', reply: 'assured', total, idle, age }`.
   */
  distributions: Distribution[];
  /** How many entries a few typical purges would remove from the entries summarised. */
  candidates: Candidate[];
  /**
   * 0 when every address was counted exactly (up to 96 MiB of counts: millions of
   * distinct IPv4 addresses). On larger tables, every address with more entries than this
   * (the heavy-hitter bound, total / 16,384) is in topSources/topDestinations when it ranks
   * there, with its exact count; below it, near-ties among many small talkers may be left out.
   */
  talkersExactAbove: number;
}

export interface Distribution {
  /** 'tcp ESTABLISHED', 'sctp COOKIE_WAIT', or the protocol alone for protocols without states ('udp'). */
  group: string;
  /** unreplied: no reply seen; assured: [ASSURED]; replied: a reply, not (yet) assured. */
  reply: 'unreplied' | 'assured' | 'replied';
  total: number;
  /** Counts per bucket: DURATION_BUCKETS, then unknown. */
  idle: number[];
  age: number[];
}

export interface Candidate {
  /** The CLI selectors, e.g. '--state ESTABLISHED --idle 6h'. */
  args: string;
  /** The same as an API query. */
  query: { unreplied?: boolean; state?: string; olderThan?: number; idleFor?: number };
  matched: number;
}

/** Bucket upper bounds in seconds, and their labels ('<1m', '1m-10m', ...; the last is open). */
export const DURATION_BUCKETS: readonly { below: number; label: string }[] = [
  { below: 60, label: '<1m' },
  { below: 600, label: '1m-10m' },
  { below: 3600, label: '10m-1h' },
  { below: 6 * 3600, label: '1h-6h' },
  { below: 86400, label: '6h-1d' },
  { below: 5 * 86400, label: '1d-5d' },
  { below: Infinity, label: '>=5d' },
];

const CANDIDATES: Candidate[] = [
  { args: '--unreplied --older 1h', query: { unreplied: true, olderThan: 3600 }, matched: 0 },
  { args: '--state ESTABLISHED --idle 6h', query: { state: 'ESTABLISHED', idleFor: 6 * 3600 }, matched: 0 },
  { args: '--state ESTABLISHED --idle 1d', query: { state: 'ESTABLISHED', idleFor: 86400 }, matched: 0 },
];

function ranked(rows: [string, number][], top: number): Ranked[] {
  return rows
    .filter(([, c]) => c > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, count]) => ({ key, count }));
}

function buckets(counts: Float64Array): Ranked[] {
  return [...DURATION_BUCKETS.map((b, i) => ({ key: b.label, count: counts[i] ?? 0 })), { key: 'unknown', count: counts[DURATION_BUCKETS.length] ?? 0 }];
}

/** The first `top` talkers (the native list is already in order: count, then address bytes). */
function talkers(t: NativeTalkers, top: number): Ranked[] {
  const out: Ranked[] = [];
  for (let i = 0; i < t.counts.length && out.length < top; i++) {
    const count = t.counts[i] as number;
    if (count <= 0) continue;
    const addr = t.addrs.subarray(i * 16, i * 16 + 16);
    out.push({ key: t.families[i] === 2 ? formatIpv4(addr) : formatIpv6(addr), count });
  }
  return out;
}

/** Destination ports as 'tcp/80', ties in text order. */
function ports(triplets: Float64Array, top: number): Ranked[] {
  const rows: [string, number][] = [];
  for (let i = 0; i + 2 < triplets.length; i += 3) rows.push([`${protocolName(triplets[i] as number)}/${triplets[i + 1] as number}`, triplets[i + 2] as number]);
  return rows
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, top)
    .map(([key, count]) => ({ key, count }));
}

const REPLY_KINDS = ['unreplied', 'assured', 'replied'] as const;

function distributions(rows: Float64Array): Distribution[] {
  const width = 3 + 2 * (DURATION_BUCKETS.length + 1);
  const out: Distribution[] = [];
  for (let o = 0; o + width <= rows.length; o += width) {
    const proto = rows[o] as number;
    const name = String(protocolName(proto));
    const state = stateName(proto, rows[o + 1] as number);
    const idle = [...rows.subarray(o + 3, o + 3 + DURATION_BUCKETS.length + 1)];
    const age = [...rows.subarray(o + 3 + DURATION_BUCKETS.length + 1, o + width)];
    out.push({ group: state ? `${name} ${state}` : name, reply: REPLY_KINDS[rows[o + 2] as number] ?? 'replied', total: idle.reduce((a, b) => a + b, 0), idle, age });
  }
  return out.sort((a, b) => b.total - a.total || (a.group < b.group ? -1 : a.group > b.group ? 1 : a.reply < b.reply ? -1 : 1));
}

/** The TableSummary of a native summary result; `talkers` false leaves the top lists empty. */
export function tableSummary(n: NativeSummary, top: number, withTalkers: boolean): TableSummary {
  const byState = new Map<string, number>();
  for (const [proto, counts] of [[6, n.states.tcp], [132, n.states.sctp], [33, n.states.dccp]] as const) {
    counts.forEach((c, state) => {
      const name = c > 0 ? stateName(proto, state) : null;
      if (name) byState.set(name, (byState.get(name) ?? 0) + c);
    });
  }
  const protocols: [string, number][] = [];
  n.protocols.forEach((c, p) => protocols.push([String(protocolName(p)), c]));
  return {
    total: n.total,
    byProtocol: ranked(protocols, 256),
    byState: ranked([...byState], 64),
    unreplied: n.unreplied,
    replied: n.total - n.unreplied,
    byFamily: ranked([['ipv4', n.ipv4], ['ipv6', n.ipv6]], 4),
    byAgeSource: ranked([...n.ageSources].map((c, i) => [AGE_SOURCES[i] as string, c]), 4),
    topSources: withTalkers ? talkers(n.sources, top) : [],
    topDestinations: withTalkers ? talkers(n.destinations, top) : [],
    topDestinationPorts: withTalkers ? ports(n.dports, top) : [],
    byIdle: buckets(n.idle),
    byAge: buckets(n.age),
    distributions: distributions(n.classes),
    candidates: CANDIDATES.map((c, i) => ({ args: c.args, query: { ...c.query }, matched: n.candidates[i] ?? 0 })),
    talkersExactAbove: n.exactAbove,
  };
}
