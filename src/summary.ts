/** Breakdowns of a table (by protocol, state, reply status; top talkers), computed from raw record chunks without building an Entry per row. */
import { formatIpv4, formatIpv6 } from './parse/address.js';
import { protocolName, stateName, IPS_SEEN_REPLY } from './protocols.js';
import { RECORD_SIZE } from './entry.js';

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

export class SummaryBuilder {
  #total = 0;
  #unreplied = 0;
  #proto = new Map<number, number>();
  #state = new Map<string, number>();
  #family = new Map<number, number>();
  #ageSource = new Map<number, number>();
  #src = new Map<string, number>();
  #dst = new Map<string, number>();
  #dport = new Map<string, number>();

  add(buf: ArrayBuffer): void {
    const bytes = new Uint8Array(buf);
    const view = new DataView(buf);
    for (let o = 0; o + RECORD_SIZE <= buf.byteLength; o += RECORD_SIZE) {
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
      bump(this.#src, String.fromCharCode(fam, ...bytes.subarray(o + 40, o + 40 + len)));
      bump(this.#dst, String.fromCharCode(fam, ...bytes.subarray(o + 56, o + 56 + len)));
      if ((bytes[o + 22] as number) & 16) bump(this.#dport, `${protocolName(proto)}/${view.getUint16(o + 74, true)}`);
    }
  }

  result(top = 10): TableSummary {
    const addr = (k: string): string => {
      const b = Uint8Array.from(k.slice(1), (c) => c.charCodeAt(0));
      return k.charCodeAt(0) === 2 ? formatIpv4(b) : formatIpv6(b);
    };
    return {
      total: this.#total,
      byProtocol: ranked(this.#proto, 256, (p) => String(protocolName(p))),
      byState: ranked(this.#state, 64, (s) => s),
      unreplied: this.#unreplied,
      replied: this.#total - this.#unreplied,
      byFamily: ranked(this.#family, 4, (f) => (f === 2 ? 'ipv4' : 'ipv6')),
      byAgeSource: ranked(this.#ageSource, 4, (s) => AGE_SOURCES[s] ?? 'unknown'),
      topSources: ranked(this.#src, top, addr),
      topDestinations: ranked(this.#dst, top, addr),
      topDestinationPorts: ranked(this.#dport, top, (k) => k),
    };
  }
}
