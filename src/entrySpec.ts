/** Tuples and entry specs for get/create/delete, validated and turned into the native form. */
import { AF_INET, AF_INET6, parseAddress, type Family } from './parse/address.js';
import { parseDuration } from './parse/duration.js';
import { bare, fieldError, integerField, ownOptions, typeName } from './validate.js';
import { parseProtocol } from './query.js';
import { CONNTRACK_STATUS_NAMES, PROTOCOLS, statesOf, STATUS_BITS, type ProtocolName, type StatusFlagName } from './protocols.js';
import type { Entry } from './entry.js';
import type { NativeEntrySpec } from './native.js';

export interface TupleSpec {
  family?: Family;
  protocol: ProtocolName | number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  icmp?: { type: number; code?: number; id?: number };
  /** The zone of both directions (conntrack's --zone); 0 or absent: none. */
  zone?: number;
  /** A zone of the original direction only (--orig-zone). An entry has at most one nonzero zone. */
  origZone?: number;
  /** A zone of the reply direction only (--reply-zone); with get() and delete() the entry is found by its original tuple. */
  replyZone?: number;
  /** With delete(): only delete if the kernel's id still matches. */
  id?: number;
}

export interface CreateSpec extends TupleSpec {
  /** Seconds (or a duration string) until the kernel expires it. */
  timeout: number | string;
  /** TCP/SCTP/DCCP state name, e.g. 'ESTABLISHED'. */
  state?: string;
  /** Status flags to set: 'seenReply', 'assured' (conntrack's SEEN_REPLY, ASSURED work too). */
  status?: (StatusFlagName | string)[];
  mark?: number;
  /** Connection label bits to set, 0-127. */
  labels?: number[];
  /** Reply direction; defaults to the inverse of the original (no NAT). */
  reply?: { src: string; dst: string; sport?: number; dport?: number };
}

const TUPLE_KEYS = ['family', 'protocol', 'src', 'dst', 'sport', 'dport', 'icmp', 'zone', 'origZone', 'replyZone', 'id'];
const CREATE_KEYS = [...TUPLE_KEYS, 'timeout', 'state', 'status', 'mark', 'labels', 'reply'];
const PORT_PROTOCOLS = new Set<number>([PROTOCOLS.tcp, PROTOCOLS.udp, PROTOCOLS.udplite, PROTOCOLS.sctp, PROTOCOLS.dccp]);

const int = (value: unknown, name: string, max: number): number => integerField(value, name, 0, max);

function address(value: unknown, name: string, family: Family | undefined): { family: Family; addr: Uint8Array } {
  if (typeof value !== 'string') throw fieldError(TypeError, name, `expected an IP address string, got ${typeName(value)}`);
  const a = parseAddress(value);
  if (!a) throw fieldError(RangeError, name, `${JSON.stringify(value.slice(0, 60))} is not an IPv4 or IPv6 address`);
  if (family && a.family !== family) throw fieldError(RangeError, name, `${value} is not ${family}`);
  return a;
}

export function tupleToNative(given: TupleSpec, what = 'tuple', allowed = TUPLE_KEYS): NativeEntrySpec {
  const spec = ownOptions<TupleSpec>(given, what, allowed);
  if (spec.family !== undefined && spec.family !== 'ipv4' && spec.family !== 'ipv6') throw fieldError(RangeError, 'family', `expected 'ipv4' or 'ipv6', got ${typeName(spec.family)}`);
  const src = address(spec.src, 'src', spec.family);
  const dst = address(spec.dst, 'dst', src.family);
  const protocol = parseProtocol(spec.protocol);
  const out: NativeEntrySpec = bare({ family: src.family === 'ipv4' ? AF_INET : AF_INET6, protocol, src: src.addr, dst: dst.addr });
  if (PORT_PROTOCOLS.has(protocol) || protocol === PROTOCOLS.gre) {
    if (spec.sport === undefined || spec.dport === undefined) throw fieldError(TypeError, what, `sport and dport are required for this protocol`);
    out.sport = int(spec.sport, 'sport', 65535);
    out.dport = int(spec.dport, 'dport', 65535);
  } else if (spec.sport !== undefined || spec.dport !== undefined) {
    throw fieldError(TypeError, what, `protocol ${protocol} has no ports`);
  }
  if (protocol === PROTOCOLS.icmp || protocol === PROTOCOLS.icmpv6) {
    const icmp = ownOptions<NonNullable<TupleSpec['icmp']>>(spec.icmp ?? { type: protocol === PROTOCOLS.icmp ? 8 : 128 }, 'icmp', ['type', 'code', 'id'], true);
    out.icmpType = int(icmp.type, 'icmp.type', 255);
    out.icmpCode = int(icmp.code ?? 0, 'icmp.code', 255);
    out.icmpId = int(icmp.id ?? 0, 'icmp.id', 65535);
  } else if (spec.icmp !== undefined) {
    throw fieldError(TypeError, what, `icmp is only for the icmp and icmpv6 protocols`);
  }
  const zones = (['zone', 'origZone', 'replyZone'] as const).filter((k) => spec[k] !== undefined);
  for (const k of zones) out[k] = int(spec[k], k, 65535);
  const nonzero = zones.filter((k) => out[k] !== 0);
  // The kernel keeps one zone per entry, for both directions or for one (EINVAL otherwise).
  if (nonzero.length > 1) throw fieldError(RangeError, nonzero[1] as string, `an entry has one zone: ${nonzero.join(' and ')} cannot both be set`);
  if (spec.id !== undefined) out.id = int(spec.id, 'id', 0xffffffff);
  return out;
}

export function createToNative(given: CreateSpec): NativeEntrySpec {
  const out = tupleToNative(given, 'create', CREATE_KEYS);
  const spec = ownOptions<CreateSpec>(given, 'create', CREATE_KEYS);
  if (spec.id !== undefined) throw new TypeError('create: id is assigned by the kernel');
  if (spec.timeout === undefined) throw fieldError(TypeError, 'timeout', 'required for create (seconds until the entry expires)');
  const timeout = parseDuration(spec.timeout, 'timeout');
  if (timeout < 1 || timeout > 0x7fffffff / 1000) throw fieldError(RangeError, 'timeout', 'must be between 1 s and 2147483 s (the kernel caps timeouts in jiffies)');
  out.timeout = Math.floor(timeout);
  if (spec.state !== undefined) {
    if (typeof spec.state !== 'string') throw fieldError(TypeError, 'state', `expected a state name, got ${typeName(spec.state)}`);
    const table = statesOf(out.protocol);
    if (!table) throw fieldError(TypeError, 'state', `protocol ${out.protocol} has no states`);
    const i = table.indexOf(spec.state.toUpperCase());
    if (i <= 0) throw fieldError(RangeError, 'state', `unknown state ${JSON.stringify(spec.state)} (known: ${table.slice(1).join(', ')})`);
    out.state = i;
  }
  if (spec.status !== undefined) {
    if (!Array.isArray(spec.status)) throw fieldError(TypeError, 'status', `expected a list of flag names, got ${typeName(spec.status)}`);
    let bits = 0;
    for (const f of spec.status) {
      const name = (typeof f === 'string' ? (CONNTRACK_STATUS_NAMES[f.toUpperCase()] ?? f) : f) as StatusFlagName;
      if (name !== 'seenReply' && name !== 'assured') throw fieldError(RangeError, 'status', `only seenReply and assured can be set on a new entry, got ${typeName(f)}`);
      bits |= 1 << STATUS_BITS[name];
    }
    out.status = bits;
  }
  if (spec.mark !== undefined) out.mark = int(spec.mark, 'mark', 0xffffffff);
  if (spec.labels !== undefined) {
    if (!Array.isArray(spec.labels)) throw fieldError(TypeError, 'labels', `expected a list of bit numbers, got ${typeName(spec.labels)}`);
    const bytes = new Uint8Array(16);
    for (const l of spec.labels) {
      const bit = int(l, 'labels', 127);
      bytes[bit >> 3] = (bytes[bit >> 3] as number) | (1 << (bit & 7));
    }
    out.labels = bytes;
  }
  if (spec.reply !== undefined) {
    const fam = out.family === AF_INET ? 'ipv4' : 'ipv6';
    const reply = ownOptions<NonNullable<CreateSpec['reply']>>(spec.reply, 'reply', ['src', 'dst', 'sport', 'dport'], true);
    out.replySrc = address(reply.src, 'reply.src', fam).addr;
    out.replyDst = address(reply.dst, 'reply.dst', fam).addr;
    out.replySport = int(reply.sport ?? out.dport ?? 0, 'reply.sport', 65535);
    out.replyDport = int(reply.dport ?? out.sport ?? 0, 'reply.dport', 65535);
  }
  return out;
}

/** An Entry from list()/get() names itself by its original tuple, zone and id. */
export function entryToTuple(e: Entry): TupleSpec {
  const t: TupleSpec = { family: e.family, protocol: e.protocolNumber, src: e.orig.src, dst: e.orig.dst, zone: e.zone, id: e.id };
  if (e.origZone) t.origZone = e.origZone;
  if (e.replyZone) t.replyZone = e.replyZone;
  if (e.orig.sport !== undefined) t.sport = e.orig.sport;
  if (e.orig.dport !== undefined) t.dport = e.orig.dport;
  if (e.orig.icmp) t.icmp = e.orig.icmp;
  return t;
}

export function isEntry(v: unknown): v is Entry {
  return typeof v === 'object' && v !== null && 'orig' in v && 'reply' in v && 'status' in v;
}
