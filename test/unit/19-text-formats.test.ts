/**
 * The addon's text formats (native/entryText.h: NDJSON, `conntrack -L` lines, the list table)
 * held to the TypeScript reference (test/helpers/formats.ts) without a kernel: random packed
 * records go through the addon's line writers (formatRecords) and, decoded, through the
 * reference. The kernel tests hold the same writers on real entries.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TABLE_HEADER, TableWriter } from '../../src/cli/format.js';
import { decodeRecord, RECORD_SIZE, type Entry } from '../../src/entry.js';
import { loadNative } from '../../src/addon.js';
import { conntrackLine, jsonLine, tableRow } from '../helpers/formats.js';

const STATES: Record<number, number> = { 6: 10, 132: 9, 33: 8 };
const NOW_MS = 1_780_000_000_123;

/** One record as native/entryRecord.cc lays it out, from random but well-formed fields. */
const record = fc
  .record({
    id: fc.nat({ max: 0xffffffff }),
    status: fc.nat({ max: 0xffff }),
    timeout: fc.oneof(fc.nat({ max: 600 }), fc.nat({ max: 0xffffffff })),
    mark: fc.oneof(fc.constant(0), fc.nat({ max: 0xffffffff })),
    zone: fc.oneof(fc.constant(0), fc.nat({ max: 65535 })),
    family: fc.constantFrom(2, 10),
    protocol: fc.oneof(fc.constantFrom(6, 17, 1, 58, 132, 33, 47, 136), fc.nat({ max: 255 })),
    state: fc.nat({ max: 12 }),
    ageSource: fc.nat({ max: 2 }),
    flags: fc.nat({ max: 255 }),
    age: fc.oneof(fc.nat({ max: 10_000_000 }), fc.double({ min: 0, max: 1e7, noNaN: true })),
    startMs: fc.integer({ min: 1_600_000_000_000, max: NOW_MS }),
    addrs: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    ports: fc.array(fc.nat({ max: 65535 }), { minLength: 4, maxLength: 4 }),
    icmp: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    counters: fc.array(fc.nat({ max: 2 ** 40 }), { minLength: 4, maxLength: 4 }),
    labels: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    idle: fc.oneof(fc.constant(Number.NaN), fc.nat({ max: 10_000_000 })),
    origZone: fc.oneof(fc.constant(0), fc.nat({ max: 65535 })),
    replyZone: fc.oneof(fc.constant(0), fc.nat({ max: 65535 })),
  })
  .map((f) => {
    const b = new Uint8Array(RECORD_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, f.id, true);
    v.setUint32(4, f.status, true);
    v.setUint32(8, f.timeout, true);
    v.setUint32(12, f.mark, true);
    v.setUint16(16, f.zone, true);
    b[18] = f.family;
    b[19] = f.protocol;
    // A state the protocol has, or none (0xff).
    const states = STATES[f.protocol];
    b[20] = states !== undefined && f.state < states ? f.state : 0xff;
    b[21] = f.ageSource;
    b[22] = f.flags;
    v.setFloat64(24, f.ageSource === 0 ? Number.NaN : f.age, true);
    v.setFloat64(32, f.flags & 4 ? f.startMs : 0, true);
    // IPv4 addresses are the first 4 of their 16 bytes, the rest zero (as the parser leaves them).
    for (const [i, at] of [[0, 40], [16, 56], [32, 76], [48, 92]] as const) b.set(f.addrs.subarray(i, i + (f.family === 2 ? 4 : 16)), at);
    f.ports.forEach((p, i) => v.setUint16(i < 2 ? 72 + i * 2 : 108 + (i - 2) * 2, p, true));
    b.set(f.icmp.subarray(0, 2), 160);
    b.set(f.icmp.subarray(4, 6), 164);
    v.setUint16(162, f.icmp[2]! | (f.icmp[3]! << 8), true);
    v.setUint16(166, f.icmp[6]! | (f.icmp[7]! << 8), true);
    f.counters.forEach((c, i) => v.setFloat64(112 + i * 8, f.flags & 2 ? c : 0, true));
    if (f.flags & 8) b.set(f.labels, 144);
    v.setFloat64(168, f.idle, true);
    // An entry has at most one zone: both directions' or one direction's.
    if (f.zone === 0) {
      v.setUint16(176, f.origZone, true);
      if (f.origZone === 0) v.setUint16(178, f.replyZone, true);
    }
    return b;
  });

function pack(records: Uint8Array[]): { bytes: Uint8Array; entries: Entry[] } {
  const bytes = new Uint8Array(records.length * RECORD_SIZE);
  records.forEach((r, i) => bytes.set(r, i * RECORD_SIZE));
  const entries = records.map((_, i) => decodeRecord(bytes.buffer, i * RECORD_SIZE));
  return { bytes, entries };
}

const lines = (text: string) => (text === '' ? [] : text.replace(/\n$/, '').split('\n'));

describe("the addon's text formats against the TypeScript reference", () => {
  const { formatRecords } = loadNative();

  it('NDJSON: every line is the reference line', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 20 }), (records) => {
        const { bytes, entries } = pack(records);
        expect(lines(formatRecords(bytes, 'ndjson', NOW_MS))).toEqual(entries.map(jsonLine));
      }),
      { numRuns: 300 },
    );
  });

  it('conntrack -L lines: every line is the reference line, delta-time against the same now', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 20 }), (records) => {
        const { bytes, entries } = pack(records);
        expect(lines(formatRecords(bytes, 'conntrack', NOW_MS))).toEqual(entries.map((e) => conntrackLine(e, NOW_MS)));
      }),
      { numRuns: 300 },
    );
  });

  it('the table: laid out as the CLI lays out the reference rows', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 20 }), (records) => {
        const { bytes, entries } = pack(records);
        expect(formatRecords(bytes, 'table', NOW_MS)).toBe(new TableWriter([...TABLE_HEADER]).format(entries.map(tableRow)));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a format it does not write, and a record buffer that is not one', () => {
    expect(() => formatRecords(new Uint8Array(RECORD_SIZE), 'records' as never, NOW_MS)).toThrow(/^ctpurge: formatRecords format must be one of ndjson, conntrack, table$/);
    expect(() => formatRecords('x' as never, 'ndjson', NOW_MS)).toThrow(/formatRecords\(records, format, nowMs\)/);
    expect(formatRecords(new Uint8Array(RECORD_SIZE - 1), 'ndjson', NOW_MS)).toBe('');
  });
});
