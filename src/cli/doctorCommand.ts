/** ctpurge doctor: reads the table's pressure and prints findings with the exact commands that would help. Changes nothing. */
import type { Conntrack, ConntrackSettings, ConntrackStats } from '../conntrack.js';
import { DURATION_BUCKETS, type TableSummary } from '../summary.js';
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
  /** ASSURED ESTABLISHED entries idle for over IDLE_AFTER: peers that vanished. */
  idleEstablished: number;
  drops: { drop: number; earlyDrop: number; insertFailed: number };
  timestamps: boolean | null;
  tcpLoose: boolean | null;
  timeouts: ConntrackSettings['timeouts'];
  findings: Finding[];
}

const STALE_AFTER = 3600;
const IDLE_AFTER = 6 * 3600;

export function diagnose(
  input: { netns: string | null; netnsArg?: string; stats: ConntrackStats; settings: ConntrackSettings; unreplied: number; staleUnreplied: number; idleEstablished?: number },
): DoctorReport {
  const { stats: s, settings: st } = input;
  // Per-namespace sysctls must be set inside the namespace; nf_conntrack_max and hashsize are global.
  // ip netns exec takes a name only: a namespace known by its path is entered with nsenter.
  const inNs = (cmd: string) => (!input.netnsArg ? cmd : input.netnsArg.startsWith('/') ? `nsenter --net=${input.netnsArg} ${cmd}` : `ip netns exec ${input.netnsArg} ${cmd}`);
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
  const idleEstablished = input.idleEstablished ?? 0;
  if (s.count >= 100 && idleEstablished / s.count >= 0.1) {
    // What fills modern tables for days: early_drop never evicts an ASSURED entry, and an
    // ESTABLISHED one lasts tcp_timeout_established (5 days by default) after its last packet.
    findings.push({
      severity: s.usage >= 0.8 ? 'critical' : 'warning',
      title: `${percent(idleEstablished, s.count)} of entries are ASSURED ESTABLISHED idle over 6 h: peers that vanished`,
      detail:
        `${formatCount(idleEstablished)} connections saw no packet for 6 hours; the kernel keeps each for ${formatCount(established)} s after its last packet and never evicts an assured entry early. ` +
        `--idle takes only silent flows: busy ones (pools, websockets, SSH) stay, however old. ` +
        `A shorter tcp_timeout_established frees them for good, but also ends quiet connections without keepalives after that time.`,
      commands: [
        ctp('--state ESTABLISHED --idle 6h --dry-run'),
        ctp('--state ESTABLISHED --idle 6h'),
        ...(established > IDLE_AFTER ? [inNs(`sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=${IDLE_AFTER}   # frees about ${formatCount(idleEstablished)} now, and every flow silent for 6 h later`)] : []),
      ],
    });
  }
  const unack = st.timeouts.tcp.unacknowledged ?? 0;
  if (s.count >= 100 && input.unreplied / s.count >= 0.25 && input.staleUnreplied / s.count < 0.01 && unack > 0 && unack <= STALE_AFTER) {
    // Current kernels cap a never-replied TCP flow at tcp_timeout_unacknowledged: real
    // traffic cannot leave old UNREPLIED entries; a purge of them would find nothing.
    findings.push({
      severity: 'info',
      title: `UNREPLIED entries are capped at ${formatCount(unack)} s here: they are not your problem`,
      detail:
        `${formatCount(input.unreplied)} entries never saw a reply, but only ${formatCount(input.staleUnreplied)} are over an hour old: ` +
        `this kernel expires never-replied TCP flows after tcp_timeout_unacknowledged (${formatCount(unack)} s) and UDP ones after udp_timeout (${formatCount(st.timeouts.udp.unreplied ?? 0)} s). ` +
        `They churn rather than pile up: look at the other findings, or at what sends them.`,
      commands: [ctp('stats --unreplied --top 5')],
    });
  } else if (s.count >= 100 && input.unreplied / s.count >= 0.25) {
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
      detail:
        'Without timestamps --older uses the idle time (from the timeout left) as a lower bound of the age; entries of unknown age are never purged. ' +
        'With them, --older is the exact time since creation, busy flows included: use --idle for silent ones. Turning them on applies to new entries.',
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
    idleEstablished,
    drops: { drop: s.totals.drop, earlyDrop: s.totals.earlyDrop, insertFailed: s.totals.insertFailed },
    timestamps: st.timestamps,
    tcpLoose: st.tcpLoose,
    timeouts: st.timeouts,
    findings,
  };
}

/**
 * netnsArg: the --netns value its commands take (the one given, or a namespace's name or path).
 * One dump: the summary's reply classes, idle buckets and candidates hold doctor's counts.
 */
export async function doctorCommand(ct: Conntrack, netnsArg: string | undefined): Promise<DoctorReport> {
  const [stats, settings] = await Promise.all([ct.stats(), ct.settings()]);
  const m = stats.count === 0 ? null : await ct.summary({}, { talkers: false });
  return diagnose({ netns: ct.netns, ...(netnsArg === undefined ? {} : { netnsArg }), stats, settings, ...(m ? doctorCounts(m) : { unreplied: 0, staleUnreplied: 0, idleEstablished: 0 }) });
}

/** The first idle bucket of entries idle for IDLE_AFTER or more. */
const IDLE_FROM = DURATION_BUCKETS.findIndex((b) => b.below > IDLE_AFTER);

/**
 * What doctor counts, from a summary of the whole table: never-replied entries, those of them
 * over an hour old (the summary's --unreplied --older 1h candidate), and replied ASSURED
 * ESTABLISHED entries idle for 6 h or more (any protocol with that state).
 */
export function doctorCounts(m: TableSummary): { unreplied: number; staleUnreplied: number; idleEstablished: number } {
  const stale = m.candidates.find((c) => c.args === '--unreplied --older 1h')?.matched ?? 0;
  const idle = m.distributions
    .filter((d) => d.reply === 'assured' && d.group.endsWith(' ESTABLISHED'))
    .reduce((a, d) => a + d.idle.slice(IDLE_FROM, DURATION_BUCKETS.length).reduce((x, y) => x + y, 0), 0);
  return { unreplied: m.unreplied, staleUnreplied: stale, idleEstablished: idle };
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
    `timeouts: tcp established ${t.tcp.established ?? '?'} s, unacknowledged ${t.tcp.unacknowledged ?? '?'} s, syn_sent ${t.tcp.syn_sent ?? '?'} s; udp ${t.udp.unreplied} s / stream ${t.udp.stream} s; generic ${t.generic} s${t.policies > 0 ? `; ${t.policies} timeout ${t.policies === 1 ? 'policy' : 'policies'} (counted in idle estimates)` : ''}`,
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
