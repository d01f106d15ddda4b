/** The query API: validated, and compiled into the filter every entry is checked against (src/plan.ts plans it for a kernel). */
import { AF_INET, AF_INET6, formatCidr, parseCidr, type Cidr, type Family } from './parse/address.js';
import { parseDuration } from './parse/duration.js';
import { nearest } from './parse/nearest.js';
import { bare, booleanField, fieldError, integerField, ownOptions, typeName } from './validate.js';
import { parsePortRange, type PortRange } from './parse/port.js';
import { ALL_STATE_NAMES, CONNTRACK_STATUS_NAMES, DCCP_STATES, IPS_ASSURED, IPS_SEEN_REPLY, PROTOCOLS, protocolName, SCTP_STATES, STATUS_BITS, TCP_STATES, type ProtocolName, type StatusFlagName } from './protocols.js';
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
  /**
   * Status bits that must all be set (conntrack's -u): 'ASSURED', ['SEEN_REPLY', 'OFFLOAD'],
   * the names conntrack and the kernel's header give them, or the entry's flag names (seenReply). 'UNREPLIED' means SEEN_REPLY is
   * not set, as in conntrack.
   */
  status?: string | string[];
  /**
   * Source NAT shows in the reply tuple (conntrack -n, --src-nat): the kernel has set up source
   * NAT (SRC_NAT_DONE) and the reply's destination address or port is not the original source.
   * false: not source-NATed.
   */
  srcNat?: boolean;
  /** Destination NAT shows in the reply tuple (conntrack -g, --dst-nat): the reply's source is not the original destination. */
  dstNat?: boolean;
  /** Either NAT (conntrack -j, --any-nat). */
  anyNat?: boolean;
  /** Connection label bits 0-127 that must all be set (conntrack -l; the CLI also takes connlabel.conf names). */
  labels?: number | number[];
  /** Address or CIDR, or a list (any of). */
  src?: string | string[];
  dst?: string | string[];
  replySrc?: string | string[];
  replyDst?: string | string[];
  /** Port or [from, to]. */
  sport?: number | PortRange;
  dport?: number | PortRange;
  /** The reply direction's ports (conntrack's --reply-port-src/--reply-port-dst). */
  replySport?: number | PortRange;
  replyDport?: number | PortRange;

  /**
   * The connection mark, compared as the kernel, conntrack, iptables and nft compare it:
   * (mark & mask) === value. A value with bits outside its mask is refused (it could never
   * match), and a mask of 0 matches every entry. A string is conntrack's form: '0x10/0xff', '7'.
   */
  mark?: number | string | MarkQuery;
  /**
   * The conntrack zone of both directions (conntrack -L's `zone=`; 0 for an entry without one,
   * including an entry whose zone applies to one direction only). conntrack's --zone.
   */
  zone?: number;
  /** The zone of the original direction only (`zone-orig=`, conntrack's --orig-zone); 0 when none. */
  origZone?: number;
  /** The zone of the reply direction only (`zone-reply=`, conntrack's --reply-zone); 0 when none. */
  replyZone?: number;
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
  /**
   * Exclusions: an entry that matches any of these queries is kept, whatever the rest says
   * ("ESTABLISHED idle 6 h, except to 10.1.2.3 port 5432"). Matched per entry, never in a
   * kernel flush. An exclusion's unknown time counts as a match, so an entry is never taken on
   * a guess. They narrow what a query selects but never make it selective on their own.
   */
  except?: Query | Query[];
}

export const QUERY_FIELDS = [
  'family', 'protocol', 'state', 'unreplied', 'assured', 'status', 'srcNat', 'dstNat', 'anyNat', 'labels', 'src', 'dst', 'replySrc', 'replyDst',
  'sport', 'dport', 'replySport', 'replyDport', 'mark', 'zone', 'origZone', 'replyZone', 'olderThan', 'idleFor', 'except',
] as const;

/** A condition that cannot narrow a query: its field, and why ("a mask of 0 matches every mark"). */
export interface Unselective {
  readonly field: string;
  readonly reason: string;
}

export interface CompiledQuery {
  /** The validated query: its own fields only. */
  readonly query: Query;
  /** What every entry is checked against (the kernel's part is planned in src/plan.ts). */
  readonly filter: NativeFilter;
  /** True when the query has no condition at all (it selects every entry). */
  readonly empty: boolean;
  /**
   * True when some condition keeps entries of the query's family and protocol out. A family,
   * a protocol, a mask of 0, a /0 prefix, every port, every state or a time of 0 select every
   * entry of their kind, so alone they never make a query selective: a purge refuses it.
   */
  readonly selective: boolean;
  /** The conditions given that select every entry of their kind, and why (for the refusal's message). */
  readonly unselective: readonly Unselective[];
  /** Human-readable form, e.g. "unreplied, older than 1h, tcp". */
  readonly description: string;
}

/** A filter with no condition: compileQuery's start, and what the flush planner reads as "not set". */
export const UNSET_FILTER: Readonly<NativeFilter> = Object.freeze(
  bare({
    family: 0,
    hasStates: false,
    tcpStates: 0,
    sctpStates: 0,
    dccpStates: 0,
    statusMask: 0,
    statusValue: 0,
  }),
);

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
      const near = nearest(s, ALL_STATE_NAMES);
      throw fieldError(RangeError, 'state', `unknown state ${JSON.stringify(v.slice(0, 40))}${near ? ` (did you mean ${near}?)` : ''} (known: ${ALL_STATE_NAMES.join(', ')})`);
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
  const filter: NativeFilter = bare({ ...UNSET_FILTER });
  const desc: string[] = [];
  // What narrows the selection beyond family and protocol, and what was given but cannot.
  let selective = false;
  const unselective: Unselective[] = [];
  const narrows = (yes: boolean, field: string, reason: string) => {
    if (yes) selective = true;
    else unselective.push(Object.freeze({ field, reason }));
  };
  const set = (k: string) => q[k] !== undefined;

  if (set('family')) {
    if (q.family === 'ipv4') filter.family = AF_INET;
    else if (q.family === 'ipv6') filter.family = AF_INET6;
    else throw fieldError(RangeError, 'family', `expected 'ipv4' or 'ipv6', got ${typeName(q.family)}`);
    desc.push(q.family as string);
  }
  if (set('protocol')) {
    filter.protocol = parseProtocol(q.protocol);
    const name = protocolName(filter.protocol);
    desc.push(typeof name === 'string' ? name : `protocol ${name}`);
  }
  if (set('state')) {
    const m = stateMasks(q.state);
    Object.assign(filter, { hasStates: true, tcpStates: m.tcp, sctpStates: m.sctp, dccpStates: m.dccp });
    desc.push(`state ${m.names.join('|')}`);
    narrows(!everyState(filter), 'state', 'it names every state');
  }
  // Status conditions share one mask: a bit asked for both set and clear could match nothing.
  const statusFrom: Record<number, string> = {};
  const requireStatus = (bit: number, on: boolean, field: string, text: string) => {
    if (filter.statusMask & bit && ((filter.statusValue & bit) !== 0) !== on) {
      throw fieldError(RangeError, field, `${text} contradicts ${statusFrom[bit]}, so no entry could match`);
    }
    statusFrom[bit] = text;
    filter.statusMask = (filter.statusMask | bit) >>> 0;
    if (on) filter.statusValue = (filter.statusValue | bit) >>> 0;
  };
  if (set('unreplied')) {
    selective = true;
    const u = booleanField(q.unreplied, 'unreplied');
    requireStatus(IPS_SEEN_REPLY, !u, 'unreplied', u ? 'unreplied' : 'replied');
    desc.push(u ? 'unreplied' : 'replied');
  }
  if (set('assured')) {
    selective = true;
    const a = booleanField(q.assured, 'assured');
    requireStatus(IPS_ASSURED, a, 'assured', a ? 'assured' : 'not assured');
    desc.push(a ? 'assured' : 'not assured');
  }
  if (set('status')) {
    const names = statusNames(q.status);
    for (const n of names) requireStatus(n.bit, n.on, 'status', `status ${n.name}`);
    desc.push(`status ${names.map((n) => n.name).join(',')}`);
    // Every entry of the table is CONFIRMED (only confirmed entries are in it).
    narrows(names.some((n) => n.bit !== 1 << STATUS_BITS.confirmed), 'status', 'every entry in the table is CONFIRMED');
  }
  for (const key of ['srcNat', 'dstNat', 'anyNat'] as const) {
    if (!set(key)) continue;
    filter[key] = booleanField(q[key], key);
    desc.push(`${filter[key] ? '' : 'not '}${key === 'srcNat' ? 'source-NATed' : key === 'dstNat' ? 'destination-NATed' : 'NATed'}`);
    selective = true;
  }
  if (set('labels')) {
    const list = Array.isArray(q.labels) ? q.labels : [q.labels];
    if (list.length === 0) throw fieldError(RangeError, 'labels', 'empty list');
    const bits = new Uint8Array(16);
    const shown: number[] = [];
    for (const l of list) {
      const bit = integerField(l, 'labels', 0, 127);
      bits[bit >> 3] = (bits[bit >> 3] as number) | (1 << (bit & 7));
      if (!shown.includes(bit)) shown.push(bit);
    }
    filter.labels = bits;
    desc.push(`labels ${shown.join(',')}`);
    selective = true;
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
    filter[key] = list.map((c) => bare({ family: c.family === 'ipv4' ? AF_INET : AF_INET6, addr: c.addr, prefix: c.prefix }));
    desc.push(`${key} ${list.map(formatCidr).join(',')}`);
  }
  for (const key of ['sport', 'dport', 'replySport', 'replyDport'] as const) {
    if (!set(key)) continue;
    const r = parsePortRange(q[key], key);
    filter[key] = r;
    desc.push(`${key} ${r[0] === r[1] ? r[0] : `${r[0]}-${r[1]}`}`);
    narrows(r[0] > 0 || r[1] < 65535, key, '0-65535 is every port');
  }
  if (set('mark')) {
    const m = q.mark;
    if (typeof m === 'number') {
      filter.mark = u32(m, 'mark');
      filter.markMask = 0xffffffff;
    } else if (typeof m === 'string') {
      // conntrack's and the CLI's form: VALUE or VALUE/MASK, decimal or 0x hex.
      const parts = /^(0x[0-9a-f]{1,8}|\d{1,10})(?:\/(0x[0-9a-f]{1,8}|\d{1,10}))?$/i.exec(m.trim());
      if (!parts) throw fieldError(RangeError, 'mark', `expected VALUE or VALUE/MASK (decimal or 0x hex), got ${JSON.stringify(m.slice(0, 40))}`);
      filter.mark = u32(Number(parts[1]), 'mark');
      filter.markMask = parts[2] === undefined ? 0xffffffff : u32(Number(parts[2]), 'mark.mask');
    } else if (m !== null && typeof m === 'object' && !Array.isArray(m)) {
      const mo = ownOptions<Record<string, unknown>>(m, 'mark', ['value', 'mask'], true);
      filter.mark = u32(mo.value, 'mark.value');
      filter.markMask = mo.mask === undefined ? 0xffffffff : u32(mo.mask, 'mark.mask');
    } else {
      throw fieldError(TypeError, 'mark', `expected a number, 'VALUE/MASK' or { value, mask }, got ${typeName(m)}`);
    }
    const hex = (n: number) => `0x${n.toString(16)}`;
    // The kernel and conntrack compare (mark & mask) with the value as given: bits outside
    // the mask could never match, and ctpurge would otherwise select what conntrack does not.
    if ((filter.mark & ~filter.markMask) >>> 0 !== 0) {
      throw fieldError(RangeError, typeof m === 'object' ? 'mark.value' : 'mark', `${hex(filter.mark)} has bits outside the mask ${hex(filter.markMask)}, so no entry could match; give ${hex((filter.mark & filter.markMask) >>> 0)}/${hex(filter.markMask)}`);
    }
    const text = filter.markMask === 0xffffffff ? `mark ${filter.mark}` : `mark ${filter.mark}/${hex(filter.markMask)}`;
    desc.push(text);
    narrows(filter.markMask !== 0, 'mark', 'a mask of 0 matches every mark');
  }
  for (const key of ['zone', 'origZone', 'replyZone'] as const) {
    if (!set(key)) continue;
    const z = integerField(q[key], key, 0, 65535);
    filter[key] = z;
    desc.push(`${key === 'zone' ? 'zone' : key === 'origZone' ? 'orig zone' : 'reply zone'} ${z}`);
    selective = true;
  }
  for (const key of ['olderThan', 'idleFor'] as const) {
    if (!set(key)) continue;
    const seconds = parseDuration(q[key], key);
    filter[key] = seconds;
    const given = q[key];
    // As written when it has a unit ('90m'), else in seconds ('3600s').
    const text = `${key === 'olderThan' ? 'older than' : 'idle for'} ${typeof given === 'string' && /[a-z]/i.test(given) ? given.trim() : `${seconds}s`}`;
    desc.push(text);
    narrows(seconds > 0, key, '0 matches every entry whose time is known');
  }
  if (set('except')) {
    const list = Array.isArray(q.except) ? q.except : [q.except];
    if (list.length === 0) throw fieldError(RangeError, 'except', 'empty list');
    if (list.length > 64) throw fieldError(RangeError, 'except', 'at most 64 exclusions');
    const texts: string[] = [];
    filter.except = list.map((x, i) => {
      const where = list.length > 1 ? `except[${i}]` : 'except';
      if (x !== null && typeof x === 'object' && Object.hasOwn(x, 'except')) throw fieldError(TypeError, where, 'an exclusion has no exclusions of its own');
      let c: CompiledQuery;
      try {
        c = compileQuery(x as Query);
      } catch (err) {
        const info = err as Error & { field?: string; reason?: string };
        if (info.field) throw fieldError(err instanceof RangeError ? RangeError : TypeError, info.field === 'query' ? where : `${where}.${info.field}`, info.reason ?? info.message);
        throw err;
      }
      // An empty exclusion would keep every entry: a mistake, never what was meant.
      if (c.empty) throw fieldError(TypeError, where, 'an empty exclusion would keep every entry; give it a condition');
      texts.push(c.description);
      return c.filter;
    });
    desc.push(`except ${texts.map((t) => `(${t})`).join(' or ')}`);
  }
  // Addresses of one family imply it: the kernel then skips the other family while dumping
  // instead of sending entries that could never match.
  if (!filter.family) {
    const families = new Set([...(filter.src ?? []), ...(filter.dst ?? []), ...(filter.replySrc ?? []), ...(filter.replyDst ?? [])].map((c) => c.family));
    if (families.size === 1) filter.family = [...families][0] as number;
  }
  // An address list narrows unless it holds a /0 of every family the query can match.
  const families = filter.family ? [filter.family] : [AF_INET, AF_INET6];
  for (const key of ['src', 'dst', 'replySrc', 'replyDst'] as const) {
    const list = filter[key];
    if (list) narrows(!families.every((f) => list.some((c) => c.family === f && c.prefix === 0)), key, 'a /0 prefix matches every address');
  }
  return Object.freeze({
    query: q as Query,
    filter,
    empty: desc.length === 0,
    selective,
    unselective: Object.freeze(unselective),
    description: desc.length ? desc.join(', ') : 'every entry',
  });
}

/** A status condition's bits: all must be set, except UNREPLIED (SEEN_REPLY clear). */
function statusNames(value: unknown): { name: string; bit: number; on: boolean }[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw fieldError(RangeError, 'status', 'empty list');
  return list.map((v) => {
    if (typeof v !== 'string') throw fieldError(TypeError, 'status', `expected a status name, got ${typeName(v)}`);
    const upper = v.toUpperCase();
    if (upper === 'UNREPLIED') return { name: 'UNREPLIED', bit: IPS_SEEN_REPLY, on: false };
    const flag = (CONNTRACK_STATUS_NAMES[upper] ?? (Object.hasOwn(STATUS_BITS, v) ? v : undefined)) as StatusFlagName | undefined;
    if (flag === undefined) {
      const known = [...Object.keys(CONNTRACK_STATUS_NAMES), 'UNREPLIED'];
      const near = nearest(upper, known);
      throw fieldError(RangeError, 'status', `unknown status ${JSON.stringify(v.slice(0, 40))}${near ? ` (did you mean ${near}?)` : ''} (known: ${known.join(', ')})`);
    }
    const name = Object.keys(CONNTRACK_STATUS_NAMES).find((k) => CONNTRACK_STATUS_NAMES[k] === flag) as string;
    return { name, bit: 1 << STATUS_BITS[flag], on: true };
  });
}

/**
 * True when a state condition takes every entry of a protocol it can match (see selective):
 * every state of the protocol given, or without one, every state of any protocol (every TCP
 * state alone selects what `protocol: 'tcp'` does).
 */
function everyState(f: NativeFilter): boolean {
  const all = (names: readonly string[]) => names.slice(1).reduce((m, _, i) => m | (1 << (i + 1)), 0);
  const full: Record<number, boolean> = { [PROTOCOLS.tcp]: f.tcpStates === all(TCP_STATES), [PROTOCOLS.sctp]: f.sctpStates === all(SCTP_STATES), [PROTOCOLS.dccp]: f.dccpStates === all(DCCP_STATES) };
  if (f.protocol !== undefined) return full[f.protocol] === true;
  return Object.values(full).some(Boolean);
}
