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
  #total = 0;
  #unreplied = 0;
  #proto = new Map<number, number>();
  #state = new Map<string, number>();
  #family = new Map<number, number>();
  #ageSource = new Map<number, number>();
  #src = new KeyCounts();
  #dst = new KeyCounts();
  #dport = new KeyCounts();

  /** Adds the records of `buf` between byte offsets `start` and `end`. */
  add(buf: ArrayBuffer, start = 0, end = buf.byteLength): void {
    const bytes = new Uint8Array(buf);
    const view = new DataView(buf);
    for (let o = start; o + RECORD_SIZE <= end; o += RECORD_SIZE) {
      this.#total++;
      const fam = bytes[o + 18] as number;
      const proto = bytes[o + 19] as number;
      const state = stateName(proto, bytes[o + 20] as number);
      if ((view.getUint32(o + 4, true) & IPS_SEEN_REPLY) === 0) this.#unreplied++;
      bump(this.#proto, proto);
      if (state) bump(this.#state, state);
      bump(this.#family, fam);
      bump(this.#ageSource, bytes[o + 21] as number);
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
    };
  }
}
