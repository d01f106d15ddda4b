/** Entries as the API returns them, decoded from the native layer's packed records. */
import { AF_INET, formatIpv4, formatIpv6, type Family } from './parse/address.js';
import { protocolName, stateName, STATUS_BITS, type ProtocolName, type StatusFlagName } from './protocols.js';

export interface Tuple {
  src: string;
  dst: string;
  /** TCP, UDP, UDP-Lite, SCTP, DCCP; the keys for GRE. */
  sport?: number;
  dport?: number;
  icmp?: { type: number; code: number; id: number };
}

export type StatusFlags = Record<StatusFlagName, boolean> & { raw: number };

export interface Counters {
  orig: { packets: number; bytes: number };
  reply: { packets: number; bytes: number };
}

export type AgeSource = 'timestamp' | 'timeout' | 'unknown';

export interface Entry {
  /** The kernel's id for this flow; delete() uses it so a reused tuple is never hit. */
  id: number;
  family: Family;
  protocol: ProtocolName | number;
  protocolNumber: number;
  /** Protocol state (TCP, SCTP, DCCP), e.g. 'ESTABLISHED'; null for the others. */
  state: string | null;
  orig: Tuple;
  reply: Tuple;
  status: StatusFlags;
  /** No reply ever seen: conntrack's [UNREPLIED]. */
  unreplied: boolean;
  /** Seconds left before the kernel expires it; null when unknown (offloaded). */
  timeout: number | null;
  mark: number;
  /**
   * The conntrack zone of both directions (conntrack -L's `zone=`), 0 when none. A zone that
   * applies to one direction only is origZone (`zone-orig=`) or replyZone (`zone-reply=`); an
   * entry has at most one of the three, and the others are 0.
   */
  zone: number;
  origZone: number;
  replyZone: number;
  /** Connection label bits that are set. */
  labels: number[];
  /** Packet and byte counters, when nf_conntrack_acct=1. */
  counters: Counters | null;
  /** Creation time, when nf_conntrack_timestamp=1 was on when the entry was created. */
  start: Date | null;
  /**
   * Seconds since creation: exact from the start timestamp ('timestamp'); without one, the
   * idle estimate, a lower bound of the age ('timeout'); null when unknown.
   */
  age: number | null;
  ageSource: AgeSource;
  /**
   * Seconds since the last packet that refreshed the timeout, estimated from the timeout
   * left against the timeout that applies, a sysctl or one of the namespace's timeout
   * policies ('timeout'); null when none explains the timeout left (set by hand above them
   * all), a helper sets the entry's timeouts itself (sip, RAS), or there is none.
   */
  idle: number | null;
  idleSource: IdleSource;
}

export type IdleSource = 'timeout' | 'unknown';

/** Bytes per packed record (native/entryRecord.cc). */
export const RECORD_SIZE = 184;

const FLAG = { timeout: 1, counters: 2, start: 4, labels: 8, origPorts: 16, origIcmp: 32, replyPorts: 64, replyIcmp: 128 };
/** Age sources by the number the native record stores. */
export const AGE_SOURCES: readonly AgeSource[] = ['unknown', 'timestamp', 'timeout'];
const STATUS_ENTRIES = Object.entries(STATUS_BITS) as [StatusFlagName, number][];

function statusFlags(raw: number): StatusFlags {
  const out = { raw } as StatusFlags;
  for (const [name, bit] of STATUS_ENTRIES) out[name] = (raw & (1 << bit)) !== 0;
  return out;
}

function tuple(bytes: Uint8Array, view: DataView, base: number, addrOff: number, portOff: number, icmpOff: number, v4: boolean, ports: boolean, icmp: boolean): Tuple {
  const fmt = v4 ? formatIpv4 : formatIpv6;
  const t: Tuple = { src: fmt(bytes, base + addrOff), dst: fmt(bytes, base + addrOff + 16) };
  if (ports) {
    t.sport = view.getUint16(base + portOff, true);
    t.dport = view.getUint16(base + portOff + 2, true);
  }
  if (icmp) {
    t.icmp = { type: bytes[base + icmpOff] as number, code: bytes[base + icmpOff + 1] as number, id: view.getUint16(base + icmpOff + 2, true) };
  }
  return t;
}

/** Decodes one record at byte offset `base`. Layout: native/entryRecord.cc. */
export function decodeRecord(buf: ArrayBuffer, base: number): Entry {
  const view = new DataView(buf);
  const bytes = new Uint8Array(buf);
  const flags = bytes[base + 22] as number;
  const family = bytes[base + 18] === AF_INET ? 'ipv4' : 'ipv6';
  const v4 = family === 'ipv4';
  const proto = bytes[base + 19] as number;
  const status = view.getUint32(base + 4, true);
  const age = view.getFloat64(base + 24, true);
  const idle = view.getFloat64(base + 168, true);
  const labels: number[] = [];
  if (flags & FLAG.labels) {
    for (let i = 0; i < 128; i++) if ((bytes[base + 144 + (i >> 3)] as number) & (1 << (i & 7))) labels.push(i);
  }
  return {
    id: view.getUint32(base, true),
    family,
    protocol: protocolName(proto),
    protocolNumber: proto,
    state: stateName(proto, bytes[base + 20] as number),
    orig: tuple(bytes, view, base, 40, 72, 160, v4, (flags & FLAG.origPorts) !== 0, (flags & FLAG.origIcmp) !== 0),
    reply: tuple(bytes, view, base, 76, 108, 164, v4, (flags & FLAG.replyPorts) !== 0, (flags & FLAG.replyIcmp) !== 0),
    status: statusFlags(status),
    unreplied: (status & (1 << STATUS_BITS.seenReply)) === 0,
    timeout: flags & FLAG.timeout ? view.getUint32(base + 8, true) : null,
    mark: view.getUint32(base + 12, true),
    zone: view.getUint16(base + 16, true),
    origZone: view.getUint16(base + 176, true),
    replyZone: view.getUint16(base + 178, true),
    labels,
    counters:
      flags & FLAG.counters
        ? {
            orig: { packets: view.getFloat64(base + 112, true), bytes: view.getFloat64(base + 120, true) },
            reply: { packets: view.getFloat64(base + 128, true), bytes: view.getFloat64(base + 136, true) },
          }
        : null,
    start: flags & FLAG.start ? new Date(view.getFloat64(base + 32, true)) : null,
    age: Number.isNaN(age) ? null : age,
    ageSource: AGE_SOURCES[bytes[base + 21] as number] ?? 'unknown',
    idle: Number.isNaN(idle) ? null : idle,
    idleSource: Number.isNaN(idle) ? 'unknown' : 'timeout',
  };
}

export function* decodeRecords(buf: ArrayBuffer): Generator<Entry> {
  for (let off = 0; off + RECORD_SIZE <= buf.byteLength; off += RECORD_SIZE) yield decodeRecord(buf, off);
}
