/** The packed entry record, and the name tables both sides of the addon print. */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/addon.js';
import { AGE_SOURCES, decodeRecord, RECORD_SIZE } from '../../src/entry.js';
import { DCCP_STATES, PROTOCOLS, SCTP_STATES, STATUS_BITS, TCP_STATES } from '../../src/protocols.js';

describe('entry records', () => {
  it('decodes the layout written by native/entryRecord.cc', () => {
    const buf = new ArrayBuffer(RECORD_SIZE);
    const v = new DataView(buf);
    const b = new Uint8Array(buf);
    v.setUint32(0, 12345, true);
    v.setUint32(4, 0x8 | 0x4 | 0x2, true);
    v.setUint32(8, 299, true);
    v.setUint32(12, 7, true);
    v.setUint16(16, 3, true);
    b[18] = 10;
    b[19] = 6;
    b[20] = 3;
    b[21] = 1;
    b[22] = 1 | 2 | 4 | 8 | 16 | 64;
    v.setFloat64(24, 12.5, true);
    v.setFloat64(32, Date.UTC(2026, 0, 1), true);
    b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 40);
    b.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 56);
    v.setUint16(72, 40000, true);
    v.setUint16(74, 80, true);
    v.setFloat64(112, 3, true);
    v.setFloat64(120, 180, true);
    b[144] = 0b101;
    b[159] = 0x80;
    v.setFloat64(168, 1.25, true);
    const e = decodeRecord(buf, 0);
    expect(e).toMatchObject({
      id: 12345,
      family: 'ipv6',
      protocol: 'tcp',
      state: 'ESTABLISHED',
      unreplied: false,
      timeout: 299,
      mark: 7,
      zone: 3,
      labels: [0, 2, 127],
      age: 12.5,
      ageSource: 'timestamp',
      idle: 1.25,
      idleSource: 'timeout',
      orig: { src: 'fd00::1', dst: 'fd00::2', sport: 40000, dport: 80 },
    });
    expect(e.status.assured).toBe(true);
    expect(e.status.seenReply).toBe(true);
    expect(e.counters?.orig).toEqual({ packets: 3, bytes: 180 });
    expect(e.start?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    // NaN is the record's "unknown" idle time.
    v.setFloat64(168, NaN, true);
    expect(decodeRecord(buf, 0)).toMatchObject({ idle: null, idleSource: 'unknown' });
  });
});

describe('one set of names on both sides of the addon', () => {
  it('the protocol, state, status and age-source names TypeScript uses are the ones the native formats print', () => {
    const n = loadNative().names;
    expect(n.protocols).toEqual({ ...PROTOCOLS });
    expect(n.tcp).toEqual([...TCP_STATES]);
    expect(n.sctp).toEqual([...SCTP_STATES]);
    expect(n.dccp).toEqual([...DCCP_STATES]);
    expect(n.status).toEqual(Object.entries(STATUS_BITS).sort((a, b) => a[1] - b[1]).map(([name]) => name));
    expect(n.ageSources).toEqual([...AGE_SOURCES]);
    expect(loadNative().recordSize).toBe(RECORD_SIZE);
  });
});
