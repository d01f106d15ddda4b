/** Command-line parsing: options to a typed object, and selectors to a Query. Parsing only, no I/O. */
import { parseDuration } from '../parse/duration.js';
import { compileQuery, type Query } from '../query.js';
import { errorField } from '../validate.js';
import { resolveNetns } from '../netns.js';
import { parseInterval } from '../purger.js';
import { graceField } from '../purge.js';
import { nearest } from '../parse/nearest.js';
import { labelBit } from './connlabel.js';

/** Bad usage: exit code 2, one line on stderr. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type Command = 'purge' | 'list' | 'stats' | 'doctor' | 'watch' | 'top' | 'check-rules';
export const COMMANDS: Command[] = ['purge', 'list', 'stats', 'doctor', 'watch', 'top', 'check-rules'];

export interface OptionSpec {
  name: string;
  short?: string;
  value?: string; // placeholder; absent = flag
  repeat?: boolean;
  commands: Command[] | 'all';
  /** One line for the commands' --help (the main help, for the purge, is written out in help.ts). */
  help: string;
  /** The query field it sets (selectors only). */
  field?: string;
  /** How a selector's text becomes its query field's value (see toQueryValue); compileQuery checks it. */
  kind?: SelectorKind;
}

/**
 * flag: true; text: the value as given; list: comma-separated (repeatable); integer: a number
 * when it is digits; labels: bit numbers or connlabel.conf names; except: selectors.
 */
export type SelectorKind = 'flag' | 'text' | 'list' | 'integer' | 'labels' | 'except';

// doctor reads the whole table (its findings are about the table): it takes no selector.
const SELECTOR_COMMANDS: Command[] = ['purge', 'list', 'stats', 'watch', 'top'];
/** The options a rule of a rules file takes besides the selectors (the rest stay on the command line). */
export const RULE_OPTIONS: readonly string[] = ['grace', 'limit', 'max-delete'];

/** Every option, the one table the parser, the commands' help and the tests read. */
export const OPTIONS: OptionSpec[] = [
  { name: 'unreplied', commands: SELECTOR_COMMANDS, kind: 'flag', field: 'unreplied', help: 'never saw a reply ([UNREPLIED])' },
  { name: 'assured', commands: SELECTOR_COMMANDS, kind: 'flag', field: 'assured', help: 'marked [ASSURED]' },
  { name: 'status', value: 'S[,S]', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'status', help: 'status bits, all set (conntrack -u): ASSURED, SEEN_REPLY, OFFLOAD, UNREPLIED, ...' },
  { name: 'src-nat', commands: SELECTOR_COMMANDS, kind: 'flag', field: 'srcNat', help: 'source NAT shows in the reply tuple (conntrack -n)' },
  { name: 'dst-nat', commands: SELECTOR_COMMANDS, kind: 'flag', field: 'dstNat', help: 'destination NAT shows in the reply tuple (conntrack -g)' },
  { name: 'any-nat', commands: SELECTOR_COMMANDS, kind: 'flag', field: 'anyNat', help: 'either NAT (conntrack -j)' },
  { name: 'label', value: 'L[,L]', repeat: true, commands: SELECTOR_COMMANDS, kind: 'labels', field: 'labels', help: 'connection labels, all set: bit numbers or connlabel.conf names' },
  { name: 'older', value: 'DUR', commands: SELECTOR_COMMANDS, kind: 'text', field: 'olderThan', help: 'created at least DUR ago (exact with timestamps, else the idle time)' },
  { name: 'idle', value: 'DUR', commands: SELECTOR_COMMANDS, kind: 'text', field: 'idleFor', help: 'no packet for at least DUR' },
  { name: 'state', value: 'S[,S]', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'state', help: 'protocol state, e.g. ESTABLISHED,SYN_SENT' },
  { name: 'proto', value: 'P', commands: SELECTOR_COMMANDS, kind: 'text', field: 'protocol', help: 'tcp, udp, icmp, icmpv6, sctp, dccp, gre, udplite or a number' },
  { name: 'family', value: 'ipv4|ipv6', commands: SELECTOR_COMMANDS, kind: 'text', field: 'family', help: 'address family' },
  { name: 'src', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'src', help: 'original source (repeatable: any of)' },
  { name: 'dst', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'dst', help: 'original destination (repeatable)' },
  { name: 'reply-src', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'replySrc', help: 'reply-direction source (repeatable)' },
  { name: 'reply-dst', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS, kind: 'list', field: 'replyDst', help: 'reply-direction destination (repeatable)' },
  { name: 'sport', value: 'P|A-B', commands: SELECTOR_COMMANDS, kind: 'text', field: 'sport', help: 'original source port or range' },
  { name: 'dport', value: 'P|A-B', commands: SELECTOR_COMMANDS, kind: 'text', field: 'dport', help: 'original destination port or range' },
  { name: 'reply-sport', value: 'P|A-B', commands: SELECTOR_COMMANDS, kind: 'text', field: 'replySport', help: 'reply-direction source port or range' },
  { name: 'reply-dport', value: 'P|A-B', commands: SELECTOR_COMMANDS, kind: 'text', field: 'replyDport', help: 'reply-direction destination port or range' },
  { name: 'mark', value: 'V[/M]', commands: SELECTOR_COMMANDS, kind: 'text', field: 'mark', help: 'connection mark: (mark & M) == V' },
  { name: 'zone', value: 'N', commands: SELECTOR_COMMANDS, kind: 'integer', field: 'zone', help: 'zone of both directions (zone=)' },
  { name: 'orig-zone', value: 'N', commands: SELECTOR_COMMANDS, kind: 'integer', field: 'origZone', help: 'zone of the original direction only (zone-orig=)' },
  { name: 'reply-zone', value: 'N', commands: SELECTOR_COMMANDS, kind: 'integer', field: 'replyZone', help: 'zone of the reply direction only (zone-reply=)' },
  { name: 'except', value: "'SELECTORS'", repeat: true, commands: SELECTOR_COMMANDS, kind: 'except', field: 'except', help: "keep what these match: --except '--dst 10.1.2.3 --dport 5432' (repeatable)" },
  { name: 'netns', value: 'NAME|PATH', commands: 'all', help: 'work in a network namespace (ip netns name or /proc/PID/ns/net)' },
  { name: 'all-netns', commands: ['purge', 'stats', 'doctor', 'top'], help: "every network namespace of the host: ip netns, Docker's, those held by a process" },
  { name: 'rules', value: 'FILE', commands: ['purge'], help: 'run the named rules of a YAML file, each with its own selectors (SIGHUP reloads it)' },
  { name: 'dry-run', commands: ['purge'], help: 'count what would go, delete nothing' },
  { name: 'grace', value: 'DUR', commands: ['purge'], help: 'instead of deleting, give each match DUR to show a packet (a short timeout)' },
  { name: 'no-wait', commands: ['purge'], help: 'with --grace: do not wait the grace out to count what expired' },
  { name: 'limit', value: 'N', commands: ['purge', 'list'], help: 'at most N deletions (purge) or entries (list)' },
  { name: 'max-delete', value: 'N|PCT%', commands: ['purge'], help: 'stop before deleting more than N (or PCT% of the table, rounded up; per namespace with --all-netns); exit 3' },
  { name: 'log', value: 'FILE', commands: ['purge'], help: 'append every deleted entry as NDJSON (created 0600)' },
  { name: 'json', commands: 'all', help: 'JSON output (list and watch: NDJSON, one line each)' },
  { name: 'every', value: 'DUR', commands: ['purge'], help: 'run as a daemon: purge now, then every DUR' },
  { name: 'adaptive', commands: ['purge'], help: 'with --every: shorter intervals under pressure, longer when little is found' },
  { name: 'when-above', value: 'PCT', commands: ['purge'], help: 'with --every: only purge while the table is more than PCT% full' },
  { name: 'metrics-file', value: 'PATH', commands: ['purge'], help: 'Prometheus textfile metrics, rewritten atomically after each run' },
  { name: 'metrics-listen', value: '[HOST:]PORT', commands: ['purge'], help: 'with --every: serve /metrics over HTTP' },
  { name: 'lock-wait', value: 'DUR', commands: ['purge'], help: 'wait this long for another purge of the namespace (default 10s)' },
  { name: 'pid-file', value: 'PATH', commands: ['purge'], help: "with --every: write the daemon's pid here (for logrotate)" },
  { name: 'output', short: 'o', value: 'table|conntrack', commands: ['list'], help: 'table (default), or lines like conntrack -L' },
  { name: 'top', value: 'N', commands: ['stats'], help: 'how many top sources, destinations and ports (default 10)' },
  { name: 'interval', value: 'DUR', commands: ['top'], help: 'refresh this often (default 1s)' },
  { name: 'once', commands: ['top'], help: 'one snapshot (two readings an interval apart), then exit' },
  { name: 'quiet', short: 'q', commands: 'all', help: 'print nothing on success' },
  { name: 'verbose', short: 'v', commands: 'all', help: 'more detail' },
  { name: 'help', short: 'h', commands: 'all', help: 'this help' },
  { name: 'version', commands: 'all', help: 'print the version' },
];

/** The options a command takes, in the table's order. */
export function optionsOf(command: Command): OptionSpec[] {
  return OPTIONS.filter((o) => o.commands === 'all' || o.commands.includes(command));
}


export interface ParsedArgs {
  command: Command;
  query: Query;
  netns?: string;
  /** Every namespace of the host (--all-netns). */
  allNetns: boolean;
  /** --rules FILE, or check-rules' FILE. */
  rules?: string;
  dryRun: boolean;
  /** Seconds: a timeout update instead of a delete. */
  grace?: number;
  /** With --grace, a one-shot run does not wait the grace out. */
  noWait: boolean;
  limit?: number;
  /** A purge stops (exit 3) before it deletes more than this: a count, or a share of the table (0-1). */
  maxDelete?: { count: number } | { share: number };
  log?: string;
  json: boolean;
  /** Daemon mode: seconds between runs. */
  every?: number;
  /** top: seconds between refreshes; one snapshot with once. */
  interval?: number;
  once: boolean;
  adaptive: boolean;
  /** 0-1 */
  whenAbove?: number;
  metricsFile?: string;
  metricsListen?: { host: string; port: number };
  /** Daemon mode: its pid is written here while it runs (for logrotate's SIGHUP). */
  pidFile?: string;
  lockWait: number;
  output: 'table' | 'conntrack';
  top: number;
  quiet: boolean;
  verbose: boolean;
  help: boolean;
  version: boolean;
}

const MAX_ARG_LENGTH = 4096;

function integer(value: string, option: string, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${option}: expected a whole number, got ${JSON.stringify(value.slice(0, 40))}`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`${option}: ${value.slice(0, 40)} is larger than ${max}`);
  return n;
}

/** Runs a parser from the library and re-labels its TypeError/RangeError as usage errors. */
function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

export function parseArgs(argv: string[]): ParsedArgs {
  let command: Command = 'purge';
  let rest = argv;
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) {
    if (first === 'help') return { ...defaults('purge'), help: true };
    if (!(COMMANDS as string[]).includes(first) || first === 'purge') {
      if (first !== 'purge') {
        const near = nearest(first, COMMANDS);
        throw new UsageError(`unknown command '${first.slice(0, 40)}'${near ? ` (did you mean '${near}'?)` : ''} (commands: list, stats, doctor, watch, top, check-rules; the default is the purge)`);
      }
    }
    command = first as Command;
    rest = argv.slice(1);
  }
  const out = defaults(command);
  const values = new Map<string, string[]>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    // check-rules FILE: its one argument.
    if (command === 'check-rules' && !arg.startsWith('-') && out.rules === undefined) {
      out.rules = arg;
      continue;
    }
    if (arg.length > MAX_ARG_LENGTH) throw new UsageError(`argument ${i + 1} is longer than ${MAX_ARG_LENGTH} characters`);
    if (arg.includes('\0')) throw new UsageError(`argument ${i + 1} contains a NUL byte`);
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = OPTIONS.find((o) => o.name === name);
      if (!spec) {
        const near = nearest(name, optionsOf(command).map((o) => o.name));
        throw new UsageError(`unknown option --${name.slice(0, 40)}${near ? ` (did you mean --${near}?)` : ''}`);
      }
    } else if (arg.startsWith('-') && arg.length === 2) {
      spec = OPTIONS.find((o) => o.short === arg[1]);
      if (!spec) throw new UsageError(`unknown option ${arg}`);
    } else {
      throw new UsageError(`unexpected argument '${arg.slice(0, 40)}'`);
    }
    const label = `--${spec.name}`;
    if (spec.commands !== 'all' && !spec.commands.includes(command)) {
      const why = command === 'doctor' && SELECTOR_COMMANDS.every((c) => spec.commands.includes(c)) ? ' (doctor reads the whole table: it takes no selector)' : '';
      throw new UsageError(`${label} does not apply to ${command === 'purge' ? 'the purge' : `'${command}'`}${why}`);
    }
    if (!spec.value) {
      if (inline !== undefined) throw new UsageError(`${label} takes no value`);
      values.set(spec.name, ['']);
      continue;
    }
    let v = inline;
    if (v === undefined) {
      v = rest[++i];
      // --except's value is itself selectors: '--dst 10.1.2.3'.
      if (v === undefined || (v.startsWith('--') && v.length > 2 && spec.name !== 'except')) throw new UsageError(`${label} needs a value (${spec.value})`);
      if (v.length > MAX_ARG_LENGTH) throw new UsageError(`${label}: value is longer than ${MAX_ARG_LENGTH} characters`);
      if (v.includes('\0')) throw new UsageError(`${label}: value contains a NUL byte`);
    }
    const prev = values.get(spec.name);
    if (prev && !spec.repeat) throw new UsageError(`${label} given twice`);
    values.set(spec.name, [...(prev ?? []), v]);
  }

  const one = (k: string) => values.get(k)?.[0];
  const q: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const given = values.get(spec.name);
    if (given !== undefined && spec.field !== undefined && spec.kind !== undefined) q[spec.field] = toQueryValue(spec.kind, given, `--${spec.name}`);
  }
  if (values.has('netns')) out.netns = usage(() => (resolveNetns(one('netns'), '--netns'), one('netns') as string));
  out.allNetns = values.has('all-netns');
  if (out.allNetns && out.netns !== undefined) throw new UsageError('--all-netns and --netns: give one (--all-netns is every namespace)');
  if (out.allNetns && values.has('adaptive')) throw new UsageError('--adaptive does not apply with --all-netns: the interval is one for every namespace');
  out.dryRun = values.has('dry-run');
  if (values.has('grace')) out.grace = usage(() => graceField(one('grace'), '--grace'));
  out.noWait = values.has('no-wait');
  if (out.noWait && out.grace === undefined && !values.has('rules')) throw new UsageError('--no-wait needs --grace (or --rules, for its rules with a grace)');
  if (values.has('limit')) out.limit = integer(one('limit') as string, '--limit', Number.MAX_SAFE_INTEGER);
  if (values.has('max-delete')) {
    const v = one('max-delete') as string;
    const pct = /^(\d{1,3}(?:\.\d+)?)%$/.exec(v);
    if (pct) {
      const share = Number(pct[1]) / 100;
      if (!(share > 0 && share <= 1)) throw new UsageError(`--max-delete: expected a count or a percentage of the table above 0% and at most 100%, got ${JSON.stringify(v.slice(0, 40))}`);
      out.maxDelete = { share };
    } else {
      out.maxDelete = { count: integer(v, '--max-delete', Number.MAX_SAFE_INTEGER) };
    }
  }
  if (values.has('log')) {
    const file = one('log') as string;
    if (file === '') throw new UsageError('--log: empty file name');
    out.log = file;
  }
  out.json = values.has('json');
  if (values.has('every')) {
    out.every = usage(() => parseInterval(one('every'), '--every'));
  }
  out.adaptive = values.has('adaptive');
  if (values.has('interval')) out.interval = usage(() => parseInterval(one('interval'), '--interval'));
  out.once = values.has('once');
  if (values.has('when-above')) {
    const m = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(one('when-above') as string);
    const pct = m ? Number(m[1]) : NaN;
    if (!(pct >= 0 && pct < 100)) throw new UsageError(`--when-above: expected a percentage of the table 0-99, got ${JSON.stringify(one('when-above')?.slice(0, 40))}`);
    out.whenAbove = pct / 100;
  }
  if ((out.adaptive || out.whenAbove !== undefined) && out.every === undefined) {
    throw new UsageError(`${out.adaptive ? '--adaptive' : '--when-above'} needs --every`);
  }
  if (values.has('metrics-file')) {
    const f = one('metrics-file') as string;
    if (f === '' || f.endsWith('/')) throw new UsageError('--metrics-file: expected a file path');
    out.metricsFile = f;
  }
  if (values.has('metrics-listen')) {
    if (out.every === undefined) throw new UsageError('--metrics-listen needs --every (a one-shot run would exit at once)');
    out.metricsListen = parseListen(one('metrics-listen') as string);
  }
  if (values.has('pid-file')) {
    if (out.every === undefined) throw new UsageError('--pid-file needs --every (only a daemon is signalled by pid)');
    const f = one('pid-file') as string;
    if (f === '' || f.endsWith('/')) throw new UsageError('--pid-file: expected a file path');
    out.pidFile = f;
  }
  out.lockWait = values.has('lock-wait') ? usage(() => parseDuration(one('lock-wait'), '--lock-wait')) : 10;
  if (values.has('output')) {
    const o = one('output');
    if (o === 'json') out.json = true;
    else if ((o === 'table' || o === 'conntrack') && out.json) throw new UsageError(`--output ${o} and --json ask for two formats: give one`);
    else if (o === 'table' || o === 'conntrack') out.output = o;
    else throw new UsageError(`--output: expected table, conntrack or json, got ${JSON.stringify(o?.slice(0, 40))}`);
  }
  if (values.has('top')) out.top = Math.max(1, integer(one('top') as string, '--top', 1000));
  if (values.has('rules')) {
    const f = one('rules') as string;
    if (f === '') throw new UsageError('--rules: empty file name');
    // The rules say what to purge and how: the command line says where and when.
    const clash = [...values.keys()].find((k) => k !== 'except' && (OPTIONS.find((o) => o.name === k)?.field !== undefined || RULE_OPTIONS.includes(k)));
    if (clash || values.has('except')) throw new UsageError(`--rules: --${clash ?? 'except'} goes in the rules file, in each rule`);
    out.rules = f;
  }
  if (command === 'check-rules' && out.rules === undefined && !values.has('help')) throw new UsageError('check-rules: give the rules file: ctpurge check-rules FILE');
  out.quiet = values.has('quiet');
  out.verbose = values.has('verbose');
  out.help = values.has('help');
  out.version = values.has('version');
  if (out.quiet && out.verbose) throw new UsageError('--quiet and --verbose contradict each other');
  if (out.log && out.json && out.log === '-') throw new UsageError('--log - would mix entries into the --json summary on stdout');
  out.query = checkedQuery(q);
  return out;
}

/**
 * A selector's text as its query field's value. Conversion only: compileQuery checks every
 * value (checkedQuery), so the CLI and the API refuse the same values with the same reasons.
 */
function toQueryValue(kind: SelectorKind, given: string[], option: string): unknown {
  const list = () => given.flatMap((v) => v.split(',')).map((v) => v.trim());
  switch (kind) {
    case 'flag':
      return true;
    case 'text':
      return given[0];
    case 'list':
      return list();
    case 'integer':
      return /^\d{1,10}$/.test(given[0] as string) ? Number(given[0]) : given[0];
    case 'labels':
      // Names are the CLI's (a file on this host): the query takes bit numbers.
      return list().map((l) => (/^\d{1,10}$/.test(l) ? Number(l) : usage(() => labelBit(l, option))));
    case 'except':
      return given.map(exclusion);
  }
}

/** compileQuery's check of a query, its error put in the CLI's words: the option, then why (--dport: ...). */
export function checkedQuery(query: Query): Query {
  try {
    return compileQuery(query).query;
  } catch (err) {
    throw optionError(err);
  }
}

/** A query field's CLI option (for the errors compileQuery raises), from the option table. */
const FIELD_TO_OPTION: Record<string, string> = Object.fromEntries([
  ...OPTIONS.filter((o) => o.field !== undefined).map((o) => [o.field as string, `--${o.name}`]),
  ['mark.value', '--mark'],
  ['mark.mask', '--mark'],
]);

/** The option of a query field, also one of an exclusion's ('except[1].dport' -> --except (--dport)). */
export function optionOf(field: string): string {
  const m = /^except(?:\[\d+\])?\.(.+)$/.exec(field);
  if (m) return `--except (${FIELD_TO_OPTION[m[1] as string] ?? m[1]})`;
  return FIELD_TO_OPTION[field] ?? field;
}

/** A TypeError/RangeError from the library as a UsageError naming the option; anything else as it is. */
export function optionError(err: unknown): unknown {
  if (!(err instanceof TypeError || err instanceof RangeError)) return err;
  const info = errorField(err);
  return new UsageError(info === undefined ? err.message : `${optionOf(info.field)}: ${info.reason}`);
}

/** One --except value: selectors, as they are written on the command line, parsed into a query. */
function exclusion(value: string): Query {
  const words = value.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new UsageError("--except: expected selectors, e.g. --except '--dst 10.1.2.3 --dport 5432'");
  for (const w of words) {
    if (!w.startsWith('-')) continue;
    const name = w.replace(/^--?/, '').split('=')[0] as string;
    const spec = OPTIONS.find((o) => o.name === name || o.short === name);
    if (!spec || spec.field === undefined || spec.name === 'except') throw new UsageError(`--except: ${w.slice(0, 40)} is not a selector (an exclusion takes selectors only)`);
  }
  try {
    return parseArgs(['list', ...words]).query;
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`--except: ${err.message}`);
    throw err;
  }
}

function defaults(command: Command): ParsedArgs {
  return { command, query: {}, allNetns: false, once: false, dryRun: false, noWait: false, json: false, adaptive: false, lockWait: 10, output: 'table', top: 10, quiet: false, verbose: false, help: false, version: false };
}

/** '9469' -> 127.0.0.1:9469 (loopback unless a host is given); '0.0.0.0:9469'; '[::1]:9469'. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--metrics-listen: expected [HOST:]PORT, got ${JSON.stringify(value.slice(0, 60))}`);
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : '127.0.0.1';
  return { host, port };
}
