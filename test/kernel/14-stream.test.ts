import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { Conntrack, RECORD_SIZE } from '../../src/index.js';
import { loadNative } from '../../src/addon.js';
import type { NativeLane } from '../../src/native.js';
import { UNSET_FILTER } from '../../src/query.js';
import { describeKernel, raiseConntrackMax, TestNetns } from '../helpers/kernel.js';
import { mixedTable, seedLine } from '../helpers/seed.js';
import { columnStarts, exportLines, key } from '../helpers/expect.js';

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

  it('exportTo writes from the dump threads: the same lines as listNdjson', async () => {
    const query = { protocol: 'tcp', unreplied: false } as const;
    const { n, lines: written } = await exportLines(ct, query);
    expect(written).toHaveLength(n);
    expect(n).toBe(await ct.count(query));
    const viaJs: string[] = [];
    for await (const b of ct.listNdjson(query)) viaJs.push(...b.toString('utf8').trimEnd().split('\n'));
    const strip = (l: string) => l.replace(/"timeout":\d+,/, '').replace(/"age":[\d.]+,/, '').replace(/"idle":[\d.]+,/, '');
    expect(written.map(strip).sort()).toEqual(viaJs.map(strip).sort());
    // limit: exactly that many lines, each one of the selection's, over both lanes.
    const all = new Set(written.map(strip));
    for (const limit of [0, 1, 777]) {
      const { n: m, lines } = await exportLines(ct, query, { limit });
      expect([m, lines.length]).toEqual([limit, limit]);
      expect(lines.every((l) => all.has(strip(l)))).toBe(true);
    }
    await expect(ct.exportTo(1, {}, { limit: -1 })).rejects.toThrow(/limit: must be 0 or more/);
    await expect(ct.exportTo(-1)).rejects.toThrow(/fd: expected an open file descriptor/);
    await expect(ct.exportTo(1, {}, { format: 'xml' as never })).rejects.toThrow(/format: expected 'ndjson', 'conntrack' or 'table'/);
  });

  it('the table over two lanes: the first 4,096 rows aligned as a whole, columns only move right after', async () => {
    const two = await Conntrack.open({ netns: ns.name, lanes: 2 });
    try {
      const { n, lines } = await exportLines(two, {}, { format: 'table' });
      expect([n, lines.length]).toEqual([N, N + 1]);
      // Both families in the head: IPv6 rows set the address columns' widths for IPv4 ones too.
      const head = lines.slice(1, 4097);
      expect(head.some((l) => l.includes('['))).toBe(true);
      expect(head.some((l) => /^\S+\s+\S+\s+\d+\.\d+\.\d+\.\d+/.test(l))).toBe(true);
      const header = columnStarts(lines[0] as string, true);
      expect(head.filter((l) => columnStarts(l).join() !== header.join())).toEqual([]);
      let previous = header;
      const movedLeft: string[] = [];
      for (const l of lines.slice(4097)) {
        const starts = columnStarts(l);
        if (starts.length !== header.length || starts.some((x, i) => x < (previous[i] as number))) movedLeft.push(l);
        previous = starts;
      }
      expect(movedLeft).toEqual([]);
    } finally {
      await two.close();
    }
  });

  it('ctpurge list --json with a reader that does not drain: the dump waits, memory stays flat', async () => {
    const child = spawn(process.execPath, [BIN, 'list', '--json', '--netns', ns.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      // Nobody reads for 2 s: the pipe fills and the writer must wait, not buffer.
      await new Promise((r) => setTimeout(r, 2000));
      const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024;
      const stalled = hwm();
      let lines = 0;
      child.stdout.on('data', (d: Buffer) => {
        for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
      });
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(0);
      // The whole table as NDJSON is about 90 MB: buffering it would show here. (A sanitizer
      // build, npm run test:asan, adds its own shadow memory.)
      expect(stalled).toBeLessThan(process.env.CTPURGE_ADDON ? 200 : 90);
      expect(lines).toBeGreaterThan(N * 0.8); // UDP entries of 25 s expire while the tests run
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('SIGTERM stops ctpurge list --json even while its reader does not drain', async () => {
    const child = spawn(process.execPath, [BIN, 'list', '--json', '--netns', ns.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.once('exit', r));
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(code).toBe(0);
      expect(err).toBe('');
    } finally {
      child.kill('SIGKILL');
    }
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

describeKernel('the addon reads one format name per format, and refuses any other', () => {
  let ns: TestNetns;
  beforeAll(() => {
    ns = TestNetns.create('ctp-format');
    ns.load(['-I -p udp -s 10.3.0.1 -d 10.3.0.2 --sport 1000 --dport 53 -t 600']);
  });
  afterAll(() => ns?.destroy());

  it('dump, events and the export lines: a known name works, an unknown one is a TypeError, not the default', async () => {
    const h = await loadNative().open(ns.path);
    try {
      const lane: NativeLane = { kernel: { family: 0 }, match: { ...UNSET_FILTER } };
      const ndjson = h.dump(lane, 16, 'ndjson');
      const text = (await ndjson.next()) as Buffer | null;
      ndjson.close();
      expect(text?.toString()).toMatch(/^\{"id":/);
      expect(() => h.dump(lane, 16, 'json' as never)).toThrow(/^ctpurge: dump format must be one of records, ndjson$/);
      expect(() => h.events(lane.match, 7, 0, 'table' as never)).toThrow(/^ctpurge: events format must be one of records, ndjson, conntrack$/);
      expect(() => h.export([lane], { fd: 1, format: 'csv' as never })).toThrow(/^ctpurge: export format must be one of ndjson, conntrack, table$/);
      expect(() => h.export([lane], { fd: -1, format: 'ndjson' })).toThrow(/^ctpurge: export fd must be a file descriptor$/);
      // Nothing was purged.
      expect(ns.conntrackCount()).toBe(1);
    } finally {
      h.close();
    }
  });
});
