import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, type Entry, type Query } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { columnStarts, exportLines, inCidr, key, seedAge } from '../helpers/expect.js';
import { mixedTable, seedLine, type SeedEntry } from '../helpers/seed.js';
import { TABLE_HEADER } from '../../src/cli/format.js';
import { conntrackLine, jsonLine, tableRow } from '../helpers/formats.js';

const N = 4000;

/** What each query must select, computed from the model without ctpurge's code. */
const cases: [string, Query, (e: SeedEntry) => boolean][] = [
  ['family ipv6', { family: 'ipv6' }, (e) => e.family === 'ipv6'],
  ['protocol udp', { protocol: 'udp' }, (e) => e.proto === 'udp'],
  ['protocol by number', { protocol: 6 }, (e) => e.proto === 'tcp'],
  ['state ESTABLISHED', { state: 'ESTABLISHED' }, (e) => e.state === 'ESTABLISHED'],
  ['state list', { state: ['SYN_SENT', 'ESTABLISHED'] }, (e) => e.state === 'ESTABLISHED'],
  ['unreplied', { unreplied: true }, (e) => !e.replied],
  ['replied', { unreplied: false }, (e) => e.replied],
  ['assured', { assured: true }, (e) => e.assured],
  ['src CIDR v4', { src: '10.3.0.0/16' }, (e) => inCidr(e.src, '10.3.0.0/16')],
  ['src any-of, both families', { src: ['10.1.0.0/16', 'fd00:4::/32'] }, (e) => inCidr(e.src, '10.1.0.0/16') || inCidr(e.src, 'fd00:4::/32')],
  ['dst host', { dst: '10.200.0.4' }, (e) => e.dst === '10.200.0.4'],
  ['replySrc is the original dst', { replySrc: 'fd00:200::/32' }, (e) => inCidr(e.dst, 'fd00:200::/32')],
  ['replyDst is the original src', { replyDst: '10.1.0.0/16' }, (e) => inCidr(e.src, '10.1.0.0/16')],
  ['dport', { dport: 80 }, (e) => e.dport === 80],
  ['dport range', { dport: [50, 130] }, (e) => e.dport >= 50 && e.dport <= 130],
  ['sport range', { sport: [1024, 2047] }, (e) => e.sport >= 1024 && e.sport <= 2047],
  ['mark', { mark: 7 }, (e) => e.mark === 7],
  ['mark under mask', { mark: { value: 3, mask: 3 } }, (e) => (e.mark & 3) === 3],
  ['zone 3', { zone: 3 }, (e) => e.zone === 3],
  ['zone 0', { zone: 0 }, (e) => e.zone === 0],
  ['older than 1h', { olderThan: 3600 }, (e) => seedAge(e) >= 3600],
  // Timestamps are off here: the idle estimate is the model's age.
  ['idle for 1h', { idleFor: 3600 }, (e) => seedAge(e) >= 3600],
  ['idle for 1h and ESTABLISHED', { idleFor: '1h', state: 'ESTABLISHED' }, (e) => seedAge(e) >= 3600 && e.state === 'ESTABLISHED'],
  ['the seed query', { unreplied: true, olderThan: '1h', protocol: 'tcp', dport: 80 }, (e) => !e.replied && seedAge(e) >= 3600 && e.proto === 'tcp' && e.dport === 80],
  ['everything at once', { family: 'ipv4', protocol: 'tcp', state: 'ESTABLISHED', unreplied: false, assured: true, src: '10.0.0.0/8', dport: 80, mark: 7, zone: 0, olderThan: 60 }, (e) => e.family === 'ipv4' && e.proto === 'tcp' && e.replied && e.dport === 80 && e.mark === 7 && e.zone === 0 && seedAge(e) >= 60],
];

async function collect(ct: Conntrack, q: Query): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of ct.list(q, { chunkSize: 500 })) out.push(e);
  return out;
}

describeKernel('every query field against an independent expectation', () => {
  let ns: TestNetns;
  let ct: Conntrack;
  let userspace: Conntrack;
  const model = mixedTable(N);
  beforeAll(async () => {
    ns = TestNetns.create();
    ns.load(model.map(seedLine));
    ct = await Conntrack.open({ netns: ns.name });
    userspace = await Conntrack.open({ netns: ns.name, kernel: { release: 'test', statusFilter: false, zoneFilter: false, tupleDumpFilter: false, tupleFlushFilter: false, kernelFilters: false } });
  });
  afterAll(async () => {
    await ct?.close();
    await userspace?.close();
    ns?.destroy();
  });

  it('the table holds the whole model', async () => {
    expect(await ct.count()).toBe(N);
    expect(ns.conntrackCount()).toBe(N);
  });

  it.each(cases)('%s', async (_name, query, predicate) => {
    const expected = new Set(model.filter(predicate).map((e) => key(e)));
    expect(expected.size).toBeGreaterThan(0);
    const got = await collect(ct, query);
    const gotKeys = new Set(got.map((e) => key({ ...e.orig, zone: e.zone })));
    expect(gotKeys.size).toBe(got.length); // no duplicates
    expect([...gotKeys].sort()).toEqual([...expected].sort());
    expect(await ct.count(query)).toBe(expected.size);
    // The user-space-only path (what a kernel older than 5.15 gets) selects the same.
    expect(await userspace.count(query)).toBe(expected.size);
  });

  it('summary: idle and age distributions and "what would free space" agree with count() and the model', async () => {
    const m = await ct.summary();
    expect(m.byIdle.reduce((a, b) => a + b.count, 0)).toBe(N);
    expect(m.byAge.reduce((a, b) => a + b.count, 0)).toBe(N);
    // The model's idle times: 7,200 s (1h-6h), 2 s and 5 s (<1m), 80 s (1m-10m).
    const inBucket = (lo: number, hi: number) => model.filter((e) => seedAge(e) >= lo && seedAge(e) < hi).length;
    expect(Object.fromEntries(m.byIdle.map((b) => [b.key, b.count]))).toMatchObject({ '<1m': inBucket(0, 60), '1m-10m': inBucket(60, 600), '1h-6h': inBucket(3600, 21600), unknown: 0 });
    // Broken down by state and reply status, the histograms add up to the model's groups.
    expect(m.distributions.reduce((a, d) => a + d.total, 0)).toBe(N);
    const group = (g: string, reply: string) => m.distributions.find((d) => d.group === g && d.reply === reply);
    const tcpStale = model.filter((e) => e.proto === 'tcp' && !e.replied);
    expect(group('tcp ESTABLISHED', 'unreplied')?.total).toBe(tcpStale.length);
    expect(group('tcp ESTABLISHED', 'unreplied')?.idle[3]).toBe(tcpStale.filter((e) => seedAge(e) >= 3600).length); // 1h-6h
    expect(group('tcp ESTABLISHED', 'assured')?.total).toBe(model.filter((e) => e.proto === 'tcp' && e.replied).length);
    expect(group('udp', 'unreplied')?.total).toBe(model.filter((e) => e.proto === 'udp' && !e.replied).length);
    expect(group('udp', 'assured')?.total).toBe(model.filter((e) => e.proto === 'udp' && e.replied).length);
    expect(m.candidates).toHaveLength(3);
    for (const c of m.candidates) expect(c.matched, c.args).toBe(await ct.count(c.query));
    expect(m.candidates[0]?.matched).toBeGreaterThan(0);
  });

  it('ages come from the timeout when timestamps are off, and match the model', async () => {
    const got = await collect(ct, { protocol: 'tcp' });
    const byKey = new Map(model.map((e) => [key(e), e]));
    for (const e of got) {
      const m = byKey.get(key({ ...e.orig, zone: e.zone }))!;
      expect(e.ageSource).toBe('timeout');
      expect(e.start).toBeNull();
      expect(e.age).toBeGreaterThanOrEqual(seedAge(m));
      expect(e.age).toBeLessThan(seedAge(m) + 60);
    }
  });

  it('counts unreplied the same way conntrack -L -u UNREPLIED does', async () => {
    const lines = ns.conntrackList(['-u', 'UNREPLIED']);
    expect(await ct.count({ unreplied: true })).toBe(lines.length);
  });
});

describeKernel('NDJSON formatted in C++ equals the TypeScript formatter', () => {
  let ns: TestNetns;
  let ct: Conntrack;
  beforeAll(async () => {
    ns = TestNetns.create();
    ns.load(mixedTable(600).map(seedLine));
    ns.sysctl('net.netfilter.nf_conntrack_timestamp', 1);
    ns.sysctl('net.netfilter.nf_conntrack_acct', 1);
    ns.load([
      '-I -p icmp -s 10.50.0.1 -d 10.50.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 9 -t 30',
      '-I -p icmpv6 -s fd50::1 -d fd50::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 9 -t 30',
      '-I -p 99 -s 10.50.0.3 -d 10.50.0.4 -t 100',
      '-I -p tcp -s ::ffff:10.0.0.1 -d 2001:db8:0:0:1:0:0:1 --sport 1 --dport 2 --state SYN_SENT -t 100',
    ]);
    ct = await Conntrack.open({ netns: ns.name });
  });
  afterAll(async () => {
    await ct?.close();
    ns?.destroy();
  });

  it('line for line, apart from the seconds that tick between two dumps', async () => {
    const strip = (l: string) => l.replace(/"timeout":\d+,/, '').replace(/"age":[\d.]+,/, '').replace(/"idle":[\d.]+,/, '');
    const native: string[] = [];
    for await (const buf of ct.listNdjson()) native.push(...buf.toString('utf8').trimEnd().split('\n'));
    const ts: string[] = [];
    for await (const e of ct.list()) ts.push(jsonLine(e));
    expect(native).toHaveLength(604);
    expect(native.map(strip).sort()).toEqual(ts.map(strip).sort());
    expect(native.some((l) => l.includes('"start":"20'))).toBe(true);
    expect(native.some((l) => l.includes('"icmp":{"type":8,"code":0,"id":9}'))).toBe(true);
    expect(native.some((l) => l.includes('"protocol":99'))).toBe(true);
    expect(native.every((l) => /,"idle":(null|[\d.]+),"idleSource":"(timeout|unknown)"\}$/.test(l))).toBe(true);
  });

  it('conntrack -L lines formatted in C++ (exportTo) equal the TypeScript formatter', async () => {
    const { n, lines: native } = await exportLines(ct, {}, { format: 'conntrack' });
    const ts: string[] = [];
    for await (const e of ct.list()) ts.push(conntrackLine(e));
    expect(native).toHaveLength(n);
    // The timeout left and the time since creation tick between the two dumps.
    const strip = (l: string) => l.replace(/^(\S+\s+\d+ )\d+/, '$1T').replace(/ delta-time=\d+$/, ' delta-time=T');
    expect(native.map(strip).sort()).toEqual(ts.map(strip).sort());
    expect(native.some((l) => /^icmp +1 \d+ src=\S+ dst=\S+ type=8 code=0 id=9 /.test(l))).toBe(true);
    expect(native.some((l) => l.startsWith('unknown  99 '))).toBe(true);
    expect(native.some((l) => / delta-time=\d+$/.test(l))).toBe(true);
  });

  it('the list table written in C++ (exportTo) has the TypeScript cells, aligned', async () => {
    const { n, lines } = await exportLines(ct, {}, { format: 'table' });
    expect(lines).toHaveLength(n + 1);
    const cells = lines.map((l) => l.split(/ {2,}/));
    expect(cells[0]).toEqual(TABLE_HEADER.filter(Boolean));
    // TIMEOUT, IDLE and AGE tick between two dumps: compared apart from them.
    const stable = (row: string[]) => [...row.slice(0, 5), ...row.slice(8)].join('|');
    const ts: string[] = [];
    for await (const e of ct.list()) ts.push(stable(tableRow(e)));
    expect(cells.slice(1).map(stable).sort()).toEqual(ts.sort());
    expect(cells.some((r) => r[1] === '-' && r[0] === '99')).toBe(true); // no state, unknown protocol
    expect(cells.some((r) => r[2]?.startsWith('[fd') && r[3]?.startsWith('-> ['))).toBe(true);
    // Fewer rows than the held head (4,096): aligned as a whole, on the header's columns.
    const header = columnStarts(lines[0] as string, true);
    expect(header).toHaveLength(TABLE_HEADER.length - 1);
    for (const l of lines.slice(1)) expect(columnStarts(l)).toEqual(header);
  });
});
