/** doctor's findings from a table's summary and the sysctls, without a kernel. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../src/cli/doctorCommand.js';

describe('doctor findings', () => {
  const timeouts = { tcp: { established: 432000, unacknowledged: 300 }, udp: { unreplied: 30, stream: 120 }, icmp: 30, icmpv6: 30, generic: 600, policies: 0 };
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
