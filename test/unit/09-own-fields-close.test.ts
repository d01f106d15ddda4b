/**
 * One reading of every option object (own enumerable fields only, unknown keys named, BigInt
 * errors naming the field), checks made when schedule() is called, and a graceful close():
 * all with the native layer injected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { compileQuery } from '../../src/query.js';
import { POOL_SLOTS, Slots, threadPoolSize } from '../../src/pool.js';
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
    // The error's field is the unknown key (a caller looks it up by name), nested ones with their path.
    const fieldOf = async (fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        expect((err as Error).message).toMatch(/^[a-z.[\]0-9]*bogus: unknown field of /);
        return (err as { field?: string }).field;
      }
      return 'no error';
    };
    expect(await fieldOf(() => ct.list({}, { chunkSize: 10, bogus: 1 } as object))).toBe('bogus');
    expect(await fieldOf(() => ct.summary({}, { top: 3, bogus: 1 } as object))).toBe('bogus');
    expect(await fieldOf(() => ct.events({ bogus: 1 } as object))).toBe('bogus');
    expect(await fieldOf(() => ct.schedule({ query: { unreplied: true }, every: 60, bogus: 1 } as never))).toBe('bogus');
    expect(await fieldOf(() => ct.schedule({ query: { unreplied: true }, every: 60, adaptive: { bogus: 1 } } as never))).toBe('adaptive.bogus');
    expect(await fieldOf(() => ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, timeout: 60, reply: { src: '10.0.0.2', dst: '10.0.0.1', bogus: 1 } } as never))).toBe('reply.bogus');
    expect(await fieldOf(() => ct.purge({ unreplied: true, bogus: 1 } as never))).toBe('bogus');
    expect(await fieldOf(() => ct.purge({ unreplied: true, mark: { value: 1, bogus: 1 } } as never))).toBe('mark.bogus');
    expect(await fieldOf(() => ct.purge({ unreplied: true, except: [{ dport: 1 }, { bogus: 1 }] } as never))).toBe('except[1].bogus');
    expect(await fieldOf(() => Conntrack.open({ bogus: 1 } as never))).toBe('bogus');
  });

  it('BigInt values: the error names the field', async () => {
    const { ct } = await open();
    for (const [field, value] of [['olderThan', 10n], ['mark', 1n], ['zone', 2n], ['sport', 80n]] as const) {
      expect(() => compileQuery({ [field]: value } as never)).toThrow(new RegExp(`^${field}: .*bigint ${value}n`));
    }
    await expect(ct.purge({ unreplied: true, limit: 5n } as never)).rejects.toThrow(/^limit: expected an integer, got bigint 5n/);
    await expect(ct.purge({ unreplied: true, limit: 1e300 })).rejects.toThrow(/^limit: 1e\+300 is more than 9007199254740991 \(leave it out for no limit\)/);
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
    // A closed handle's error is typed: callers branch on its code, not its text.
    await expect(ct.stats()).rejects.toMatchObject({ name: 'ConntrackError', code: 'ERR_USE_AFTER_CLOSE', operation: 'closed' });
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

describe('a polluted Object.prototype changes no call into the addon, for every option of every method', () => {
  /** Every field name any option object, plan, filter, lane or native request has, and a value that would change it. */
  const POLLUTION: Record<string, unknown> = {
    // queries, filters and kernel filters
    family: 'ipv6', protocol: 'udp', state: 'ESTABLISHED', unreplied: true, assured: true, src: '10.9.9.9', dst: '10.9.9.9', replySrc: '10.9.9.9', replyDst: '10.9.9.9',
    sport: 9, dport: 9, mark: 5, zone: 3, origZone: 4, replyZone: 5, olderThan: 1, idleFor: 1, value: 5, mask: 5,
    hasStates: true, tcpStates: 2, sctpStates: 2, dccpStates: 2, statusMask: 2, statusValue: 2, markMask: 5, status: 2,
    // kernel features, plans and lanes
    statusFilter: false, zoneFilter: false, zoneZeroFilter: false, maskedMarkFilter: false, tupleDumpFilter: false, tupleFlushFilter: false, kernelFilters: false,
    lanes: 1, allowFlush: true, kernel: { family: 10 }, match: { family: 10 },
    // purge, list, export, events, schedule, summary, open
    plan: {}, dryRun: true, limit: 1, logFd: 1, fd: 1, wantEntries: true, cancel: new Int32Array(1), onDeleted: () => undefined, onProgress: () => undefined,
    signal: AbortSignal.abort(), chunkSize: 1, format: 'table', types: ['new'], query: { unreplied: true }, receiveBuffer: 4096,
    every: 1, adaptive: true, whenAbove: 0.5, lock: () => undefined, min: 1, max: 2, top: 1, talkers: false, netns: '/proc/1/ns/net',
    // tuples and creates
    icmp: { type: 3 }, type: 3, code: 3, id: 3, timeout: 5, labels: [1], reply: { src: '10.9.9.9', dst: '10.9.9.9' }, replySport: 9, replyDport: 9,
  };

  /** The same scenario, clean and polluted: every method the library has that reaches the addon. */
  async function scenario(polluted: boolean) {
    const { binding, calls } = fakeBinding({ deleted: 3 });
    const proto = Object.prototype as Record<string, unknown>;
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    const { statusFilter, zoneFilter, tupleDumpFilter, tupleFlushFilter, kernelFilters } = FAKE_KERNEL;
    if (polluted) Object.assign(proto, POLLUTION);
    try {
      const ct = await Conntrack.open({ binding, kernel: { release: '6.18.0', statusFilter, zoneFilter, tupleDumpFilter, tupleFlushFilter, kernelFilters }, lanes: 2 });
      const query = { unreplied: true, mark: { value: 1 } };
      await attempt('purge', () => ct.purge({ ...query }));
      await attempt('purge dry', () => ct.purge({ ...query, dryRun: true, limit: 10 }));
      await attempt('purge plan', () => ct.purge({ plan: ct.plan({ src: '10.0.0.1' }, { allowFlush: true }) }));
      await attempt('count', () => ct.count(query));
      await attempt('list', async () => {
        for await (const e of ct.list(query)) void e;
      });
      await attempt('listNdjson', async () => {
        for await (const b of ct.listNdjson({ dport: [80, 90] })) void b;
      });
      await attempt('exportTo', () => ct.exportTo(2, { state: 'ESTABLISHED' }, { format: 'ndjson' }));
      await attempt('summary', () => ct.summary(query));
      await attempt('get', () => ct.get({ protocol: 'tcp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }));
      await attempt('get icmp', () => ct.get({ protocol: 'icmp', src: '10.0.0.1', dst: '10.0.0.2', icmp: { type: 8 } }));
      await attempt('create', () => ct.create({ protocol: 'icmp', src: '10.0.0.1', dst: '10.0.0.2', timeout: 60, reply: { src: '10.0.0.2', dst: '10.0.0.1' } }));
      await attempt('delete', () => ct.delete({ protocol: 'udp', src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }));
      await attempt('events', async () => {
        for await (const e of ct.events({ query })) void e;
      });
      await attempt('eventLines', async () => {
        for await (const e of ct.eventLines({ format: 'conntrack' })) void e;
      });
      await attempt('schedule', async () => {
        const p = ct.schedule({ query, every: 60 });
        await p.runNow();
        await p.stop();
      });
      await ct.close();
    } finally {
      if (polluted) for (const key of Object.keys(POLLUTION)) delete proto[key];
    }
    return { calls, errors };
  }

  it('every native call is the same with and without the pollution', async () => {
    const clean = await scenario(false);
    const dirty = await scenario(true);
    expect(clean.errors).toEqual([]);
    expect(dirty.errors).toEqual([]);
    const text = (c: typeof clean.calls) => JSON.stringify(c, (_, v: unknown) => (ArrayBuffer.isView(v) ? [...(v as Uint8Array)] : v));
    expect(clean.calls.purge.length).toBeGreaterThan(3);
    expect(clean.calls.specs.length).toBe(4);
    expect(text(dirty.calls)).toBe(text(clean.calls));
  });
});

describe('typed error edges', () => {
  it("a purge stopped by its audit log carries { kind: 'purge', result }; an export stopped by its write { kind: 'export', written }", async () => {
    const { ct, calls } = await open({ deleted: 5, logCode: 'ENOSPC' });
    const err = await ct.purge({ unreplied: true, logFd: 99 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ConntrackError', code: 'ENOSPC', operation: 'log', partial: { kind: 'purge', result: { deleted: 5, logged: 5 } } });
    const run = (err as { partial: { result: { run: string } } }).partial.result.run;
    expect(run).toMatch(/^[0-9a-f]{12}$/);
    // Each audit line ends with the run's id and the namespace (the addon adds "time" first).
    expect(calls.purge[0]?.options.logTag).toBe(`,"run":"${run}","netns":null`);
    await expect(ct.exportTo(99, { unreplied: true })).rejects.toMatchObject({ operation: 'write', partial: { kind: 'export', written: 5 } });
    // An export is not a purge: the addon's own call, its lines the list format as it is.
    expect(calls.purge).toHaveLength(1);
    expect(calls.export[0]?.options).toMatchObject({ fd: 99, format: 'ndjson' });
    // A kernel failure half-way: the counts so far, as a PurgeResult of that run.
    const { ct: failing } = await open({ deleted: 3, purgeCode: 'ENOBUFS' });
    const broken = await failing.purge({ unreplied: true }).catch((e: unknown) => e);
    expect(broken).toMatchObject({ name: 'ConntrackError', code: 'ENOBUFS', operation: 'delete', partial: { kind: 'purge', result: { deleted: 3, matched: 3, tableSize: 1000, dryRun: false } } });
    expect((broken as { partial: { result: { run: string } } }).partial.result.run).toMatch(/^[0-9a-f]{12}$/);
    // No audit log, no stamp; every run has its own id.
    const { ct: ok, calls: okCalls } = await open({ deleted: 1 });
    const [a, b] = [await ok.purge({ unreplied: true }), await ok.purge({ unreplied: true })];
    expect(a.run).not.toBe(b.run);
    expect(okCalls.purge[0]?.options.logTag).toBeUndefined();
  });
});

describe("the library's share of libuv's thread pool", () => {
  it('holds at most half the pool (UV_THREADPOOL_SIZE, default 4) across every handle; the rest wait in order', async () => {
    expect(threadPoolSize({})).toBe(4);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '16' })).toBe(16);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: 'x' })).toBe(4);
    // As libuv reads it: 0 is one thread, a negative number (unsigned to libuv) the maximum.
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '0' })).toBe(1);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '-1' })).toBe(1024);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' })).toBe(1024);
    expect(POOL_SLOTS.size).toBe(Math.max(1, Math.floor(threadPoolSize() / 2)));
    // Two handles, 30 calls at once: never more than the share in the addon at a time.
    const a = await open({ delayMs: 20, deleted: 1 });
    const b = await open({ delayMs: 20, deleted: 1 });
    const results = await Promise.all([
      ...Array.from({ length: 15 }, () => a.ct.purge({ unreplied: true })),
      ...Array.from({ length: 15 }, () => b.ct.count({ unreplied: true })),
    ]);
    expect(results).toHaveLength(30);
    expect(a.calls.maxConcurrent).toBeLessThanOrEqual(POOL_SLOTS.size);
    expect(POOL_SLOTS.active).toBe(0);
    expect(POOL_SLOTS.waiting).toBe(0);
  });

  it('Slots: first come, first served; a failure gives its slot back', async () => {
    const slots = new Slots(2);
    const order: number[] = [];
    let inFlight = 0;
    let most = 0;
    const job = (i: number) =>
      slots.run(async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        order.push(i);
        if (i === 3) throw new Error('boom');
        return i;
      });
    const settled = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => job(i)));
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(settled[3]?.status).toBe('rejected');
    expect(slots.active).toBe(0);
  });
});
