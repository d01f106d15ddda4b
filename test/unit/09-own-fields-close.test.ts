/**
 * One reading of every option object (own enumerable fields only, unknown keys named, BigInt
 * errors naming the field), checks made when schedule() is called, and a graceful close():
 * all with the native layer injected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { compileQuery } from '../../src/query.js';
import { FAKE_KERNEL, fakeBinding } from '../helpers/fakeBinding.js';

async function open(opts: Parameters<typeof fakeBinding>[0] = {}) {
  const { binding, calls } = fakeBinding(opts);
  return { ct: await Conntrack.open({ binding, kernel: FAKE_KERNEL }), calls };
}

describe('own enumerable fields only', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).olderThan;
    delete (Object.prototype as Record<string, unknown>).dryRun;
  });

  it('an inherited query field is not a condition, for purge and count alike', async () => {
    const { ct, calls } = await open();
    const q = Object.assign(Object.create({ unreplied: true }) as object, { olderThan: 3600 });
    await ct.purge({ ...q, olderThan: 3600, dryRun: true });
    await ct.purge(Object.assign(Object.create({ unreplied: true }) as object, { olderThan: 3600, dryRun: true }));
    await ct.count(q);
    const [a, b] = calls.purge;
    // Both purges and the count read the same conditions: olderThan, no status condition.
    expect(a?.lanes).toEqual(b?.lanes);
    expect(b?.lanes.every((l) => l.match.olderThan === 3600)).toBe(true);
    // No status condition but the lanes' own split by reply status (with two lanes).
    expect(b?.lanes.map((l) => [l.match.statusMask, l.match.statusValue])).toEqual(ct.lanes === 2 ? [[2, 0], [2, 2]] : [[0, 0]]);
    expect(calls.count[0]).toEqual(b?.lanes);
    expect(compileQuery(Object.create({ unreplied: true }) as object).empty).toBe(true);
  });

  it('a polluted Object.prototype neither adds a condition nor lifts the empty-query refusal', async () => {
    const { ct, calls } = await open();
    (Object.prototype as Record<string, unknown>).olderThan = 0;
    (Object.prototype as Record<string, unknown>).dryRun = false;
    await expect(ct.purge({})).rejects.toThrow(/refusing to purge with an empty query/);
    expect(() => ct.schedule({ query: {}, every: 60 })).toThrow(/empty query/);
    expect(calls.purge).toHaveLength(0);
    // A dry run stays a dry run whatever the prototype says.
    (Object.prototype as Record<string, unknown>).dryRun = false;
    await ct.purge({ unreplied: true, dryRun: true });
    expect(calls.purge[0]?.options.dryRun).toBe(true);
    // The polluted field is not the filter's own (and the addon reads own fields only).
    expect(calls.purge[0]?.lanes.some((l) => Object.hasOwn(l.match, 'olderThan'))).toBe(false);
  });

  it('unknown keys are named everywhere: list options, summary options, events, schedule, create and its reply, open', async () => {
    const { ct } = await open();
    expect(() => ct.list({}, { chunkSize: 10, bogus: 1 } as object)).toThrow(/'bogus'/);
    await expect(ct.summary({}, { top: 3, bogus: 1 } as object)).rejects.toThrow(/'bogus'/);
    expect(() => ct.events({ bogus: 1 } as object)).toThrow(/'bogus'/);
    expect(() => ct.schedule({ query: { unreplied: true }, every: 60, bogus: 1 } as never)).toThrow(/'bogus'/);
    await expect(ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, timeout: 60, reply: { src: '10.0.0.2', dst: '10.0.0.1', bogus: 1 } } as never)).rejects.toThrow(/reply: unknown field 'bogus'/);
    await expect(ct.purge({ unreplied: true, bogus: 1 } as never)).rejects.toThrow(/'bogus'/);
    await expect(Conntrack.open({ bogus: 1 } as never)).rejects.toThrow(/'bogus'/);
  });

  it('BigInt values: the error names the field', async () => {
    const { ct } = await open();
    for (const [field, value] of [['olderThan', 10n], ['mark', 1n], ['zone', 2n], ['sport', 80n]] as const) {
      expect(() => compileQuery({ [field]: value } as never)).toThrow(new RegExp(`^${field}: .*bigint ${value}n`));
    }
    await expect(ct.purge({ unreplied: true, limit: 5n } as never)).rejects.toThrow(/^limit: expected an integer, got bigint 5n/);
    expect(() => ct.list({}, { chunkSize: 5n } as never)).toThrow(/^chunkSize: /);
  });
});

describe('schedule() checks every option when it is called, with the CLI\'s messages', () => {
  it.each([
    [{ every: 'banana' }, /^every: "banana" is not a duration/],
    [{ every: 0.01 }, /^every: must be at least 100ms/],
    [{ every: 60, whenAbove: 2 }, /^whenAbove: /],
    [{ every: 60, limit: -1 }, /^limit: -1 is outside/],
    [{ every: 60, limit: 'all' }, /^limit: expected an integer/],
    [{ every: 60, dryRun: 'yes' }, /^dryRun: expected true or false/],
    [{ every: 60, adaptive: 'fast' }, /^adaptive: /],
    [{ every: 60, adaptive: { min: 'x' } }, /^adaptive.min: /],
  ])('%o', async (opts, message) => {
    const { ct } = await open();
    expect(() => ct.schedule({ query: { unreplied: true }, ...opts } as never)).toThrow(message);
  });
});

describe('close() is graceful', () => {
  it('lets a purge, a count and a summary that already started finish, then refuses new work', async () => {
    const { ct, calls } = await open({ delayMs: 50, deleted: 7 });
    const purge = ct.purge({ unreplied: true });
    const count = ct.count({ unreplied: true });
    const closed = ct.close();
    expect(ct.closed).toBe(true);
    await expect(ct.count()).rejects.toThrow(/this handle is closed/);
    expect(calls.closed).toBe(0);
    await expect(purge).resolves.toMatchObject({ deleted: 7 });
    await expect(count).resolves.toBe(1000);
    await closed;
    expect(calls.closed).toBe(1);
    // Again: the same promise, no second native close.
    await ct.close();
    expect(calls.closed).toBe(1);
    expect(() => ct.list()).toThrow(/this handle is closed/);
  });
});
