import { describe, expect, it } from 'vitest';
import { RECORD_SIZE } from '../../src/entry.js';
import { SummaryBuilder } from '../../src/summary.js';

/** Packed IPv4 TCP records with the given source addresses (last two bytes) and dports. */
function records(sources: number[], dports: number[]): ArrayBuffer {
  const buf = new ArrayBuffer(sources.length * RECORD_SIZE);
  const b = new Uint8Array(buf);
  const v = new DataView(buf);
  sources.forEach((s, i) => {
    const o = i * RECORD_SIZE;
    b[o + 18] = 2;
    b[o + 19] = 6;
    b[o + 22] = 16;
    b.set([10, 0, s >> 8, s & 255], o + 40);
    b.set([192, 0, 2, 1], o + 56);
    v.setUint16(o + 74, dports[i] as number, true);
  });
  return buf;
}

describe('summary', () => {
  it('top talkers: the largest counts, ties broken by key, whatever the shard and the slicing', async () => {
    // 5,000 sources; source k appears (k % 7) + 1 times; ports likewise.
    const sources: number[] = [];
    const dports: number[] = [];
    for (let k = 0; k < 5000; k++) for (let j = 0; j <= k % 7; j++) {
      sources.push(k);
      dports.push(1000 + (k % 300));
    }
    const builder = new SummaryBuilder();
    const buf = records(sources, dports);
    // Added in uneven ranges, as the time-sliced reader does.
    for (let off = 0; off < buf.byteLength; off += 37 * RECORD_SIZE) builder.add(buf, off, Math.min(off + 37 * RECORD_SIZE, buf.byteLength));
    const s = await builder.result(5);
    expect(s.total).toBe(sources.length);
    // Ties in address order (byte order), ports in text order.
    const naive = <K>(keys: K[], name: (k: K) => string) => {
      const m = new Map<K, number>();
      for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
      return [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5).map(([key, count]) => ({ key: name(key), count }));
    };
    expect(s.topSources).toEqual(naive(sources, (k) => `10.0.${k >> 8}.${k & 255}`));
    expect(s.topSources[0]?.count).toBe(7);
    expect(s.topDestinationPorts).toEqual(naive(dports.map((p) => `tcp/${p}`), (k) => k));
    expect(s.topDestinations).toEqual([{ key: '192.0.2.1', count: sources.length }]);
  });
});
