/** Conntrack events: real traffic, overflow reported as lost, and `ctpurge watch`. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, type ConntrackEvent } from '../../src/index.js';
import { startCtpurge } from '../helpers/cli.js';
import { describeKernel } from '../helpers/kernel.js';
import { hpingAcks, trafficPair } from '../helpers/traffic.js';
import { waitFor } from '../helpers/wait.js';
import { conntrackLine, jsonLine } from '../helpers/formats.js';

const daemon = startCtpurge;

describeKernel('events', () => {
  let pair: ReturnType<typeof trafficPair>;
  let ct: Conntrack;
  beforeAll(async () => {
    pair = trafficPair();
    ct = await Conntrack.open({ netns: pair.client.name });
  });
  afterAll(async () => {
    await ct?.close();
    pair?.client.destroy();
    pair?.peer.destroy();
  });

  it('sees new entries from real traffic and their destruction', async () => {
    const ac = new AbortController();
    const seen: ConntrackEvent[] = [];
    const done = (async () => {
      for await (const ev of ct.events({ query: { protocol: 'tcp', dport: 80 }, signal: ac.signal })) seen.push(ev);
    })();
    await new Promise((r) => setTimeout(r, 300));
    hpingAcks(pair.client, pair.peerIp, 50, 30000);
    await waitFor('new events', () => seen.filter((e) => e.type === 'new').length >= 40, 10_000);
    await ct.purge({ protocol: 'tcp', dport: 80, olderThan: 0 });
    await waitFor('destroy events', () => seen.filter((e) => e.type === 'destroy').length >= 40, 10_000);
    ac.abort();
    await done;
    const news = seen.filter((e): e is Extract<ConntrackEvent, { entry: unknown }> => e.type === 'new');
    expect(news.every((e) => e.entry.orig.dport === 80 && e.entry.orig.dst === pair.peerIp)).toBe(true);
    expect(seen.some((e) => e.type === 'lost')).toBe(false);
  });

  it('reports lost events when the receive buffer overflows', async () => {
    const it = ct.events({ types: ['new'], receiveBuffer: 4096 });
    // The first read subscribes; one event completes it.
    const first = it.next();
    await new Promise((r) => setTimeout(r, 300));
    pair.client.load(['-I -p udp -s 10.60.255.1 -d 10.61.0.1 --sport 1000 --dport 53 -t 60']);
    const r = await first;
    expect(r.done).toBe(false);
    // Nobody reads now: a burst far larger than the 4 KiB buffer overflows it.
    pair.client.load(Array.from({ length: 5000 }, (_, i) => `-I -p udp -s 10.60.${i >> 8}.${i & 255} -d 10.61.0.1 --sport 1000 --dport 53 -t 60`));
    const next = await it.next();
    await it.return?.(undefined);
    expect(next.done).toBe(false);
    expect(next.value).toMatchObject({ type: 'lost' });
    expect((next.value as { count: number }).count).toBeGreaterThan(0);
  });

  it('eventLines writes the events as the reference formats them, NDJSON and conntrack lines alike', async () => {
    const ac = new AbortController();
    const query = { protocol: 'udp', dport: 4242 } as const;
    const events: ConntrackEvent[] = [];
    const ndjson: string[] = [];
    const conntrack: string[] = [];
    // Three subscriptions at once: each socket receives every event.
    const runs = [
      (async () => {
        for await (const ev of ct.events({ query, signal: ac.signal })) events.push(ev);
      })(),
      (async () => {
        for await (const b of ct.eventLines({ query, signal: ac.signal, format: 'ndjson' })) ndjson.push(b.text.toString());
      })(),
      (async () => {
        for await (const b of ct.eventLines({ query, signal: ac.signal, format: 'conntrack' })) conntrack.push(b.text.toString());
      })(),
    ];
    await new Promise((r) => setTimeout(r, 300));
    pair.client.load(Array.from({ length: 5 }, (_, i) => `-I -p udp -s 10.80.0.${i + 1} -d 10.80.1.1 --sport ${2000 + i} --dport 4242 -t 60 --mark ${i}`));
    pair.client.load(['-U -p udp -s 10.80.0.1 -d 10.80.1.1 --sport 2000 --dport 4242 -m 77']);
    pair.client.load(['-D -p udp -s 10.80.0.2 -d 10.80.1.1 --sport 2001 --dport 4242']);
    const lines = (chunks: string[]) => chunks.join('').split('\n').filter(Boolean);
    await waitFor('every stream to see 7 events', () => events.length >= 7 && lines(ndjson).length >= 7 && lines(conntrack).length >= 7, 10_000);
    ac.abort();
    await Promise.all(runs);
    const entries = events.filter((e): e is Extract<ConntrackEvent, { entry: unknown }> => e.type !== 'lost');
    expect(entries.map((e) => e.type)).toEqual(['new', 'new', 'new', 'new', 'new', 'update', 'destroy']);
    expect(lines(ndjson)).toEqual(entries.map((e) => `{"type":"${e.type}","entry":${jsonLine(e.entry)}}`));
    expect(lines(conntrack)).toEqual(entries.map((e) => `[${e.type.toUpperCase()}] ${conntrackLine(e.entry)}`));
    expect(JSON.parse(lines(ndjson)[5] as string)).toMatchObject({ type: 'update', entry: { mark: 77, orig: { src: '10.80.0.1' } } });
  });

  it('eventLines refuses a missing or unknown format, naming it', () => {
    expect(() => ct.eventLines({} as never)).toThrow(/^format: expected 'ndjson' or 'conntrack'/);
    expect(() => ct.eventLines({ format: 'xml' as never })).toThrow(TypeError);
    expect(() => ct.eventLines({ format: 'ndjson', timestamps: 'yes' as never })).toThrow(/^timestamps: expected true or false/);
  });

  /**
   * The watch subscribes some time after it starts (longer under a sanitizer): a new entry
   * (the next source port) is made every second until the watch has printed one.
   */
  async function loadUntilSeen(d: ReturnType<typeof daemon>, src: string, dport: number): Promise<void> {
    let sport = 5;
    let last = 0;
    await waitFor('the watch line', () => {
      if (d.out().includes(src)) return true;
      if (Date.now() - last > 1000) {
        pair.client.load([`-I -p udp -s ${src} -d 10.70.0.2 --sport ${sport++} --dport ${dport} -t 60`]);
        last = Date.now();
      }
      return false;
    }, 20_000);
  }

  it('ctpurge watch prints events and stops on SIGTERM', async () => {
    const d = daemon(['watch', '--netns', pair.client.name, '--proto', 'udp', '--json']);
    await loadUntilSeen(d, '10.70.0.1', 6);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const line = JSON.parse(d.out().trim().split('\n').find((l) => l.includes('10.70.0.1')) as string) as { time: string };
    expect(line).toMatchObject({ type: 'new', entry: { protocol: 'udp', orig: { src: '10.70.0.1', dport: 6 } } });
    // Each line says when the event was read.
    expect(Object.keys(line).slice(0, 3)).toEqual(['type', 'time', 'entry']);
    expect(Math.abs(Date.parse(line.time) - Date.now())).toBeLessThan(30_000);
  });

  it('ctpurge watch without --json prints [NEW] and a conntrack -L line', async () => {
    const d = daemon(['watch', '--netns', pair.client.name, '--proto', 'udp', '--dport', '7']);
    await loadUntilSeen(d, '10.70.0.9', 7);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    // As conntrack -E -o timestamp prints it: [seconds.microseconds], a tab, the event.
    const stamp = /^\[(\d+)\.\d{6}\]\t/.exec(d.out());
    expect(stamp, d.out()).not.toBeNull();
    expect(Math.abs(Number(stamp?.[1]) * 1000 - Date.now())).toBeLessThan(30_000);
    expect((d.out().split('\n')[0] as string).replace(/^\[\d+\.\d{6}\]\t/, '')).toMatch(/^\[NEW\] udp {6}17 (59|60) src=10\.70\.0\.9 dst=10\.70\.0\.2 sport=(\d+) dport=7 \[UNREPLIED\] src=10\.70\.0\.2 dst=10\.70\.0\.9 sport=7 dport=\2 mark=0$/);
  });
});
