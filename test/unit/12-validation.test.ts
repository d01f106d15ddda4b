/**
 * Bad options and specs are refused before any native call: with the native layer injected
 * (test/helpers/fakeBinding.ts), no root and no kernel. The kernel suites check, with one
 * case each, that the real table is untouched.
 */
import { describe, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { FAKE_KERNEL, fakeBinding } from '../helpers/fakeBinding.js';

async function open() {
  const { binding, calls } = fakeBinding();
  return { ct: await Conntrack.open({ binding, kernel: FAKE_KERNEL }), calls, binding };
}

describe('refused before any native call', () => {
  it('open: a bad namespace name or option', async () => {
    const { binding, calls } = fakeBinding();
    await expect(Conntrack.open({ binding, netns: '../x' })).rejects.toThrow(RangeError);
    await expect(Conntrack.open({ binding, netns: 5 as never })).rejects.toThrow(TypeError);
    // A relative path is a RangeError that names its field, as every option's error does.
    await expect(Conntrack.open({ binding, netns: 'proc/1/ns/net' })).rejects.toMatchObject({ name: 'RangeError', field: 'netns', reason: expect.stringMatching(/must be absolute/) });
    await expect(Conntrack.open({ binding, netns: 5 as never })).rejects.toMatchObject({ field: 'netns' });
    await expect(Conntrack.open({ binding, nets: 'x' } as never)).rejects.toThrow(/^nets: unknown field of options \(did you mean 'netns'\?\)/);
    await expect(Conntrack.open({ binding, lanes: 3 })).rejects.toThrow(/^lanes: 3 is outside 1-2/);
    expect(calls.opened).toBe(0);
  });

  it('purge: an empty query, bad options, a forged plan', async () => {
    const { ct, calls } = await open();
    await expect(ct.purge({})).rejects.toThrow(/refusing to purge with an empty query/);
    await expect(ct.purge({ unreplied: true, limit: -1 })).rejects.toThrow(RangeError);
    await expect(ct.purge({ unreplied: true, dryRun: 'yes' as never })).rejects.toThrow(TypeError);
    await expect(ct.purge({ unreplied: true, bogus: 1 } as never)).rejects.toThrow(/^bogus: unknown field of purge$/);
    await expect(ct.purge({ olderThan: 'forever' })).rejects.toThrow(RangeError);
    await expect(ct.purge({ unreplied: true, onDeleted: 5 as never })).rejects.toThrow(/^onDeleted: expected a function/);
    await expect(ct.purge({ unreplied: true, logFd: -1 })).rejects.toThrow(/^logFd: expected an open file descriptor/);
    await expect(ct.purge({ unreplied: true, signal: {} as never })).rejects.toThrow(/^signal: expected an AbortSignal/);
    const plan = ct.plan({ unreplied: true });
    await expect(ct.purge({ plan: { ...plan } as never })).rejects.toThrow(/^plan: expected a plan/);
    await expect(ct.purge({ plan, olderThan: 60 })).rejects.toThrow(/^plan: give a plan or query fields, not both/);
    await expect(ct.purge({ plan: ct.plan({}) })).rejects.toThrow(/empty query/);
    expect(calls.purge).toHaveLength(0);
  });

  it('create, get and delete: bad specs', async () => {
    const { ct, calls } = await open();
    await expect(ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: 'fd00::1', sport: 1, dport: 2, timeout: 5 })).rejects.toThrow(/dst/);
    await expect(ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 } as never)).rejects.toThrow(/timeout/);
    await expect(ct.create({ protocol: 'udp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, timeout: 5, state: 'ESTABLISHED' })).rejects.toThrow(/state/);
    await expect(ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, timeout: 5, status: ['dying'] })).rejects.toThrow(RangeError);
    await expect(ct.get({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' } as never)).rejects.toThrow(/sport and dport/);
    await expect(ct.delete({ protocol: 'tcp', src: 'x', dst: '10.0.0.2', sport: 1, dport: 2 })).rejects.toThrow(/src/);
    expect(calls.single).toBe(0);
  });

  it('exportTo, list, count and summary: bad options or queries', async () => {
    const { ct, calls } = await open();
    await expect(ct.exportTo(-1)).rejects.toThrow(/^fd: /);
    await expect(ct.exportTo(1, {}, { format: 'xml' as never })).rejects.toThrow(/^format: /);
    await expect(ct.exportTo(1, {}, { limit: 1.5 })).rejects.toThrow(/^limit: /);
    expect(() => ct.list({ state: 'NOPE' })).toThrow(/^state: /);
    await expect(ct.count({ zone: 70000 })).rejects.toThrow(/^zone: /);
    await expect(ct.summary({}, { top: 0 })).rejects.toThrow(/^top: /);
    expect(() => ct.events({ receiveBuffer: 'big' as never })).toThrow(TypeError);
    expect(() => ct.events({ receiveBuffer: 100 })).toThrow(/^receiveBuffer: 100 is outside 4096-1073741824/);
    expect(() => ct.events({ types: ['created' as never] })).toThrow(/^types: unknown event type/);
    expect(calls.purge.length + calls.dump.length + calls.count.length + calls.summary.length).toBe(0);
  });
});

describe('the plan reaches the native layer as it was decided', () => {
  it('a flush only for a purge that needs no entry, whatever plan it is given', async () => {
    const { ct, calls } = await open();
    const flushPlan = ct.plan({ unreplied: true }, { allowFlush: true });
    expect(flushPlan.method).toBe('flush');
    await ct.purge({ plan: flushPlan });
    await ct.purge({ plan: flushPlan, dryRun: true });
    await ct.purge({ plan: flushPlan, limit: 10 });
    await ct.purge({ plan: flushPlan, onDeleted: () => undefined });
    await ct.purge({ plan: flushPlan, logFd: 1 });
    await ct.purge({ unreplied: true });
    await ct.purge({ unreplied: true, olderThan: 60 });
    expect(calls.purge.map((c) => c.method)).toEqual(['flush', 'dump', 'dump', 'dump', 'dump', 'flush', 'dump']);
    // The flush request carries the condition; a dump lane carries it too, and the match.
    expect(calls.purge[0]?.lanes.map((l) => l.kernel)).toEqual([{ family: 0, status: 0, statusMask: 2 }]);
    expect(calls.purge[1]?.lanes.every((l) => l.kernel.statusMask === 2 && l.match.statusMask === 2)).toBe(true);
    // A plan given to a listing is dumped, never flushed.
    await ct.exportTo(1, flushPlan);
    expect(calls.purge).toHaveLength(7);
    expect(calls.export[0]?.lanes.every((l) => l.kernel.statusMask === 2 && l.match.statusMask === 2)).toBe(true);
  });

  it('a Purger plans once and every run purges with that plan', async () => {
    const { ct, calls } = await open();
    const purger = ct.schedule({ query: { unreplied: true }, every: 3600 });
    await purger.runNow();
    await purger.runNow();
    await purger.stop();
    expect(calls.purge.map((c) => c.method)).toEqual(['flush', 'flush']);
    expect(calls.purge[0]?.lanes).toBe(calls.purge[1]?.lanes);
  });
});

describe('tuples with zones', () => {
  it('a zone of one direction is carried; two nonzero zones are refused (an entry has one)', async () => {
    const { tupleToNative } = await import('../../src/entrySpec.js');
    const base = { protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 } as const;
    expect(tupleToNative({ ...base, origZone: 5 })).toMatchObject({ origZone: 5 });
    expect(tupleToNative({ ...base, zone: 0, replyZone: 7 })).toMatchObject({ zone: 0, replyZone: 7 });
    expect(() => tupleToNative({ ...base, zone: 3, origZone: 5 })).toThrow(/^origZone: an entry has one zone: zone and origZone cannot both be set/);
  });
});
