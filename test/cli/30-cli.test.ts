import { readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ctpurge } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { seedAge } from '../helpers/expect.js';
import { mixedTable, seedLine } from '../helpers/seed.js';
import { hpingAcks, trafficPair } from '../helpers/traffic.js';

const N = 2000;
const model = mixedTable(N);
const stale = model.filter((e) => !e.replied && seedAge(e) >= 3600);

describeKernel('the ctpurge binary', () => {
  let ns: TestNetns;
  beforeEach(() => {
    ns = TestNetns.create();
    ns.load(model.map(seedLine));
  });
  afterEach(() => ns?.destroy());

  it('purges exactly the stale entries and prints one summary line', () => {
    const r = ctpurge(['--unreplied', '--older', '3600', '--netns', ns.name]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^purged ${stale.length.toLocaleString('en-US')} of ${N.toLocaleString('en-US')} entries \\(${stale.length.toLocaleString('en-US')} matched, 0 vanished\\) in [\\d.]+ s\\n$`));
    expect(ns.conntrackCount()).toBe(N - stale.length);
    expect(ns.conntrackList().filter((l) => l.includes('[UNREPLIED]') && /ESTABLISHED/.test(l) && Number(l.split(/\s+/)[2]) > 400000)).toHaveLength(0);
  });

  it('--dry-run --json reports and deletes nothing; -q prints nothing', () => {
    const r = ctpurge(['--unreplied', '--older', '1h', '--netns', ns.name, '--dry-run', '--json']);
    expect(r.status).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ dryRun: true, matched: stale.length, deleted: 0, tableSize: N, netns: ns.path });
    expect(ns.conntrackCount()).toBe(N);
    const q = ctpurge(['--unreplied', '--older', '1h', '--netns', ns.name, '-q']);
    expect(q).toMatchObject({ status: 0, stdout: '', stderr: '' });
    expect(ns.conntrackCount()).toBe(N - stale.length);
  });

  it('--log appends NDJSON of every deleted entry to a file created 0600', () => {
    const log = path.join(os.tmpdir(), `ctpurge-log-${process.pid}-${Date.now()}.ndjson`);
    try {
      // The lines the purge will take, as list --json prints them (before, so they still exist).
      const listed = ctpurge(['list', '--json', '--unreplied', '--older', '1h', '--proto', 'tcp', '--dport', '80', '--netns', ns.name]);
      const listKeys = Object.keys(JSON.parse(listed.stdout.split('\n')[0] as string) as object);
      const before = Date.now();
      const r = ctpurge(['--unreplied', '--older', '1h', '--proto', 'tcp', '--dport', '80', '--netns', ns.name, '--log', log, '--json']);
      const after = Date.now();
      expect(r.status).toBe(0);
      const summary = JSON.parse(r.stdout) as { run: string };
      expect(summary.run).toMatch(/^[0-9a-f]{12}$/);
      expect(statSync(log).mode & 0o777).toBe(0o600);
      const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(stale.filter((e) => e.dport === 80).length);
      for (const e of lines) {
        expect(e).toMatchObject({ unreplied: true, protocol: 'tcp', orig: { dport: 80 } });
        // A superset of the list --json line: when (the line is written just before its delete),
        // by which run (the summary's id) and in which namespace (its file, and the name given).
        expect(Object.keys(e)).toEqual([...listKeys, 'time', 'run', 'netns', 'netnsName']);
        expect(e).toMatchObject({ run: summary.run, netns: ns.path, netnsName: ns.name });
        const t = Date.parse(e.time as string);
        expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(t).toBeGreaterThanOrEqual(before - 1);
        expect(t).toBeLessThanOrEqual(after + 1);
      }
      // Another run (a dry run logs what it would take) appends lines with an id of its own.
      const dry = JSON.parse(ctpurge(['--state', 'ESTABLISHED', '--dry-run', '--netns', ns.name, '--log', log, '--json']).stdout) as { run: string; matched: number };
      expect(dry.matched).toBeGreaterThan(0);
      const all = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { run: string; state: string });
      expect(all).toHaveLength(lines.length + dry.matched);
      expect(dry.run).not.toBe(summary.run);
      for (const l of all.slice(lines.length)) expect(l).toMatchObject({ run: dry.run, state: 'ESTABLISHED' });
    } finally {
      rmSync(log, { force: true });
    }
  });

  it('list prints a table, conntrack-style lines and NDJSON', () => {
    const table = ctpurge(['list', '--netns', ns.name, '--unreplied', '--older', '1h', '--limit', '5']);
    expect(table.status).toBe(0);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^PROTO\s+STATE\s+ORIGINAL\s+FLAGS\s+TIMEOUT\s+IDLE\s+AGE\s+AGE FROM\s+ZONE\s+MARK$/);
    expect(rows).toHaveLength(6);
    expect(rows[1]).toMatch(/^tcp\s+ESTABLISHED\s+\S+\s+-> \S+:80\s+UNREPLIED\s+4d2[12]h\s+2h(\d+s)?\s+2h(\d+s)?\s+timeout\s+\d+\s+\d+$/);
    const ct = ctpurge(['list', '--netns', ns.name, '-o', 'conntrack', '--zone', '3']);
    const lines = ct.stdout.trim().split('\n');
    expect(lines).toHaveLength(model.filter((e) => e.zone === 3).length);
    for (const l of lines) expect(l).toMatch(/^(tcp|udp)\s+\d+ \d+ .*src=\S+ dst=\S+ sport=\d+ dport=\d+.* mark=\d+ zone=3$/);
    const json = ctpurge(['list', '--netns', ns.name, '--json', '--family', 'ipv6']);
    const entries = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(entries).toHaveLength(N / 2);
    expect(entries.every((e) => e.family === 'ipv6')).toBe(true);
    // --limit in the formats written by the dump threads: exactly N lines, and the count on stderr.
    const limited = ctpurge(['list', '--netns', ns.name, '-o', 'conntrack', '--limit', '7']);
    expect(limited.stdout.trim().split('\n')).toHaveLength(7);
    expect(limited.stderr).toContain('7 entries shown');
    expect(ctpurge(['list', '--netns', ns.name, '--json', '--family', 'ipv6', '--limit', '4']).stdout.trim().split('\n').map((l) => JSON.parse(l).family)).toEqual(['ipv6', 'ipv6', 'ipv6', 'ipv6']);
  });

  it('stats and doctor describe the table without changing it', () => {
    const s = ctpurge(['stats', '--netns', ns.name, '--json', '--top', '3']);
    expect(s.status).toBe(0);
    const report = JSON.parse(s.stdout);
    expect(report.stats.count).toBe(N);
    expect(report.summary.unreplied).toBe(model.filter((e) => !e.replied).length);
    expect(report.summary.topDestinationPorts).toHaveLength(3);
    expect(report.summary.topDestinationPorts[0]).toEqual({ key: 'tcp/80', count: model.filter((e) => e.dport === 80).length });
    const text = ctpurge(['stats', '--netns', ns.name]);
    expect(text.stdout).toMatch(/^conntrack table in \/var\/run\/netns\/\S+: 2,000 of [\d,]+ entries/);
    expect(text.stdout).toMatch(/top 5 destination ports\n  tcp\/80 /);
    expect(text.stdout).toMatch(/█/);
    const d = ctpurge(['doctor', '--netns', ns.name, '--json']);
    const doc = JSON.parse(d.stdout);
    expect(doc.unreplied).toBe(model.filter((e) => !e.replied).length);
    expect(doc.staleUnreplied).toBe(stale.length);
    expect(doc.findings.map((f: { title: string }) => f.title).join('\n')).toMatch(/never saw a reply/);
    const dt = ctpurge(['doctor', '--netns', ns.name]);
    expect(dt.stdout).toContain(`ctpurge --unreplied --older 1h --netns ${ns.name}`);
    expect(dt.stdout).toContain(`ip netns exec ${ns.name} sysctl -w net.netfilter.nf_conntrack_timestamp=1`);
    expect(ns.conntrackCount()).toBe(N);
  });

  it('real pickups next to stale entries: only the stale ones go', () => {
    const pair = trafficPair();
    try {
      pair.client.load(model.slice(0, 400).map(seedLine));
      hpingAcks(pair.client, pair.peerIp, 200);
      const pickups = pair.client.conntrackList(['-d', pair.peerIp]).length;
      expect(pickups).toBeGreaterThanOrEqual(150);
      const r = ctpurge(['--unreplied', '--older', '3600', '--netns', pair.client.name, '--json']);
      expect(JSON.parse(r.stdout).deleted).toBe(model.slice(0, 400).filter((e) => !e.replied && seedAge(e) >= 3600).length);
      expect(pair.client.conntrackList(['-d', pair.peerIp])).toHaveLength(pickups);
    } finally {
      pair.client.destroy();
      pair.peer.destroy();
    }
  });

  it('--help and --version', () => {
    const h = ctpurge(['--help']);
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/Exit codes:\n  0 .*\n  1 .*\n  2 /);
    expect(h.stdout).toContain('ctpurge --unreplied --older 3600');
    expect(ctpurge(['--version']).stdout).toMatch(/^ctpurge \d+\.\d+\.\d+\n$/);
  });
});
