import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, RECORD_SIZE } from '../../src/index.js';
import { describeKernel, raiseConntrackMax, TestNetns } from '../helpers/kernel.js';
import { mixedTable, seedLine } from '../helpers/seed.js';
import { key } from '../helpers/expect.js';

const N = 200_000;

describeKernel(`streaming a ${N.toLocaleString('en-US')}-entry table`, () => {
  let ns: TestNetns;
  let ct: Conntrack;
  let restoreMax: () => void = () => undefined;
  beforeAll(async () => {
    restoreMax = raiseConntrackMax(N + 10_000);
    ns = TestNetns.create();
    ns.load(mixedTable(N).map(seedLine));
    ct = await Conntrack.open({ netns: ns.name });
  }, 300_000);
  afterAll(async () => {
    await ct?.close();
    ns?.destroy();
    restoreMax();
  });

  it('delivers every entry in chunks while native memory stays bounded', async () => {
    expect(ns.conntrackCount()).toBe(N);
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with --expose-gc (vitest.config.ts)').toBeTypeOf('function');
    gc!();
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = 0;
    let seen = 0;
    let chunks = 0;
    const keys = new Set<string>();
    for await (const chunk of ct.listChunks({}, { chunkSize: 2048 })) {
      chunks++;
      seen += chunk.byteLength / RECORD_SIZE;
      if (chunks % 10 === 0) {
        // Retained memory only: chunks already consumed are garbage. V8 frees ArrayBuffer
        // memory after the GC, on its sweeper: give it a turn.
        gc!();
        await new Promise((r) => setImmediate(r));
        gc!();
        peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
      }
      // Slow consumer: the kernel must wait for us rather than us buffering the table.
      if (chunks % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toBe(N);
    expect(chunks).toBeGreaterThan(50);
    // The whole table as records would be 200k * 176 B = 35.2 MB.
    expect(peak).toBeLessThan(8 * 1024 * 1024);
    // And the entry iterator sees each entry once (ids are 32-bit hashes and may collide; tuples don't).
    for await (const e of ct.list({ family: 'ipv4' })) keys.add(key({ ...e.orig, zone: e.zone }));
    expect(keys.size).toBe(N / 2);
  });

  it('a consumer that stops early releases the dump', async () => {
    let n = 0;
    for await (const entry of ct.list()) {
      expect(entry.id).toBeTypeOf('number');
      if (++n === 10) break;
    }
    expect(n).toBe(10);
    // The handle stays usable afterwards.
    expect(await ct.count({ unreplied: true })).toBe(ns.conntrackList(['-u', 'UNREPLIED']).length);
  });
});
