/**
 * Kernel tuple filters (CTA_FILTER): every query returns, and deletes, exactly what the
 * user-space path does, on random mixed tables (IPv4/IPv6, TCP/UDP/ICMP, zones, marks,
 * NAT'd entries whose reply tuple differs). Flushes carrying a tuple filter run only from
 * 6.12: a fake older release must turn them into dump-and-delete with the same outcome.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, kernelFeatures, type Entry, type KernelFeatures, type Query } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { rng } from '../helpers/rng.js';

const N = 3000;
const SEED = Number(process.env.CTPURGE_TEST_SEED ?? Date.now() % 1_000_000);
const USERSPACE: KernelFeatures = { ...kernelFeatures('0.0', {}), release: 'userspace', kernelFilters: false };

interface Row {
  family: 'ipv4' | 'ipv6';
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6';
  src: string;
  dst: string;
  replySrc: string;
  nat: boolean;
  sport: number;
  dport: number;
  zone: number;
}

const pools = {
  ipv4: { client: (i: number) => `10.1.0.${1 + (i % 40)}`, service: (i: number) => `10.96.0.${1 + (i % 5)}`, backend: (i: number) => `10.2.0.${1 + (i % 6)}` },
  ipv6: { client: (i: number) => `fd00:1::${(1 + (i % 40)).toString(16)}`, service: (i: number) => `fd00:96::${1 + (i % 5)}`, backend: (i: number) => `fd00:2::${1 + (i % 6)}` },
};

/** conntrack -I lines and the rows they describe. Every original tuple is unique (sport/id = 1024 + i). */
function randomTable(seed: number): { lines: string[]; rows: Row[] } {
  const r = rng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  const lines: string[] = [];
  const rows: Row[] = [];
  for (let i = 0; i < N; i++) {
    const family = r() < 0.6 ? 'ipv4' : 'ipv6';
    const p = pools[family];
    const src = p.client(Math.floor(r() * 40));
    const dst = p.service(Math.floor(r() * 5));
    const zone = pick([0, 0, 3, 7]);
    const mark = pick([0, 7]);
    const kind = r();
    const common = ['-t', String(100 + Math.floor(r() * 1000))];
    if (zone) common.push('-w', String(zone));
    if (mark) common.push('-m', String(mark));
    if (kind < 0.1) {
      const proto = family === 'ipv4' ? 'icmp' : 'icmpv6';
      const t = family === 'ipv4' ? ['--icmp-type', '8', '--icmp-code', '0', '--icmp-id', String(1024 + i)] : ['--icmpv6-type', '128', '--icmpv6-code', '0', '--icmpv6-id', String(1024 + i)];
      lines.push(['-I', '-p', proto, '-s', src, '-d', dst, ...t, ...common].join(' '));
      rows.push({ family, proto, src, dst, replySrc: dst, nat: false, sport: 0, dport: 0, zone });
      continue;
    }
    const proto = kind < 0.55 ? 'tcp' : 'udp';
    const dport = pick([53, 80, 443, 8080]);
    const sport = 1024 + i;
    const nat = r() < 0.4;
    const backend = p.backend(Math.floor(r() * 6));
    const parts = ['-I', '-p', proto, '-s', src, '-d', dst, '--sport', String(sport), '--dport', String(dport)];
    if (nat) parts.push('--reply-src', backend, '--reply-dst', src, '--reply-port-src', String(dport === 80 ? 8080 : dport), '--reply-port-dst', String(sport));
    if (proto === 'tcp') parts.push('--state', 'ESTABLISHED');
    if (r() < 0.5) parts.push('-u', 'SEEN_REPLY');
    lines.push([...parts, ...common].join(' '));
    rows.push({ family, proto, src, dst, replySrc: nat ? backend : dst, nat, sport, dport, zone });
  }
  return { lines, rows };
}

function entryKey(e: Entry): string {
  const o = e.orig;
  const l4 = o.icmp ? `i${o.icmp.id}` : `${o.sport}>${o.dport}`;
  return `${e.protocolNumber}|${o.src}|${o.dst}|${l4}|${e.zone}`;
}

/** The remaining table as conntrack itself prints it, keyed like entryKey. */
function conntrackKeys(ns: TestNetns): Set<string> {
  const out = new Set<string>();
  for (const line of ns.conntrackList()) {
    const head = /^\S+\s+(\d+)\s/.exec(line);
    const m = /src=(\S+) dst=(\S+) (?:sport=(\d+) dport=(\d+)|type=\d+ code=\d+ id=(\d+))/.exec(line);
    const zone = /zone=(\d+)/.exec(line);
    if (!head || !m) continue;
    const l4 = m[5] !== undefined ? `i${m[5]}` : `${m[3]}>${m[4]}`;
    out.add(`${head[1]}|${m[1]}|${m[2]}|${l4}|${zone ? zone[1] : 0}`);
  }
  return out;
}

async function keysOf(ct: Conntrack, query: Query): Promise<string[]> {
  const out: string[] = [];
  for await (const e of ct.list(query)) out.push(entryKey(e));
  return out.sort();
}

/** Queries drawn from the table, so each selects something: exact (kernel) and not (user space). */
function queriesFor(rows: Row[]): { name: string; query: Query; flush: boolean }[] {
  const v4nat = rows.find((x) => x.family === 'ipv4' && x.nat && x.proto === 'udp') as Row;
  const v4tcp = rows.find((x) => x.family === 'ipv4' && x.proto === 'tcp') as Row;
  const v6nat = rows.find((x) => x.family === 'ipv6' && x.nat) as Row;
  const v6udp = rows.find((x) => x.family === 'ipv6' && x.proto === 'udp') as Row;
  const v4icmp = rows.find((x) => x.family === 'ipv4' && x.proto === 'icmp') as Row;
  return [
    { name: 'tcp, exact dst and dport', query: { protocol: 'tcp', dst: v4tcp.dst, dport: v4tcp.dport }, flush: true },
    { name: 'kube-proxy shape: udp, exact reply source', query: { protocol: 'udp', replySrc: v4nat.replySrc }, flush: true },
    { name: 'reply source as a /32', query: { protocol: 'udp', replySrc: `${v4nat.replySrc}/32` }, flush: true },
    // The kernel compares a zone id in either direction: a zone is matched per entry, never flushed.
    { name: 'reply source, zone', query: { protocol: 'udp', replySrc: v4nat.replySrc, zone: v4nat.zone }, flush: false },
    { name: 'exact src, no protocol', query: { src: v4tcp.src }, flush: true },
    { name: 'reply dst, tcp, unreplied', query: { protocol: 'tcp', replyDst: v4tcp.src, unreplied: true }, flush: true },
    { name: 'the whole original tuple (before 6.12 the same DELETE would be a one-entry delete)', query: { protocol: 'tcp', src: v4tcp.src, dst: v4tcp.dst, sport: v4tcp.sport, dport: v4tcp.dport }, flush: true },
    { name: 'exact src and sport', query: { protocol: 'tcp', src: v4tcp.src, sport: v4tcp.sport }, flush: true },
    { name: 'dst, dport, mark', query: { protocol: 'udp', dst: v4nat.dst, dport: v4nat.dport, mark: 7 }, flush: true },
    { name: 'udp port 53 in both families (flushed once per family)', query: { protocol: 'udp', dport: 53 }, flush: true },
    { name: 'IPv6: protocol and port in the kernel, address in user space', query: { protocol: 'udp', dst: v6udp.dst, dport: v6udp.dport }, flush: false },
    { name: 'IPv6 reply source (the kernel compares IPv6 inverted)', query: { replySrc: v6nat.replySrc }, flush: false },
    { name: 'icmp to one address', query: { protocol: 'icmp', dst: v4icmp.dst }, flush: true },
    { name: 'a port range stays in user space', query: { protocol: 'tcp', dport: [80, 443] }, flush: false },
    { name: 'a port without protocol stays in user space', query: { dport: 8080 }, flush: false },
    { name: 'a wider CIDR stays in user space', query: { protocol: 'udp', replySrc: '10.2.0.0/29' }, flush: false },
    { name: 'several addresses stay in user space', query: { replySrc: [v4nat.replySrc, v6nat.replySrc] }, flush: false },
    { name: 'exact tuple with an age condition is never a flush', query: { protocol: 'udp', replySrc: v4nat.replySrc, olderThan: 0 }, flush: false },
  ];
}

describeKernel(`kernel tuple filters (seed ${SEED})`, () => {
  const { lines, rows } = randomTable(SEED);
  const queries = queriesFor(rows);
  const release = kernelFeatures();
  const flushes = release.tupleFlushFilter;
  let a: TestNetns;
  let b: TestNetns;
  let kernel: Conntrack;
  let userspace: Conntrack;

  beforeAll(async () => {
    a = TestNetns.create('ctp-tuple');
    b = TestNetns.create('ctp-tuple');
    // Timestamps make every age exact, so the age condition below selects what it should.
    for (const ns of [a, b]) {
      ns.sysctl('net.netfilter.nf_conntrack_timestamp', 1);
      ns.load(lines);
    }
    kernel = await Conntrack.open({ netns: a.name });
    userspace = await Conntrack.open({ netns: b.name, kernel: USERSPACE });
  });
  afterAll(async () => {
    await kernel?.close();
    await userspace?.close();
    a?.destroy();
    b?.destroy();
  });

  function reload(): void {
    for (const ns of [a, b]) {
      ns.exec('conntrack', ['-F']);
      ns.load(lines);
      expect(ns.conntrackCount()).toBe(N);
    }
  }

  it('the table is loaded with both families, several protocols, zones and NAT reply tuples', async () => {
    expect(a.conntrackCount()).toBe(N);
    const all = await keysOf(kernel, {});
    expect(all).toHaveLength(N);
    expect(new Set(rows.map((r) => r.proto))).toEqual(new Set(['tcp', 'udp', 'icmp', 'icmpv6']));
    expect(rows.filter((r) => r.nat).length).toBeGreaterThan(N / 5);
    // The NAT'd entries really carry the backend as reply source.
    const natted = await keysOf(kernel, { replySrc: queries[1]!.query.replySrc as string });
    expect(natted.length).toBeGreaterThan(0);
  });

  for (const { name, query } of queries) {
    it(`list: ${name}`, async () => {
      const viaKernel = await keysOf(kernel, query);
      const viaUserspace = await keysOf(userspace, query);
      expect(viaKernel.length).toBeGreaterThan(0);
      expect(viaKernel).toEqual(viaUserspace);
      expect(await kernel.count(query)).toBe(viaKernel.length);
    });
  }

  for (const { name, query, flush } of queries) {
    it(`purge: ${name}`, async () => {
      reload();
      const dry = await kernel.purge({ ...query, dryRun: true });
      const dryUser = await userspace.purge({ ...query, dryRun: true });
      expect(dry.matched).toBe(dryUser.matched);
      expect(a.conntrackCount()).toBe(N);
      const r = await kernel.purge(query);
      const u = await userspace.purge(query);
      expect(u.method).toBe('dump');
      expect(r.method).toBe(flush && flushes ? 'flush' : 'dump');
      expect(r.deleted).toBe(u.deleted);
      expect(r.deleted).toBe(dry.matched);
      expect(r.deleted).toBeGreaterThan(0);
      expect(conntrackKeys(a)).toEqual(conntrackKeys(b));
      expect(a.conntrackCount()).toBe(N - r.deleted);
    });
  }

  for (const fake of ['6.11.0', '5.15.0', '5.7.0']) {
    it(`a ${fake} kernel never gets a tuple-filtered flush, and the dump path deletes the same entries`, async () => {
      reload();
      const old = await Conntrack.open({ netns: a.name, kernel: kernelFeatures(fake, {}) });
      try {
        for (const q of [queries[0]!.query, queries[1]!.query]) {
          const r = await old.purge(q);
          const u = await userspace.purge(q);
          expect(r.method).toBe('dump');
          expect(r.deleted).toBe(u.deleted);
          expect(r.deleted).toBeGreaterThan(0);
        }
        expect(conntrackKeys(a)).toEqual(conntrackKeys(b));
      } finally {
        await old.close();
      }
    });
  }
});
