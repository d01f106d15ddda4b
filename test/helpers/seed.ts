/**
 * A model of a mixed table, written as `conntrack -I` lines and kept as plain objects, so
 * tests can compute what a query should select independently of ctpurge.
 */
export interface SeedEntry {
  family: 'ipv4' | 'ipv6';
  proto: 'tcp' | 'udp';
  src: string;
  dst: string;
  sport: number;
  dport: number;
  state?: 'ESTABLISHED' | 'SYN_SENT' | 'TIME_WAIT';
  timeout: number;
  replied: boolean;
  assured: boolean;
  zone: number;
  mark: number;
  /** What a correct age estimate must say (seconds since the last refresh). */
  expectedStale: boolean;
}

export const ESTABLISHED_TIMEOUT = 432000;

/**
 * The i-th stale UNREPLIED TCP entry (ESTABLISHED, 7,200 s old by its timeout, to
 * 192.0.2.80:80) from 10.<net + i / 65,536>.x.y: `--unreplied --older 1h` takes it.
 */
export function staleTcpLine(i: number, net = 1): string {
  return `-I -p tcp -s 10.${net + (i >> 16)}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.80 --sport ${1024 + (i % 60000)} --dport 80 --state ESTABLISHED -t 424800`;
}

/** The same shape replied and assured (to port 22): no unreplied purge takes it. */
export function repliedTcpLine(i: number, net = 2): string {
  return `-I -p tcp -s 10.${net + (i >> 16)}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.22 --sport ${1024 + (i % 60000)} --dport 22 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`;
}

export function seedLine(e: SeedEntry): string {
  const parts = ['-I', '-p', e.proto, '-s', e.src, '-d', e.dst, '--sport', String(e.sport), '--dport', String(e.dport)];
  if (e.state) parts.push('--state', e.state);
  parts.push('-t', String(e.timeout));
  const status = [e.replied ? 'SEEN_REPLY' : '', e.assured ? 'ASSURED' : ''].filter(Boolean);
  if (status.length) parts.push('-u', status.join(','));
  if (e.zone) parts.push('-w', String(e.zone));
  if (e.mark) parts.push('-m', String(e.mark));
  return parts.join(' ');
}

function addr(family: 'ipv4' | 'ipv6', net: number, i: number): string {
  if (family === 'ipv4') return `10.${net}.${(i >> 8) & 255}.${i & 255}`;
  // RFC 5952 text, so model keys compare equal to what the kernel reports.
  const hi = (i >> 16) & 0xffff;
  const lo = i & 0xffff;
  return hi ? `fd00:${net}::${hi.toString(16)}:${lo.toString(16)}` : `fd00:${net}::${lo.toString(16)}`;
}

/**
 * n entries cycling through the seed scenario: stale UNREPLIED ESTABLISHED (2 h idle by
 * their timeout), young UNREPLIED, replied/assured ESTABLISHED, UDP, over both families,
 * zones 0 and 3, marks 0 and 7.
 */
export function mixedTable(n: number): SeedEntry[] {
  const out: SeedEntry[] = [];
  for (let i = 0; i < n; i++) {
    const family = i % 2 === 0 ? 'ipv4' : 'ipv6';
    const kind = i % 8; // 0-1 stale unreplied, 2 young unreplied, 3-5 replied tcp, 6 udp unreplied, 7 udp replied
    const zone = i % 5 === 0 ? 3 : 0;
    const mark = i % 3 === 0 ? 7 : 0;
    const base = { family, src: addr(family, 1 + (i % 4), i), dst: addr(family, 200, i % 16), sport: 1024 + (i % 60000), zone, mark } as const;
    if (kind <= 1) out.push({ ...base, proto: 'tcp', dport: 80, state: 'ESTABLISHED', timeout: ESTABLISHED_TIMEOUT - 7200, replied: false, assured: false, expectedStale: true });
    else if (kind === 2) out.push({ ...base, proto: 'tcp', dport: 443, state: 'ESTABLISHED', timeout: 298, replied: false, assured: false, expectedStale: false });
    else if (kind <= 5) out.push({ ...base, proto: 'tcp', dport: kind === 5 ? 22 : 80, state: 'ESTABLISHED', timeout: ESTABLISHED_TIMEOUT - 7200, replied: true, assured: true, expectedStale: true });
    else if (kind === 6) out.push({ ...base, proto: 'udp', dport: 53, timeout: 25, replied: false, assured: false, expectedStale: false });
    else out.push({ ...base, proto: 'udp', dport: 123, timeout: 100, replied: true, assured: true, expectedStale: false });
  }
  return out;
}

/** The original sources of audit-log (or list --json) lines: which seeded entries they name. */
export function logSources(lines: string[]): Set<string> {
  return new Set(lines.map((l) => (JSON.parse(l) as { orig: { src: string } }).orig.src));
}
