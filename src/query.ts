/** The query API: validated, and compiled into the filter every entry is checked against (src/plan.ts plans it for a kernel). */
import { AF_INET, AF_INET6, formatCidr, parseCidr, type Cidr, type Family } from './parse/address.js';
import { parseDuration } from './parse/duration.js';
import { booleanField, fieldError, integerField, ownOptions, typeName } from './validate.js';
import { parsePortRange, type PortRange } from './parse/port.js';
import { ALL_STATE_NAMES, DCCP_STATES, IPS_ASSURED, IPS_SEEN_REPLY, PROTOCOLS, SCTP_STATES, TCP_STATES, type ProtocolName } from './protocols.js';
import type { NativeFilter } from './native.js';

export interface MarkQuery {
  value: number;
  mask?: number;
}

export interface Query {
  family?: Family;
  protocol?: ProtocolName | number;
  /** One state or a list (any of): 'ESTABLISHED', ['SYN_SENT', 'SYN_RECV']. */
  state?: string | string[];
  /** true: never saw a reply ([UNREPLIED]); false: did see one. */
  unreplied?: boolean;
  assured?: boolean;
  /** Address or CIDR, or a list (any of). */
  src?: string | string[];
  dst?: string | string[];
  replySrc?: string | string[];
  replyDst?: string | string[];
  /** Port or [from, to]. */
  sport?: number | PortRange;
  dport?: number | PortRange;
  mark?: number | MarkQuery;
  zone?: number;
  /**
   * Time since creation, at least: seconds, or '3600', '90m', '1h', '2d'. Exact with
   * nf_conntrack_timestamp; without it, the idle time stands in (a lower bound of the age,
   * so nothing younger is taken). Entries whose age is unknown never match.
   */
  olderThan?: number | string;
  /**
   * Time since the last packet, at least (same units): estimated from the timeout left,
   * with timestamps on or off. A busy flow never matches, however old. Unknown never matches.
   */
  idleFor?: number | string;
}

export const QUERY_FIELDS = [
  'family', 'protocol', 'state', 'unreplied', 'assured', 'src', 'dst', 'replySrc', 'replyDst',
  'sport', 'dport', 'mark', 'zone', 'olderThan', 'idleFor',
] as const;

export interface CompiledQuery {
  /** The validated query: its own fields only. */
  readonly query: Query;
  /** What every entry is checked against (the kernel's part is planned in src/plan.ts). */
  readonly filter: NativeFilter;
  /** True when the query has no condition at all (it selects every entry). */
  readonly empty: boolean;
  /** Human-readable form, e.g. "unreplied, older than 1h, tcp". */
  readonly description: string;
}

const u32 = (value: unknown, name: string) => integerField(value, name, 0, 0xffffffff);

export function parseProtocol(value: unknown, name = 'protocol'): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 255) throw fieldError(RangeError, name, `protocol number must be 0-255, got ${value}`);
    return value;
  }
  if (typeof value === 'string') {
    const lower = value.toLowerCase();
    if (lower in PROTOCOLS) return PROTOCOLS[lower as ProtocolName];
    if (lower === 'ipv6-icmp') return PROTOCOLS.icmpv6;
    if (/^\d{1,3}$/.test(value) && Number(value) <= 255) return Number(value);
    throw fieldError(RangeError, name, `unknown protocol ${JSON.stringify(value.slice(0, 40))} (use ${Object.keys(PROTOCOLS).join(', ')} or a number 0-255)`);
  }
  throw fieldError(TypeError, name, `expected a protocol name or number, got ${typeName(value)}`);
}

function cidrList(value: unknown, name: string): Cidr[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw fieldError(RangeError, name, `empty list`);
  if (list.length > 1024) throw fieldError(RangeError, name, `at most 1024 addresses`);
  return list.map((v) => parseCidr(v, name));
}

function stateMasks(value: unknown): { tcp: number; sctp: number; dccp: number; names: string[] } {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw fieldError(RangeError, 'state', 'empty list');
  let tcp = 0;
  let sctp = 0;
  let dccp = 0;
  const names: string[] = [];
  for (const v of list) {
    if (typeof v !== 'string') throw fieldError(TypeError, 'state', `expected a state name, got ${typeName(v)}`);
    const s = v.toUpperCase();
    const t = (TCP_STATES as readonly string[]).indexOf(s);
    const c = (SCTP_STATES as readonly string[]).indexOf(s);
    const d = (DCCP_STATES as readonly string[]).indexOf(s);
    if (s === 'NONE' || (t < 0 && c < 0 && d < 0)) {
      throw fieldError(RangeError, 'state', `unknown state ${JSON.stringify(v.slice(0, 40))} (known: ${ALL_STATE_NAMES.join(', ')})`);
    }
    if (t > 0) tcp |= 1 << t;
    if (c > 0) sctp |= 1 << c;
    if (d > 0) dccp |= 1 << d;
    names.push(s);
  }
  return { tcp, sctp, dccp, names };
}

/**
 * Validates a query and compiles it for the native matcher. Throws TypeError/RangeError
 * naming the field (err.field); never touches the kernel. planQuery (src/plan.ts) adds what
 * the kernel filters and the lanes.
 */
export function compileQuery(query: Query = {}): CompiledQuery {
  // Own enumerable fields only: an inherited or polluted field never becomes a condition.
  const q = ownOptions(query, 'query', QUERY_FIELDS);
  const filter: NativeFilter = {
    family: 0,
    hasStates: false,
    tcpStates: 0,
    sctpStates: 0,
    dccpStates: 0,
    statusMask: 0,
    statusValue: 0,
  };
  const desc: string[] = [];
  const set = (k: string) => q[k] !== undefined;

  if (set('family')) {
    if (q.family === 'ipv4') filter.family = AF_INET;
    else if (q.family === 'ipv6') filter.family = AF_INET6;
    else throw fieldError(RangeError, 'family', `expected 'ipv4' or 'ipv6', got ${typeName(q.family)}`);
    desc.push(q.family as string);
  }
  if (set('protocol')) {
    filter.protocol = parseProtocol(q.protocol);
    desc.push(typeof q.protocol === 'string' ? q.protocol.toLowerCase() : `protocol ${filter.protocol}`);
  }
  if (set('state')) {
    const m = stateMasks(q.state);
    Object.assign(filter, { hasStates: true, tcpStates: m.tcp, sctpStates: m.sctp, dccpStates: m.dccp });
    desc.push(`state ${m.names.join('|')}`);
  }
  if (set('unreplied')) {
    const u = booleanField(q.unreplied, 'unreplied');
    filter.statusMask |= IPS_SEEN_REPLY;
    if (!u) filter.statusValue |= IPS_SEEN_REPLY;
    desc.push(u ? 'unreplied' : 'replied');
  }
  if (set('assured')) {
    const a = booleanField(q.assured, 'assured');
    filter.statusMask |= IPS_ASSURED;
    if (a) filter.statusValue |= IPS_ASSURED;
    desc.push(a ? 'assured' : 'not assured');
  }
  for (const key of ['src', 'dst', 'replySrc', 'replyDst'] as const) {
    if (!set(key)) continue;
    const list = cidrList(q[key], key);
    if (filter.family) {
      const fam = filter.family === AF_INET ? 'ipv4' : 'ipv6';
      for (const c of list) {
        if (c.family !== fam) throw fieldError(RangeError, key, `${formatCidr(c)} is not ${fam}, but family is ${fam}`);
      }
    }
    filter[key] = list.map((c) => ({ family: c.family === 'ipv4' ? AF_INET : AF_INET6, addr: c.addr, prefix: c.prefix }));
    desc.push(`${key} ${list.map(formatCidr).join(',')}`);
  }
  for (const key of ['sport', 'dport'] as const) {
    if (!set(key)) continue;
    const r = parsePortRange(q[key], key);
    filter[key] = r;
    desc.push(`${key} ${r[0] === r[1] ? r[0] : `${r[0]}-${r[1]}`}`);
  }
  if (set('mark')) {
    const m = q.mark;
    if (typeof m === 'number') {
      filter.mark = u32(m, 'mark');
      filter.markMask = 0xffffffff;
    } else if (m !== null && typeof m === 'object' && !Array.isArray(m)) {
      const mo = ownOptions<Record<string, unknown>>(m, 'mark', ['value', 'mask']);
      filter.mark = u32(mo.value, 'mark.value');
      filter.markMask = mo.mask === undefined ? 0xffffffff : u32(mo.mask, 'mark.mask');
    } else {
      throw fieldError(TypeError, 'mark', `expected a number or { value, mask }, got ${typeName(m)}`);
    }
    desc.push(filter.markMask === 0xffffffff ? `mark ${filter.mark}` : `mark ${filter.mark}/0x${filter.markMask.toString(16)}`);
  }
  if (set('zone')) {
    const z = integerField(q.zone, 'zone', 0, 65535);
    filter.zone = z;
    desc.push(`zone ${z}`);
  }
  if (set('olderThan')) {
    filter.olderThan = parseDuration(q.olderThan, 'olderThan');
    desc.push(`older than ${typeof q.olderThan === 'string' ? q.olderThan : `${filter.olderThan}s`}`);
  }
  if (set('idleFor')) {
    filter.idleFor = parseDuration(q.idleFor, 'idleFor');
    desc.push(`idle for ${typeof q.idleFor === 'string' ? q.idleFor : `${filter.idleFor}s`}`);
  }
  // Addresses of one family imply it: the kernel then skips the other family while dumping
  // instead of sending entries that could never match.
  if (!filter.family) {
    const families = new Set([...(filter.src ?? []), ...(filter.dst ?? []), ...(filter.replySrc ?? []), ...(filter.replyDst ?? [])].map((c) => c.family));
    if (families.size === 1) filter.family = [...families][0] as number;
  }
  return { query: q as Query, filter, empty: desc.length === 0, description: desc.length ? desc.join(', ') : 'every entry' };
}
