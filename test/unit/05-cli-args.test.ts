import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { TableWriter } from '../../src/cli/format.js';
import { conntrackLine, jsonLine } from '../helpers/formats.js';
import { purgeSummary } from '../../src/cli/purgeCommand.js';
import { diagnose } from '../../src/cli/doctorCommand.js';
import type { Entry } from '../../src/entry.js';

describe('CLI argument parsing', () => {
  it('turns selectors into a query', () => {
    const a = parseArgs(['--unreplied', '--older', '1h', '--proto', 'tcp', '--dport', '80', '--src', '10.0.0.0/8', '--src=10.2.0.0/16,10.3.0.0/16', '--mark', '0x7/0xff', '--zone', '3', '--netns', 'blue', '--dry-run']);
    expect(a.command).toBe('purge');
    expect(a.query).toEqual({ unreplied: true, olderThan: 3600, protocol: 6, dport: [80, 80], src: ['10.0.0.0/8', '10.2.0.0/16', '10.3.0.0/16'], mark: { value: 7, mask: 255 }, zone: 3 });
    expect(a.netns).toBe('blue');
    expect(a.dryRun).toBe(true);
    expect(Object.keys(a.query)).toHaveLength(7);
  });

  it('knows the subcommands', () => {
    expect(parseArgs(['list', '-o', 'conntrack']).output).toBe('conntrack');
    expect(parseArgs(['stats', '--top', '3']).top).toBe(3);
    expect(parseArgs(['doctor', '--json']).json).toBe(true);
    expect(parseArgs(['help']).help).toBe(true);
  });

  it.each([
    [['--bogus'], /unknown option --bogus/],
    [['frobnicate'], /unknown command/],
    [['--older'], /--older needs a value/],
    [['--older', '--unreplied'], /--older needs a value/],
    [['--older', 'soon'], /--older/],
    [['--older', '-5'], /--older/],
    [['--dport', '70000'], /--dport/],
    [['--src', '300.1.1.1'], /--src/],
    [['--limit', '-1'], /--limit/],
    [['--limit', '1e9'], /--limit/],
    [['--mark', '1/2/3'], /--mark/],
    [['--zone', '65536'], /--zone/],
    [['--family', 'inet'], /--family/],
    [['--proto', 'tcpx'], /--proto/],
    [['--unreplied', 'extra'], /unexpected argument 'extra'/],
    [['--unreplied=yes'], /--unreplied takes no value/],
    [['--older', '1h', '--older', '2h'], /--older given twice/],
    [['list', '--dry-run'], /--dry-run does not apply/],
    [['--netns', '../etc'], /--netns/],
    [['--netns', 'a\0b'], /NUL/],
    [['-q', '-v', '--unreplied'], /contradict/],
    [['--src', 'x'.repeat(5000)], /longer than/],
    [['--older', '1h1h'], /^--older: "1h1h" is not a duration: give each unit once, largest first/],
    [['--older', '30m1h'], /largest first/],
    [['--unreplied', '--pid-file', '/run/x.pid'], /--pid-file needs --every/],
    [['--unreplied', '--every', '1m', '--pid-file', ''], /--pid-file: expected a file path/],
    [['--orig-zone', '70000'], /--orig-zone/],
    [['--reply-zone', 'x'], /--reply-zone/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(message);
  });
});

const entry: Entry = {
  id: 1,
  family: 'ipv4',
  protocol: 'tcp',
  protocolNumber: 6,
  state: 'ESTABLISHED',
  orig: { src: '10.1.0.1', dst: '192.0.2.80', sport: 40000, dport: 80 },
  reply: { src: '192.0.2.80', dst: '10.1.0.1', sport: 80, dport: 40000 },
  status: { raw: 8, expected: false, seenReply: false, assured: false, confirmed: true, srcNat: false, dstNat: false, seqAdjust: false, srcNatDone: false, dstNatDone: false, dying: false, fixedTimeout: false, template: false, natClash: false, helper: false, offload: false, hwOffload: false },
  unreplied: true,
  timeout: 424799,
  mark: 0,
  zone: 3,
  origZone: 0,
  replyZone: 0,
  labels: [],
  counters: null,
  start: null,
  age: 7201,
  ageSource: 'timeout',
  idle: 7201,
  idleSource: 'timeout',
};

describe('selectors of one direction', () => {
  it('--orig-zone and --reply-zone become origZone and replyZone', () => {
    expect(parseArgs(['list', '--orig-zone', '5', '--reply-zone', '0']).query).toEqual({ origZone: 5, replyZone: 0 });
    expect(parseArgs(['--unreplied', '--every', '1m', '--pid-file', '/run/ctpurge/a.pid']).pidFile).toBe('/run/ctpurge/a.pid');
  });
});

describe('output formats', () => {
  it('prints conntrack -L shaped lines', () => {
    expect(conntrackLine(entry)).toBe(
      'tcp      6 424799 ESTABLISHED src=10.1.0.1 dst=192.0.2.80 sport=40000 dport=80 [UNREPLIED] src=192.0.2.80 dst=10.1.0.1 sport=80 dport=40000 mark=0 zone=3',
    );
  });

  it('prints NDJSON with the status as a list', () => {
    const o = JSON.parse(jsonLine(entry));
    expect(o.status).toEqual(['confirmed']);
    expect(o.orig.dport).toBe(80);
    expect(o).toMatchObject({ age: 7201, ageSource: 'timeout', idle: 7201, idleSource: 'timeout' });
    expect(JSON.parse(jsonLine({ ...entry, idle: null, idleSource: 'unknown' }))).toMatchObject({ idle: null, idleSource: 'unknown' });
  });

  it('adds delta-time like conntrack -L when the entry has a start timestamp', () => {
    const start = new Date(Date.UTC(2026, 10, 29, 12, 0, 0, 900));
    const now = Date.UTC(2026, 10, 29, 12, 1, 40, 100);
    // conntrack subtracts whole seconds: 12:01:40 - 12:00:00 = 100.
    expect(conntrackLine({ ...entry, start, age: 99.2, ageSource: 'timestamp' }, now)).toMatch(/ mark=0 zone=3 delta-time=100$/);
    expect(conntrackLine(entry, now)).not.toMatch(/delta-time/);
  });

  it('aligns table columns', () => {
    const t = new TableWriter(['A', 'B']);
    expect(t.format([['long-value', 'x']])).toBe('A           B\nlong-value  x\n');
  });

  it('summarises a purge in one line', () => {
    const r = { run: '0123456789ab', matched: 262144, deleted: 262144, vanished: 0, scanned: 262144, tableSize: 1048576, durationMs: 1900, method: 'dump' as const, dryRun: false, cancelled: false, limitReached: false, lostReports: 0, logged: 0, grace: null, graced: 0, fixedTimeout: 0, offloaded: 0, expiring: 0, settle: null };
    expect(purgeSummary(r)).toBe('purged 262,144 of 1,048,576 entries (262,144 matched, 0 vanished) in 1.90 s');
    expect(purgeSummary({ ...r, dryRun: true, deleted: 0 })).toMatch(/^would purge 262,144 of 1,048,576 entries \(dry run\)/);
    // Entries that arrived during the run: never "140,769 of 140,000".
    expect(purgeSummary({ ...r, tableSize: 140000, matched: 140769, deleted: 140769 })).toMatch(/^purged 140,769 entries \(the table held 140,000 when the run started\) \(140,769 matched, 0 vanished\)/);
  });
});

describe('doctor findings', () => {
  const timeouts = { tcp: { established: 432000, unacknowledged: 300 }, udp: { unreplied: 30, stream: 120 }, icmp: 30, icmpv6: 30, generic: 600 };
  const totals = { found: 0, invalid: 0, insert: 0, insertFailed: 0, drop: 0, earlyDrop: 0, error: 0, searchRestart: 0, clashResolve: 0, chainTooLong: 0 };

  it('a full table with stale unreplied entries gets the exact remedies', () => {
    const r = diagnose({
      netns: '/var/run/netns/blue',
      netnsArg: 'blue',
      stats: { count: 917504, max: 917504, usage: 1, buckets: 65536, perCpu: [], totals: { ...totals, drop: 12 } },
      settings: { timeouts, timestamps: false, accounting: false, tcpLoose: true, buckets: 65536 },
      unreplied: 825753,
      staleUnreplied: 800000,
    });
    const all = r.findings.flatMap((f) => f.commands).join('\n');
    expect(r.findings.map((f) => f.severity)).toContain('critical');
    expect(all).toContain('sysctl -w net.netfilter.nf_conntrack_max=1835008');
    expect(all).toContain('echo 458752 > /sys/module/nf_conntrack/parameters/hashsize');
    expect(all).toContain('ip netns exec blue sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=86400');
    expect(all).toContain('ip netns exec blue sysctl -w net.netfilter.nf_conntrack_tcp_loose=0');
    expect(all).toContain('ip netns exec blue sysctl -w net.netfilter.nf_conntrack_timestamp=1');
    expect(all).toContain('ctpurge --unreplied --older 1h --netns blue');
  });

  it('names ASSURED ESTABLISHED flows idle for hours as the cause, with --idle and the timeout that would free them', () => {
    const r = diagnose({
      netns: '/var/run/netns/blue',
      netnsArg: 'blue',
      stats: { count: 900000, max: 1000000, usage: 0.9, buckets: 262144, perCpu: [], totals },
      settings: { timeouts, timestamps: true, accounting: false, tcpLoose: false, buckets: 262144 },
      unreplied: 9000,
      staleUnreplied: 0,
      idleEstablished: 549000,
    });
    const f = r.findings.find((x) => x.title.includes('idle over 6 h'));
    expect(f?.title).toBe('61.0% of entries are ASSURED ESTABLISHED idle over 6 h: peers that vanished');
    expect(f?.severity).toBe('critical');
    expect(f?.commands).toEqual([
      'ctpurge --state ESTABLISHED --idle 6h --dry-run --netns blue',
      'ctpurge --state ESTABLISHED --idle 6h --netns blue',
      'ip netns exec blue sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=21600   # frees about 549,000 now, and every flow silent for 6 h later',
    ]);
    expect(r.findings.some((x) => /--older/.test(x.commands.join(' ')))).toBe(false);
  });

  it('says when UNREPLIED entries are capped by the kernel and are not the problem', () => {
    const r = diagnose({
      netns: null,
      stats: { count: 10000, max: 262144, usage: 10000 / 262144, buckets: 65536, perCpu: [], totals },
      settings: { timeouts, timestamps: true, accounting: false, tcpLoose: false, buckets: 65536 },
      unreplied: 6000,
      staleUnreplied: 0,
    });
    expect(r.findings.map((x) => x.title)).toEqual(['UNREPLIED entries are capped at 300 s here: they are not your problem']);
    expect(r.findings[0]?.commands).toEqual(['ctpurge stats --unreplied --top 5']);
  });

  it('a healthy table has no warnings', () => {
    const r = diagnose({
      netns: null,
      stats: { count: 10, max: 262144, usage: 10 / 262144, buckets: 65536, perCpu: [], totals },
      settings: { timeouts, timestamps: true, accounting: false, tcpLoose: false, buckets: 65536 },
      unreplied: 1,
      staleUnreplied: 0,
    });
    expect(r.findings).toEqual([]);
  });
});
