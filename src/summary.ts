/** Breakdowns of a table (by protocol, state, reply status; top talkers), computed from raw record chunks without building an Entry per row. */
import { formatIpv4, formatIpv6 } from './parse/address.js';
import { protocolName, stateName, IPS_SEEN_REPLY } from './protocols.js';
import { RECORD_SIZE } from './entry.js';
import { TimeSlice } from './timeSlice.js';

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
  /** How many entries a few typical purges would remove from the entries summarised. */
  candidates: Candidate[];
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

const TCP_ESTABLISHED = 3;
const SCTP_ESTABLISHED = 4;
const CANDIDATES: Candidate[] = [
  { args: '--unreplied --older 1h', query: { unreplied: true, olderThan: 3600 }, matched: 0 },
  { args: '--state ESTABLISHED --idle 6h', query: { state: 'ESTABLISHED', idleFor: 6 * 3600 }, matched: 0 },
  { args: '--state ESTABLISHED --idle 1d', query: { state: 'ESTABLISHED', idleFor: 86400 }, matched: 0 },
];

function inc(counts: Float64Array | number[], i: number): void {
  counts[i] = (counts[i] ?? 0) + 1;
}

function bucketOf(seconds: number): number {
  if (Number.isNaN(seconds)) return DURATION_BUCKETS.length;
  let i = 0;
  while (seconds >= (DURATION_BUCKETS[i] as { below: number }).below) i++;
  return i;
}

function buckets(counts: Float64Array): Ranked[] {
  const out = DURATION_BUCKETS.map((b, i) => ({ key: b.label, count: counts[i] as number }));
  out.push({ key: 'unknown', count: counts[DURATION_BUCKETS.length] as number });
  return out;
}

const AGE_SOURCES = ['unknown', 'timestamp', 'timeout'];

function bump<K>(m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function ranked<K>(m: Map<K, number>, top: number, key: (k: K) => string): Ranked[] {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, count]) => ({ key: key(k), count }));
}

/**
 * Counts of many keys (addresses: up to one per entry), in 64 Maps picked by the key's last
 * character. A Map grows by rehashing every entry in one synchronous step (31 ms at 512k keys),
 * which no time slice can split; 64 smaller Maps never take that long.
 */
class KeyCounts {
  readonly #shards = Array.from({ length: 64 }, () => new Map<string, number>());

  bump(k: string): void {
    bump(this.#shards[k.charCodeAt(k.length - 1) & 63] as Map<string, number>, k);
  }

  /**
   * The `top` largest counts, ties broken by key: one pass over the keys keeping a short
   * sorted list (sorting a million keys took 223 ms), pausing when the slice is due.
   */
  async top(top: number, slice: TimeSlice): Promise<[string, number][]> {
    const best: [string, number][] = [];
    const before = (a: [string, number], b: [string, number]) => a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);
    let n = 0;
    for (const shard of this.#shards) {
      for (const e of shard) {
        if (best.length < top || before(e, best[best.length - 1] as [string, number])) {
          let i = best.length;
          while (i > 0 && before(e, best[i - 1] as [string, number])) i--;
          best.splice(i, 0, e);
          if (best.length > top) best.pop();
        }
        if ((++n & 1023) === 0 && slice.due()) await slice.pause();
      }
    }
    return best;
  }
}

export class SummaryBuilder {
  /** talkers: false leaves the top lists empty (no key per distinct address is kept). */
  constructor(readonly talkers = true) {}

  #total = 0;
  #unreplied = 0;
  #proto = new Map<number, number>();
  #state = new Map<string, number>();
  #family = new Map<number, number>();
  #ageSource = new Map<number, number>();
  #src = new KeyCounts();
  #dst = new KeyCounts();
  #dport = new KeyCounts();
  #idle = new Float64Array(DURATION_BUCKETS.length + 1);
  #age = new Float64Array(DURATION_BUCKETS.length + 1);
  #candidates = CANDIDATES.map(() => 0);

  /** Adds the records of `buf` between byte offsets `start` and `end`. */
  add(buf: ArrayBuffer, start = 0, end = buf.byteLength): void {
    const bytes = new Uint8Array(buf);
    const view = new DataView(buf);
    for (let o = start; o + RECORD_SIZE <= end; o += RECORD_SIZE) {
      this.#total++;
      const fam = bytes[o + 18] as number;
      const proto = bytes[o + 19] as number;
      const state = stateName(proto, bytes[o + 20] as number);
      const unreplied = (view.getUint32(o + 4, true) & IPS_SEEN_REPLY) === 0;
      if (unreplied) this.#unreplied++;
      // Unknown times are NaN in the record (and an unknown age has source 0).
      const idle = view.getFloat64(o + 168, true);
      const age = (bytes[o + 21] as number) === 0 ? NaN : view.getFloat64(o + 24, true);
      inc(this.#idle, bucketOf(idle));
      inc(this.#age, bucketOf(age));
      if (unreplied && age >= 3600) inc(this.#candidates, 0);
      // --state ESTABLISHED selects TCP's and SCTP's ESTABLISHED.
      if ((proto === 6 && bytes[o + 20] === TCP_ESTABLISHED) || (proto === 132 && bytes[o + 20] === SCTP_ESTABLISHED)) {
        if (idle >= 6 * 3600) inc(this.#candidates, 1);
        if (idle >= 86400) inc(this.#candidates, 2);
      }
      bump(this.#proto, proto);
      if (state) bump(this.#state, state);
      bump(this.#family, fam);
      bump(this.#ageSource, bytes[o + 21] as number);
      if (!this.talkers) continue;
      // Keys are the raw address bytes as a latin1 string: cheap to build, formatted once at the end.
      const v4 = fam === 2;
      const len = v4 ? 4 : 16;
      this.#src.bump(String.fromCharCode(fam, ...bytes.subarray(o + 40, o + 40 + len)));
      this.#dst.bump(String.fromCharCode(fam, ...bytes.subarray(o + 56, o + 56 + len)));
      if ((bytes[o + 22] as number) & 16) this.#dport.bump(`${protocolName(proto)}/${view.getUint16(o + 74, true)}`);
    }
  }

  /** The summary; the top talkers are picked in time slices (`slice`), as the chunks were read. */
  async result(top = 10, slice = new TimeSlice()): Promise<TableSummary> {
    const addr = (k: string): string => {
      const b = Uint8Array.from(k.slice(1), (c) => c.charCodeAt(0));
      return k.charCodeAt(0) === 2 ? formatIpv4(b) : formatIpv6(b);
    };
    const talkers = async (c: KeyCounts) => (await c.top(top, slice)).map(([k, count]) => ({ key: addr(k), count }));
    return {
      total: this.#total,
      byProtocol: ranked(this.#proto, 256, (p) => String(protocolName(p))),
      byState: ranked(this.#state, 64, (s) => s),
      unreplied: this.#unreplied,
      replied: this.#total - this.#unreplied,
      byFamily: ranked(this.#family, 4, (f) => (f === 2 ? 'ipv4' : 'ipv6')),
      byAgeSource: ranked(this.#ageSource, 4, (s) => AGE_SOURCES[s] ?? 'unknown'),
      topSources: await talkers(this.#src),
      topDestinations: await talkers(this.#dst),
      topDestinationPorts: (await this.#dport.top(top, slice)).map(([key, count]) => ({ key, count })),
      byIdle: buckets(this.#idle),
      byAge: buckets(this.#age),
      candidates: CANDIDATES.map((c, i) => ({ args: c.args, query: { ...c.query }, matched: this.#candidates[i] as number })),
    };
  }
}
