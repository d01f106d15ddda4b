import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileQuery } from '../../src/query.js';
import { planQuery } from '../../src/plan.js';
import { kernelFeatures, parseKernelVersion } from '../../src/kernel.js';

describe('compileQuery', () => {
  it('an empty query is empty', () => {
    const q = compileQuery({});
    expect(q.empty).toBe(true);
    expect(q.filter.statusMask).toBe(0);
  });

  it('unreplied is status value 0 under mask SEEN_REPLY; replied is SEEN_REPLY', () => {
    expect(compileQuery({ unreplied: true }).filter).toMatchObject({ statusMask: 2, statusValue: 0 });
    expect(compileQuery({ unreplied: false }).filter).toMatchObject({ statusMask: 2, statusValue: 2 });
    expect(compileQuery({ unreplied: true, assured: true }).filter).toMatchObject({ statusMask: 6, statusValue: 4 });
  });

  it('compiles every field', () => {
    const q = compileQuery(
      {
        family: 'ipv6',
        protocol: 'tcp',
        state: ['ESTABLISHED', 'syn_sent'],
        src: 'fd00::/8',
        dst: ['fd00::1', 'fd00::2'],
        replySrc: '::1',
        replyDst: 'fd00::/16',
        sport: [1000, 2000],
        dport: 80,
        mark: { value: 7, mask: 0xff },
        zone: 3,
        olderThan: '1h',
      }
    );
    expect(q.filter).toMatchObject({ family: 10, protocol: 6, hasStates: true, mark: 7, markMask: 0xff, zone: 3, olderThan: 3600, sport: [1000, 2000], dport: [80, 80] });
    expect(q.filter.tcpStates).toBe((1 << 3) | (1 << 1));
    expect(q.filter.sctpStates).toBe(1 << 4); // ESTABLISHED is an SCTP state too
    expect(q.filter.dst).toHaveLength(2);
    expect(q.empty).toBe(false);
    expect(q.description).toContain('older than 1h');
  });

  it("conntrack's selectors: status bits (all set), NAT and labels", () => {
    const s = compileQuery({ status: ['ASSURED', 'seenReply'] });
    expect(s.filter).toMatchObject({ statusMask: 6, statusValue: 6 });
    expect(s.description).toBe('status ASSURED,SEEN_REPLY');
    expect(compileQuery({ status: 'UNREPLIED' }).filter).toMatchObject({ statusMask: 2, statusValue: 0 });
    expect(compileQuery({ status: ['OFFLOAD', 'UNREPLIED'] }).filter).toMatchObject({ statusMask: 0x4002, statusValue: 0x4000 });
    // The same bit asked set and clear could match nothing.
    expect(() => compileQuery({ status: ['SEEN_REPLY', 'UNREPLIED'] })).toThrow(/^status: status UNREPLIED contradicts status SEEN_REPLY/);
    expect(() => compileQuery({ unreplied: true, status: 'SEEN_REPLY' })).toThrow(/^status: status SEEN_REPLY contradicts unreplied/);
    expect(() => compileQuery({ status: 'ASSURED', assured: false })).toThrow(/^status: status ASSURED contradicts not assured/);
    expect(compileQuery({ unreplied: true, status: 'UNREPLIED' }).filter).toMatchObject({ statusMask: 2, statusValue: 0 });
    expect(() => compileQuery({ status: 'ASURED' })).toThrow(/^status: unknown status "ASURED" \(did you mean ASSURED\?\)/);
    expect(() => compileQuery({ status: [] })).toThrow(/^status: empty list/);
    expect(() => compileQuery({ status: 4 as never })).toThrow(TypeError);
    // Every entry of the table is confirmed: alone, CONFIRMED selects all.
    expect(compileQuery({ status: 'CONFIRMED' })).toMatchObject({ selective: false, unselective: [{ field: 'status' }] });
    expect(compileQuery({ status: ['CONFIRMED', 'ASSURED'] }).selective).toBe(true);
    // Every TCP state, with or without the protocol, selects every TCP entry: as protocol alone.
    const tcpStates = ['SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];
    expect(compileQuery({ state: tcpStates })).toMatchObject({ selective: false, unselective: [{ field: 'state' }] });
    expect(compileQuery({ protocol: 'tcp', state: tcpStates }).selective).toBe(false);
    expect(compileQuery({ state: tcpStates.slice(1) }).selective).toBe(true);
    expect(compileQuery({ state: 'ESTABLISHED' }).selective).toBe(true);
    const nat = compileQuery({ srcNat: true, dstNat: false, anyNat: true });
    expect(nat.filter).toMatchObject({ srcNat: true, dstNat: false, anyNat: true });
    expect(nat.description).toBe('source-NATed, not destination-NATed, NATed');
    expect(nat.selective).toBe(true);
    expect(() => compileQuery({ srcNat: 'yes' as never })).toThrow(/^srcNat: /);
    const labels = compileQuery({ labels: [0, 9, 127, 9] });
    expect([...(labels.filter.labels ?? [])]).toEqual([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    expect(labels.description).toBe('labels 0,9,127');
    expect(() => compileQuery({ labels: 128 })).toThrow(/^labels: /);
    expect(() => compileQuery({ labels: [] })).toThrow(/^labels: empty list/);
    // No secmark selector: the kernel reports none (CTA_SECMARK is obsolete), so --secmark 0 would select every entry.
    expect(() => compileQuery({ secmark: 0 } as never)).toThrow(/^secmark: unknown field of query/);
  });

  it('kernel features follow the version', () => {
    expect(kernelFeatures('5.10.0', {})).toMatchObject({ statusFilter: false, zoneFilter: false });
    expect(kernelFeatures('5.15.0', {})).toMatchObject({ statusFilter: true, zoneFilter: false });
    expect(kernelFeatures('6.8.0-1-amd64', {})).toMatchObject({ statusFilter: true, zoneFilter: true });
    expect(kernelFeatures('6.18.0', { CTPURGE_NO_KERNEL_FILTER: '1' })).toMatchObject({ statusFilter: false, zoneFilter: false, kernelFilters: false });
    expect(parseKernelVersion('garbage')).toBeNull();
    expect(planQuery({ unreplied: true }, kernelFeatures('5.4.0', {})).kernelFilter.statusMask).toBeUndefined();
    expect(planQuery({ unreplied: true }, kernelFeatures('5.15.0', {})).kernelFilter).toMatchObject({ status: 0, statusMask: 2 });
  });

  it('tuple filters: dumps from 5.8, flushes from 6.12, never with CTPURGE_NO_KERNEL_FILTER', () => {
    expect(kernelFeatures('5.7.19', {})).toMatchObject({ tupleDumpFilter: false, tupleFlushFilter: false });
    expect(kernelFeatures('5.8.0', {})).toMatchObject({ tupleDumpFilter: true, tupleFlushFilter: false });
    expect(kernelFeatures('6.11.11-amd64', {})).toMatchObject({ tupleDumpFilter: true, tupleFlushFilter: false });
    expect(kernelFeatures('6.12.0', {})).toMatchObject({ tupleDumpFilter: true, tupleFlushFilter: true });
    expect(kernelFeatures('7.0.1', {})).toMatchObject({ tupleDumpFilter: true, tupleFlushFilter: true });
    expect(kernelFeatures('6.18.0', { CTPURGE_NO_KERNEL_FILTER: '1' })).toMatchObject({ tupleDumpFilter: false, tupleFlushFilter: false });
    expect(kernelFeatures('unknown', {})).toMatchObject({ tupleDumpFilter: false, tupleFlushFilter: false });
    const q = { protocol: 'udp', replySrc: '10.244.1.7' } as const;
    // The family comes from the address; the kernel compares protocol and address while dumping.
    const replySrc = Uint8Array.of(10, 244, 1, 7);
    expect(planQuery(q, kernelFeatures('6.11.0', {}), { allowFlush: true })).toMatchObject({ method: 'dump', kernelFilter: { family: 2, protocol: 17, replySrc } });
    expect(planQuery(q, kernelFeatures('6.12.3', {}), { allowFlush: true })).toMatchObject({ method: 'flush', lanes: [{ kernel: { family: 2, protocol: 17, replySrc } }] });
    expect(planQuery(q, kernelFeatures('5.7.0', {})).kernelFilter).toEqual({ family: 2 });
  });

  it('a masked mark is not sent to a 5.8 kernel (it skipped entries matching under the mask)', () => {
    expect(planQuery({ mark: { value: 1, mask: 0xff } }, kernelFeatures('5.8.0', {})).kernelFilter.mark).toBeUndefined();
    expect(planQuery({ mark: 7 }, kernelFeatures('5.8.0', {})).kernelFilter).toMatchObject({ mark: 7, markMask: 0xffffffff });
    expect(planQuery({ mark: { value: 0x1, mask: 0xff } }, kernelFeatures('5.10.0', {})).kernelFilter).toMatchObject({ mark: 1, markMask: 0xff });
  });

  it('a nonzero zone, of either direction, filters dumps from 6.8; zone 0 never; no zone ever flushes (the kernel compares the zone id in either direction)', () => {
    for (const release of ['6.8.0', '6.9.0', '6.18.0']) {
      const k = kernelFeatures(release, {});
      for (const key of ['zone', 'origZone', 'replyZone'] as const) {
        expect(planQuery({ [key]: 0 }, k).kernelFilter.zone).toBeUndefined();
        expect(planQuery({ [key]: 3 }, k).kernelFilter.zone).toBe(3);
        expect(planQuery({ [key]: 3, unreplied: true }, k, { allowFlush: true }).method).toBe('dump');
      }
      expect(planQuery({ zone: 0, origZone: 4 }, k).kernelFilter.zone).toBe(4);
    }
    expect(planQuery({ zone: 3 }, kernelFeatures('6.7.0', {})).kernelFilter.zone).toBeUndefined();
  });

  it.each([
    [{ bogus: 1 }, TypeError, /^bogus: unknown field of query/],
    [{ family: 'inet' }, RangeError, /family/],
    [{ protocol: 'tcpp' }, RangeError, /protocol/],
    [{ protocol: 300 }, RangeError, /protocol/],
    [{ state: 'SLEEPING' }, RangeError, /state/],
    [{ state: [] }, RangeError, /state/],
    [{ state: 5 }, TypeError, /state/],
    [{ unreplied: 'yes' }, TypeError, /unreplied/],
    [{ assured: 1 }, TypeError, /assured/],
    [{ src: '10.0.0.0/40' }, RangeError, /src/],
    [{ dst: [] }, RangeError, /dst/],
    [{ family: 'ipv4', src: '::1' }, RangeError, /src/],
    [{ sport: 70000 }, RangeError, /sport/],
    [{ dport: 'x' }, RangeError, /dport/],
    [{ mark: -1 }, RangeError, /mark/],
    [{ mark: { value: 1, bits: 2 } }, TypeError, /mark/],
    [{ mark: 'seven' }, RangeError, /mark: expected VALUE or VALUE\/MASK/],
    [{ mark: '0x10/0xf' }, RangeError, /outside the mask/],
    [{ mark: [7] }, TypeError, /mark/],
    [{ zone: 70000 }, RangeError, /zone/],
    [{ zone: 1.5 }, TypeError, /zone/],
    [{ olderThan: -5 }, RangeError, /olderThan/],
    [{ olderThan: NaN }, RangeError, /olderThan/],
    [{ olderThan: Infinity }, RangeError, /olderThan/],
    [{ olderThan: '10 years' }, RangeError, /olderThan/],
  ])('rejects %j', (query, type, message) => {
    expect(() => compileQuery(query as never)).toThrow(type);
    expect(() => compileQuery(query as never)).toThrow(message);
  });

  it('rejects non-objects', () => {
    expect(() => compileQuery(null as never)).toThrow(TypeError);
    expect(() => compileQuery([] as never)).toThrow(TypeError);
  });

  it('throws only the documented errors for arbitrary queries', () => {
    const field = fc.constantFrom('family', 'protocol', 'state', 'unreplied', 'assured', 'src', 'dst', 'sport', 'dport', 'mark', 'zone', 'olderThan');
    fc.assert(
      fc.property(fc.dictionary(field, fc.anything()), (q) => {
        try {
          const c = compileQuery(q as never);
          expect(typeof c.description).toBe('string');
        } catch (err) {
          expect(err instanceof TypeError || err instanceof RangeError).toBe(true);
          // A field, or an unknown key inside mark, named with its path ('mark.bogus').
          expect((err as Error).message).toMatch(/^(query|family|protocol|state|unreplied|assured|src|dst|sport|dport|mark|mark\.value|mark\.mask|zone|olderThan):|^mark\..*: unknown field of mark/s);
          // The field is also given as data, and it is the one the message starts with.
          const f = (err as { field?: string }).field;
          expect((err as Error).message.startsWith(`${f}: `)).toBe(true);
        }
      }),
    );
  });

  it('errors name their field as data (the CLI maps it to its option without parsing the message)', () => {
    const err = (() => {
      try {
        compileQuery({ mark: { value: 1, mask: -1 } });
      } catch (e) {
        return e as RangeError & { field?: string };
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(RangeError);
    expect(err?.field).toBe('mark.mask');
    expect((err as { reason?: string } | undefined)?.reason).toBe('-1 is outside 0-4294967295');
    expect(err?.message).toBe('mark.mask: -1 is outside 0-4294967295');
  });
});
