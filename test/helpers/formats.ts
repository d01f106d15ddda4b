/**
 * Reference formatters for the text the addon writes (native/entryText.h): NDJSON lines, lines
 * like `conntrack -L` prints, and the rows of the `ctpurge list` table, written here from a
 * decoded Entry, independently of the C++. Kernel tests hold the addon's output to them byte
 * for byte (test/kernel/12-query.test.ts), and the `conntrack -L` lines to conntrack itself.
 */
import type { Entry, Tuple } from '../../src/entry.js';
import { formatDuration } from '../../src/parse/duration.js';

function endpoint(addr: string, port: number | undefined, v6: boolean): string {
  if (port === undefined) return addr;
  return v6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function flags(e: Entry): string {
  const f: string[] = [];
  if (e.unreplied) f.push('UNREPLIED');
  if (e.status.assured) f.push('ASSURED');
  if (e.status.offload) f.push('OFFLOAD');
  return f.join(',') || '-';
}

/** One row of the `ctpurge list` table (native/tableText.cc TableRows). */
export function tableRow(e: Entry): string[] {
  const v6 = e.family === 'ipv6';
  return [
    String(e.protocol),
    e.state ?? '-',
    endpoint(e.orig.src, e.orig.sport, v6),
    `-> ${endpoint(e.orig.dst, e.orig.dport, v6)}`,
    flags(e),
    e.timeout === null ? '-' : formatDuration(e.timeout),
    e.idle === null ? '?' : formatDuration(e.idle),
    e.age === null ? '?' : formatDuration(e.age),
    e.ageSource,
    e.origZone ? `orig:${e.origZone}` : e.replyZone ? `reply:${e.replyZone}` : String(e.zone),
    String(e.mark),
  ];
}

function tupleText(t: Tuple): string {
  let s = `src=${t.src} dst=${t.dst}`;
  if (t.icmp) s += ` type=${t.icmp.type} code=${t.icmp.code} id=${t.icmp.id}`;
  if (t.sport !== undefined) s += ` sport=${t.sport} dport=${t.dport}`;
  return s;
}

/** A line shaped like `conntrack -L` prints, for existing grep/awk habits. */
export function conntrackLine(e: Entry, now = Date.now()): string {
  const proto = typeof e.protocol === 'string' ? e.protocol : 'unknown';
  let s = `${proto.padEnd(8)} ${String(e.protocolNumber)} ${e.timeout ?? 0} `;
  if (e.state) s += `${e.state} `;
  s += tupleText(e.orig);
  if (e.origZone) s += ` zone-orig=${e.origZone}`;
  if (e.counters) s += ` packets=${e.counters.orig.packets} bytes=${e.counters.orig.bytes}`;
  if (e.unreplied) s += ' [UNREPLIED]';
  s += ` ${tupleText(e.reply)}`;
  if (e.replyZone) s += ` zone-reply=${e.replyZone}`;
  if (e.counters) s += ` packets=${e.counters.reply.packets} bytes=${e.counters.reply.bytes}`;
  if (e.status.assured) s += ' [ASSURED]';
  s += ` mark=${e.mark}`;
  if (e.zone) s += ` zone=${e.zone}`;
  // conntrack -L prints the seconds since creation when the entry has a start timestamp.
  if (e.start) s += ` delta-time=${Math.floor(now / 1000) - Math.floor(e.start.getTime() / 1000)}`;
  return s;
}

/** One NDJSON line: the Entry with start as an ISO string and status as a flag list. */
export function jsonLine(e: Entry): string {
  const status: string[] = [];
  for (const [k, v] of Object.entries(e.status)) if (v === true) status.push(k);
  return JSON.stringify({
    id: e.id,
    family: e.family,
    protocol: e.protocol,
    state: e.state,
    orig: e.orig,
    reply: e.reply,
    status,
    unreplied: e.unreplied,
    timeout: e.timeout,
    mark: e.mark,
    zone: e.zone,
    origZone: e.origZone,
    replyZone: e.replyZone,
    labels: e.labels,
    counters: e.counters,
    start: e.start?.toISOString() ?? null,
    age: e.age === null ? null : Math.round(e.age * 1000) / 1000,
    ageSource: e.ageSource,
    idle: e.idle === null ? null : Math.round(e.idle * 1000) / 1000,
    idleSource: e.idleSource,
  });
}

