/**
 * The man page ctpurge(8) and the bash completion, made from the option table the parser and
 * the help read (src/cli/args.ts). `node scripts/gen-manual.mjs` writes them to man/ and
 * completion/; a unit test holds the shipped files to this output.
 */
import { COMMANDS, OPTIONS, optionsOf, type Command, type OptionSpec } from './args.js';

const WHAT: Record<Command, string> = {
  purge: 'delete the matching entries (the default command)',
  list: 'show the matching entries: a table, lines like conntrack -L (-o conntrack), or NDJSON (--json)',
  stats: 'the table size, breakdowns, idle and age histograms, top talkers, what a purge would free',
  doctor: 'findings about the whole table and the sysctls, with the commands that would help; no selectors',
  watch: 'conntrack events as they happen (new, update, destroy)',
  top: 'a live view of the table: fill level, rates, states, idle times, talkers (one snapshot with --once or on a pipe)',
  'check-rules': 'validate a rules file (--rules FILE) as a purge would read it; touch no table',
};

/** roff text: backslashes and leading dots or quotes escaped. */
const roff = (t: string) => t.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^[.']/gm, '\\&$&');

function optionItem(o: OptionSpec): string {
  const flag = `${o.short ? `\\fB\\-${o.short}\\fR, ` : ''}\\fB${roff(`--${o.name}`)}\\fR${o.value ? ` \\fI${roff(o.value)}\\fR` : ''}`;
  const where = o.commands === 'all' ? '' : ` (${o.commands.join(', ')})`;
  return `.TP\n${flag}\n${roff(o.help)}${roff(where)}`;
}

export function manPage(version: string): string {
  const selectors = OPTIONS.filter((o) => o.field !== undefined);
  const rest = OPTIONS.filter((o) => o.field === undefined);
  return [
    `.TH CTPURGE 8 "" "ctpurge ${version}" "System Administration"`,
    '.SH NAME',
    'ctpurge \\- list, filter and purge stale conntrack entries over netlink',
    '.SH SYNOPSIS',
    ...COMMANDS.map((c) => `.B ctpurge${c === 'purge' ? '' : ` ${c}`}\n${c === 'check-rules' ? '\\fIFILE\\fR' : `${c === 'doctor' ? '' : '[\\fIselectors\\fR] '}[\\fIoptions\\fR]`}\n.br`),
    '.SH DESCRIPTION',
    'ctpurge dumps the conntrack table (filtered in the kernel where the kernel compares exactly what was asked), matches each entry, and deletes the matches in batches by tuple, zone and id. A dry run says what a purge deletes; the purge deletes that and nothing more. It needs CAP_NET_ADMIN.',
    '.SH COMMANDS',
    ...COMMANDS.map((c) => `.TP\n\\fB${c}\\fR\n${roff(WHAT[c])}`),
    '.SH SELECTORS',
    'Combined with AND; a repeated address option means any of. A purge is refused unless some selector narrows it.',
    ...selectors.map(optionItem),
    '.SH OPTIONS',
    ...rest.map(optionItem),
    '.SH EXIT STATUS',
    '.TP\n0\nsuccess (nothing to purge is success too)',
    '.TP\n1\nruntime failure (a kernel error, missing CAP_NET_ADMIN, the namespace gone)',
    '.TP\n2\nbad usage; the table is untouched',
    '.TP\n3\na purge stopped at \\-\\-max\\-delete: more entries matched than it allows',
    '.SH EXAMPLES',
    '.nf\nctpurge doctor\nctpurge \\-\\-state ESTABLISHED \\-\\-idle 6h \\-\\-dry\\-run\nctpurge \\-\\-unreplied \\-\\-older 1h \\-\\-every 5m \\-\\-adaptive\n.fi',
    '.SH SEE ALSO',
    'conntrack(8), iptstate(8)',
    '',
  ].join('\n');
}

/** Bash completion: commands, each command's own options, and values where they are a fixed list. */
export function bashCompletion(): string {
  const perCommand = COMMANDS.map((c) => `    ${c}) opts="${optionsOf(c).map((o) => `--${o.name}`).join(' ')}" ;;`).join('\n');
  return `# bash completion for ctpurge (generated from its option table; do not edit)
_ctpurge() {
  local cur prev cmd opts
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  cmd=purge
  case \${COMP_WORDS[1]} in ${COMMANDS.filter((c) => c !== 'purge').join('|')}) cmd=\${COMP_WORDS[1]} ;; esac
  case $prev in
    --family) COMPREPLY=($(compgen -W "ipv4 ipv6" -- "$cur")); return ;;
    --proto) COMPREPLY=($(compgen -W "tcp udp icmp icmpv6 sctp dccp gre udplite" -- "$cur")); return ;;
    -o|--output) COMPREPLY=($(compgen -W "table conntrack json" -- "$cur")); return ;;
    --state) COMPREPLY=($(compgen -W "ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT CLOSE" -- "$cur")); return ;;
    --netns) COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | cut -d' ' -f1)" -- "$cur")); return ;;
    --log|--metrics-file|--pid-file|--rules) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    check-rules) if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi ;;
  esac
  case $cmd in
${perCommand}
  esac
  if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.filter((c) => c !== 'purge').join(' ')}" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  fi
}
complete -F _ctpurge ctpurge
`;
}
