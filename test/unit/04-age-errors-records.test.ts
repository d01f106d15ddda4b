import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';
import { ConntrackError, fromNative, hintFor } from '../../src/errors.js';
import { AGE_SOURCES, decodeRecord, RECORD_SIZE } from '../../src/entry.js';
import { DCCP_STATES, PROTOCOLS, SCTP_STATES, STATUS_BITS, TCP_STATES } from '../../src/protocols.js';

// The age estimate is C++ (it runs per entry inside the dump); this calls the same
// function through the addon, with the default policy timeouts given explicitly.
const tcp = [0, 120, 60, 432000, 120, 60, 30, 120, 10, 120, 0, 0, 300, 300];
const defaults = { tcp, udp: 30, udpStream: 120, icmp: 30, icmpv6: 30, generic: 600, gre: 30, greStream: 180 };
const ESTABLISHED = 3;

describe('age estimate (the worked cases of docs/api.md, Idle time and age)', () => {
  const { estimateAge } = loadNative();

  it('UNREPLIED ESTABLISHED with 424,800 s left is 7,200 s old', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 424800, defaults)).toBe(7200);
  });

  it('a mid-stream pickup with 298 s left is 2 s old, never 5 days', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 298, defaults)).toBe(2);
  });

  it('UDP with 600 s left under 30/120 s timeouts is unknown', () => {
    expect(estimateAge(17, 2, 0xff, 600, defaults)).toBeNull();
  });

  it('UDP picks the smallest timeout that fits', () => {
    expect(estimateAge(17, 2, 0xff, 25, defaults)).toBe(5);
    expect(estimateAge(17, 10, 0xff, 100, defaults)).toBe(20);
  });

  it('a TCP timeout set by hand above every policy is unknown', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 500000, defaults)).toBeNull();
  });

  it('other protocols use the generic timeout; ICMP its own', () => {
    expect(estimateAge(99, 2, 0xff, 590, defaults)).toBe(10);
    expect(estimateAge(1, 2, 0xff, 29, defaults)).toBe(1);
    expect(estimateAge(58, 10, 0xff, 40, defaults)).toBeNull();
  });

  it('uses the namespace values it is given, not built-in defaults', () => {
    const lowered = { ...defaults, tcp: tcp.map((v, i) => (i === ESTABLISHED ? 3600 : v)) };
    expect(estimateAge(6, 2, ESTABLISHED, 3000, lowered)).toBe(600);
    expect(estimateAge(6, 2, ESTABLISHED, 424800, lowered)).toBeNull();
  });
});

describe('errors', () => {
  it('EPERM names CAP_NET_ADMIN; setns EPERM names CAP_SYS_ADMIN', () => {
    expect(hintFor('EPERM', 'recvmsg', 'open', null)).toMatch(/CAP_NET_ADMIN/);
    expect(hintFor('EPERM', 'setns', 'open', '/var/run/netns/x')).toMatch(/CAP_SYS_ADMIN/);
    expect(hintFor('ENOENT', 'open', 'open', '/var/run/netns/x')).toMatch(/ip netns list/);
    expect(hintFor('EWHATEVER', undefined, undefined, null)).toBeUndefined();
  });

  it('keeps code, errno and syscall and puts the caller on the stack', () => {
    const captured = new Error('here');
    const native = Object.assign(new Error('Operation not permitted'), { code: 'EPERM', errno: -1, syscall: 'recvmsg', operation: 'dump' });
    const e = fromNative(native, captured, '/var/run/netns/x') as ConntrackError;
    expect(e).toBeInstanceOf(ConntrackError);
    expect(e.code).toBe('EPERM');
    expect(e.errno).toBe(-1);
    expect(e.syscall).toBe('recvmsg');
    expect(e.operation).toBe('dump');
    expect(e.netns).toBe('/var/run/netns/x');
    expect(e.message).toMatch(/^dump: Operation not permitted \(ctnetlink needs CAP_NET_ADMIN/);
    expect(e.stack).toContain('04-age-errors-records.test.ts');
  });

  it('passes errors without a code through unchanged', () => {
    const plain = new TypeError('x');
    expect(fromNative(plain, new Error(), null)).toBe(plain);
  });
});

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
