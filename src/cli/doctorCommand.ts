/** ctpurge doctor: reads the table's pressure and prints findings with the exact commands that would help. Changes nothing. */
import type { Conntrack, ConntrackSettings, ConntrackStats } from '../conntrack.js';
import type { ParsedArgs } from './args.js';
import { formatCount, percent } from './format.js';

export interface Finding {
  severity: 'critical' | 'warning' | 'info';
  title: string;
  detail: string;
  /** Commands an operator can run; ctpurge never runs them. */
  commands: string[];
}

export interface DoctorReport {
  netns: string | null;
  count: number;
  max: number;
  usage: number;
  buckets: number | null;
  unreplied: number;
  staleUnreplied: number;
  drops: { drop: number; earlyDrop: number; insertFailed: number };
  timestamps: boolean | null;
  tcpLoose: boolean | null;
  timeouts: ConntrackSettings['timeouts'];
  findings: Finding[];
}

const STALE_AFTER = 3600;

export function diagnose(
  input: { netns: string | null; netnsArg?: string; stats: ConntrackStats; settings: ConntrackSettings; unreplied: number; staleUnreplied: number },
): DoctorReport {
  const { stats: s, settings: st } = input;
  // Per-namespace sysctls must be set inside the namespace; nf_conntrack_max and hashsize are global.
  const inNs = (cmd: string) => (input.netnsArg ? `ip netns exec ${input.netnsArg} ${cmd}` : cmd);
  const ctp = (rest: string) => `ctpurge ${rest}${input.netnsArg ? ` --netns ${input.netnsArg}` : ''}`;
  const findings: Finding[] = [];
  const established = st.timeouts.tcp.established ?? 0;

  if (s.usage >= 0.8) {
    const newMax = Math.max(s.max * 2, 65536);
    findings.push({
      severity: s.usage >= 0.95 ? 'critical' : 'warning',
      title: `table ${percent(s.count, s.max)} full`,
      detail: `${formatCount(s.count)} of ${formatCount(s.max)} entries. At 100% the kernel logs "nf_conntrack: table full, dropping packet" and drops new connections.`,
      commands: [`sysctl -w net.netfilter.nf_conntrack_max=${newMax}   # global`, `echo ${Math.floor(newMax / 4)} > /sys/module/nf_conntrack/parameters/hashsize   # global: hashsize = max / 4`],
    });
  }
  const drops = s.totals.drop + s.totals.earlyDrop + s.totals.insertFailed;
  if (drops > 0) {
    findings.push({
      severity: s.totals.drop > 0 ? 'critical' : 'warning',
      title: 'the table has overflowed',
      detail: `per-CPU counters: drop ${formatCount(s.totals.drop)}, early_drop ${formatCount(s.totals.earlyDrop)}, insert_failed ${formatCount(s.totals.insertFailed)} since boot (or since the namespace was made).`,
      commands: [ctp('--unreplied --older 1h'), `sysctl -w net.netfilter.nf_conntrack_max=${s.max * 2}   # global`],
    });
  }
  if (s.count >= 100 && input.unreplied / s.count >= 0.25) {
    const cmds = [ctp('--unreplied --older 1h')];
    if (established > 86400) cmds.push(inNs(`sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=86400`));
    if (st.tcpLoose) cmds.push(inNs('sysctl -w net.netfilter.nf_conntrack_tcp_loose=0   # new TCP flows must start with a SYN'));
    findings.push({
      severity: input.staleUnreplied / s.count >= 0.25 ? 'warning' : 'info',
      title: `${percent(input.unreplied, s.count)} of entries never saw a reply`,
      detail:
        `${formatCount(input.unreplied)} [UNREPLIED] entries, ${formatCount(input.staleUnreplied)} of them idle for over an hour. ` +
        `ESTABLISHED entries last ${formatCount(established)} s${st.tcpLoose ? ', and with tcp_loose=1 a mid-stream ACK creates one' : ''}.`,
      commands: cmds,
    });
  }
  if (s.buckets !== null && s.max / s.buckets > 8) {
    findings.push({
      severity: 'info',
      title: 'hash table small for nf_conntrack_max',
      detail: `${formatCount(s.buckets)} buckets for up to ${formatCount(s.max)} entries (${(s.max / s.buckets).toFixed(0)} per bucket); long chains make every lookup slower.`,
      commands: [`echo ${Math.floor(s.max / 4)} > /sys/module/nf_conntrack/parameters/hashsize   # global: hashsize = max / 4`],
    });
  }
  if (st.timestamps === false) {
    findings.push({
      severity: 'info',
      title: 'conntrack timestamps are off: ages are estimates',
      detail: 'Without timestamps the age is estimated from the timeout left, conservatively; entries of unknown age are never purged by --older. Turning them on applies to new entries.',
      commands: [inNs('sysctl -w net.netfilter.nf_conntrack_timestamp=1')],
    });
  }
  return {
    netns: input.netns,
    count: s.count,
    max: s.max,
    usage: s.usage,
    buckets: s.buckets,
    unreplied: input.unreplied,
    staleUnreplied: input.staleUnreplied,
    drops: { drop: s.totals.drop, earlyDrop: s.totals.earlyDrop, insertFailed: s.totals.insertFailed },
    timestamps: st.timestamps,
    tcpLoose: st.tcpLoose,
    timeouts: st.timeouts,
    findings,
  };
}

export async function doctorCommand(ct: Conntrack, args: ParsedArgs): Promise<DoctorReport> {
  const [stats, settings, unreplied, staleUnreplied] = await Promise.all([
    ct.stats(),
    ct.settings(),
    ct.count({ unreplied: true }),
    ct.count({ unreplied: true, olderThan: STALE_AFTER }),
  ]);
  return diagnose({ netns: ct.netns, netnsArg: args.netns, stats, settings, unreplied, staleUnreplied });
}

export function renderDoctor(r: DoctorReport): string {
  const out: string[] = [];
  out.push(`ctpurge doctor${r.netns ? ` (${r.netns})` : ''}`);
  out.push(
    `table: ${formatCount(r.count)} of ${formatCount(r.max)} entries (${percent(r.count, r.max)} full), ${percent(r.unreplied, r.count)} unreplied, ` +
      `timestamps ${r.timestamps ? 'on' : 'off'}, tcp_loose ${r.tcpLoose ? 'on' : 'off'}`,
  );
  const t = r.timeouts;
  out.push(
    `timeouts: tcp established ${t.tcp.established ?? '?'} s, unacknowledged ${t.tcp.unacknowledged ?? '?'} s, syn_sent ${t.tcp.syn_sent ?? '?'} s; udp ${t.udp.unreplied} s / stream ${t.udp.stream} s; generic ${t.generic} s`,
  );
  out.push(`per-CPU: drop ${formatCount(r.drops.drop)}, early_drop ${formatCount(r.drops.earlyDrop)}, insert_failed ${formatCount(r.drops.insertFailed)}`);
  out.push('');
  if (r.findings.length === 0) out.push('no findings: the table looks healthy.');
  for (const f of r.findings) {
    out.push(`[${f.severity}] ${f.title}`);
    out.push(`  ${f.detail}`);
    for (const c of f.commands) out.push(`    $ ${c}`);
  }
  out.push('');
  out.push('doctor changes nothing; the commands above are for you to review and run.');
  return `${out.join('\n')}\n`;
}
