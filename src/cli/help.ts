/** --help texts: the purge's (the default command) written out; the other commands' made from the option table. */
import { optionsOf, type Command, type OptionSpec } from './args.js';

export const MAIN_HELP = `Usage: ctpurge [selectors] [options]          purge matching entries (the default)
       ctpurge list [selectors] [options]     show matching entries
       ctpurge stats [selectors] [options]    table size, breakdowns, top talkers
       ctpurge doctor [options]               findings and the commands that would help (no selectors)
       ctpurge watch [selectors] [options]    conntrack events as they happen (new, update, destroy)
       ctpurge top [selectors] [options]      a live view: fill level, rates, states, idle times, talkers
       ctpurge --rules FILE [options]         purge by the named rules of a YAML file
       ctpurge check-rules FILE               validate a rules file, touch nothing

Deletes stale conntrack entries over netlink: dump (filtered in the kernel where it can),
match, delete in batches by tuple + zone + id. Nothing else is touched.

Selectors (all combined with AND; a repeated address option means any of):
  --unreplied              never saw a reply ([UNREPLIED])
  --assured                marked [ASSURED]
  --status S[,S]           status bits, all set (conntrack -u): ASSURED, SEEN_REPLY, OFFLOAD,
                           FIXED_TIMEOUT, SRC_NAT_DONE, ...; UNREPLIED: SEEN_REPLY not set
  --src-nat                source NAT shows in the reply tuple (conntrack -n)
  --dst-nat                destination NAT shows in the reply tuple (conntrack -g)
  --any-nat                either NAT (conntrack -j)
  --label L[,L]            connection labels, all set: bit numbers 0-127 or the names in
                           /etc/xtables/connlabel.conf (conntrack -l)
  --idle DUR               no packet for at least DUR: 3600, 90m, 1h, 2d (estimated from the
                           timeout left; a busy flow never matches, however old)
  --older DUR              created at least DUR ago: exact with nf_conntrack_timestamp=1, else
                           the idle time stands in (a lower bound). Unknown never matches
  --state S[,S]            protocol state, e.g. ESTABLISHED,SYN_SENT
  --proto P                tcp, udp, icmp, icmpv6, sctp, dccp, gre, udplite or a number
  --family ipv4|ipv6
  --src CIDR               original source (repeatable)
  --dst CIDR               original destination (repeatable)
  --reply-src CIDR         reply-direction source (repeatable)
  --reply-dst CIDR         reply-direction destination (repeatable)
  --sport P|A-B            original source port or range
  --dport P|A-B            original destination port or range
  --reply-sport P|A-B      reply-direction source port or range
  --reply-dport P|A-B      reply-direction destination port or range
  --mark V[/M]             connection mark, optionally masked (decimal or 0x hex): matches
                           when (mark & M) == V, as in conntrack, iptables and nft
  --zone N                 conntrack zone of both directions (zone=; 0: none)
  --orig-zone N            zone of the original direction only (zone-orig=)
  --reply-zone N           zone of the reply direction only (zone-reply=)
  --except 'SELECTORS'     keep what these selectors match, whatever the rest says, e.g.
                           --except '--dst 10.1.2.3 --dport 5432' (repeatable: any of them)

--idle or --older? Idle is the time since a flow's last packet, age the time since it was
created. To free the entries of peers that vanished, use --idle: a busy flow (a database pool,
a websocket, an SSH session) is never idle long, however old. With timestamps on (doctor
recommends them), --older 1d takes busy day-old flows too.

Options:
  --netns NAME|PATH        work in a network namespace (ip netns name or /proc/PID/ns/net)
  --all-netns              purge/stats/doctor: every network namespace of the host (ip netns,
                           Docker's, those held by a container's process), a few at once, each
                           under its own lock with its own lines; a namespace gone meanwhile is
                           skipped. Exit 1 if one failed
  --dry-run                purge: count what would go, delete nothing
  --grace DUR              purge: delete nothing; give each match DUR (1s-5m) to show a packet:
                           the kernel sets its timeout to DUR, a live flow's next packet restores
                           it, a silent one expires. A one-shot run then waits DUR and says how
                           many expired and how many proved alive
  --no-wait                with --grace: do not wait the grace out
  --limit N                purge: at most N deletions; list: at most N entries
  --max-delete N|PCT%      purge: stop before deleting more than N entries (or PCT% of the
                           table, rounded up; per namespace with --all-netns) and exit 3
                           when more matched (a guard for cron and daemons)
  --log FILE               purge: append every deleted entry as NDJSON (file created 0600)
  --json                   purge/stats/doctor: one JSON object; list: NDJSON, one entry per line
  --every DUR              run as a daemon: purge now, then every DUR, never overlapping
  --adaptive               with --every: shorter intervals while runs delete a lot or the table
                           is over 80% full, longer (up to 8x) while they find little
  --when-above PCT         with --every: only purge while the table is more than PCT% full
  --metrics-file PATH      Prometheus textfile-collector metrics, rewritten atomically after each run
  --metrics-listen [H:]P   with --every: serve /metrics over HTTP (127.0.0.1 unless a host is given)
  --lock-wait DUR          wait this long for another purge of the namespace (default 10s), then exit 1
  --pid-file PATH          with --every: write the daemon's pid here (logrotate signals it by it)
  -o, --output FORMAT      list: table (default) or conntrack (lines like conntrack -L)
  --top N                  stats: how many top sources/destinations/ports (default 10)
  -q, --quiet              print nothing on success (for cron)
  -v, --verbose            more detail (the query, the method, timings)
  -h, --help               this help
  --version                print the version

Examples:
  ctpurge --unreplied --older 3600                  purge unreplied flows an hour old
  ctpurge --state ESTABLISHED --idle 6h --dry-run   flows silent for 6 h (peers gone); busy ones stay
  ctpurge --unreplied --older 1h --proto tcp --dport 80 --netns blue --dry-run
  ctpurge --src 10.1.0.0/16 --log /var/log/ctpurge.ndjson
  ctpurge list --unreplied --older 1d -o conntrack | head
  ctpurge --unreplied --older 1h --every 5m --adaptive --metrics-file /var/lib/node_exporter/ctpurge.prom
  ctpurge stats --top 5
  ctpurge doctor
  ctpurge stats --all-netns                          which namespaces hold the entries (container hosts)

Exit codes:
  0  success (nothing to purge is success too)
  1  runtime failure (kernel error, missing CAP_NET_ADMIN, namespace gone, ...)
  2  bad usage (unknown option, bad value, no selector that narrows a purge); the table is untouched
  3  a purge stopped at --max-delete: more entries matched than it allows
`;

const SUMMARY: Record<Exclude<Command, 'purge'>, { usage: string; what: string }> = {
  list: { usage: 'ctpurge list [selectors] [options]', what: 'Shows the matching entries: a table, lines like conntrack -L (-o conntrack), or NDJSON (--json).' },
  stats: { usage: 'ctpurge stats [selectors] [options]', what: 'The table size against nf_conntrack_max, breakdowns by state, reply and idle time, top\nsources, destinations and ports, and what a purge would free; selectors narrow what is counted.' },
  doctor: { usage: 'ctpurge doctor [options]', what: 'Findings about the whole table and the sysctls, each with the command that would help.\nIt reads the whole table: it takes no selector.' },
  watch: { usage: 'ctpurge watch [selectors] [options]', what: 'Conntrack events as they happen (new, update, destroy), until Ctrl-C or SIGTERM.' },
  top: {
    usage: 'ctpurge top [selectors] [options]',
    what:
      'A live view of the table, refreshed every --interval: the fill level, entries and their change, new and\ndestroyed flows, drops, early drops and insert failures per second, the states, idle times, top talkers and\nwhat a purge would free. Keys: q quit, p pause, s sort, f filter (selectors), r read the table now.\nNot on a terminal, or with --once: one snapshot (text or --json), then exit.',
  },
  'check-rules': {
    usage: 'ctpurge check-rules FILE',
    what: "Validates a rules file (--rules) as a purge would, touching no table: each rule's name and\nwhat it selects, or the file, line and key of the first error (exit 2).",
  },
};

function line(o: OptionSpec): string {
  const flag = `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.value ? ` ${o.value}` : ''}`;
  return `  ${flag.padEnd(25)}${o.help}`;
}

/** `ctpurge COMMAND --help`: only the options COMMAND takes, from the table the parser reads. */
export function commandHelp(command: Command): string {
  if (command === 'purge') return MAIN_HELP;
  const { usage, what } = SUMMARY[command];
  const options = optionsOf(command);
  const selectors = options.filter((o) => o.field !== undefined);
  const rest = options.filter((o) => o.field === undefined);
  const parts = [`Usage: ${usage}`, '', what, ''];
  if (selectors.length) parts.push('Selectors (all combined with AND; a repeated address option means any of):', ...selectors.map(line), '');
  parts.push('Options:', ...rest.map(line), '', 'ctpurge --help describes the purge and the exit codes.', '');
  return parts.join('\n');
}
