/** Command-line parsing: options to a typed object, and selectors to a Query. Parsing only, no I/O. */
import { parseCidr } from '../parse/address.js';
import { parseDuration } from '../parse/duration.js';
import { parsePortRange } from '../parse/port.js';
import { parseProtocol, type Query } from '../query.js';
import { resolveNetns } from '../netns.js';
import { parseInterval } from '../purger.js';

/** Bad usage: exit code 2, one line on stderr. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type Command = 'purge' | 'list' | 'stats' | 'doctor' | 'watch';
export const COMMANDS: Command[] = ['purge', 'list', 'stats', 'doctor', 'watch'];

interface OptionSpec {
  name: string;
  short?: string;
  value?: string; // placeholder; absent = flag
  repeat?: boolean;
  commands: Command[] | 'all';
}

// doctor reads the whole table (its findings are about the table): it takes no selector.
const SELECTOR_COMMANDS: Command[] = ['purge', 'list', 'stats', 'watch'];
const OPTIONS: OptionSpec[] = [
  { name: 'unreplied', commands: SELECTOR_COMMANDS },
  { name: 'assured', commands: SELECTOR_COMMANDS },
  { name: 'older', value: 'DUR', commands: SELECTOR_COMMANDS },
  { name: 'idle', value: 'DUR', commands: SELECTOR_COMMANDS },
  { name: 'state', value: 'S[,S]', repeat: true, commands: SELECTOR_COMMANDS },
  { name: 'proto', value: 'P', commands: SELECTOR_COMMANDS },
  { name: 'family', value: 'ipv4|ipv6', commands: SELECTOR_COMMANDS },
  { name: 'src', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS },
  { name: 'dst', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS },
  { name: 'reply-src', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS },
  { name: 'reply-dst', value: 'CIDR', repeat: true, commands: SELECTOR_COMMANDS },
  { name: 'sport', value: 'P|A-B', commands: SELECTOR_COMMANDS },
  { name: 'dport', value: 'P|A-B', commands: SELECTOR_COMMANDS },
  { name: 'mark', value: 'V[/M]', commands: SELECTOR_COMMANDS },
  { name: 'zone', value: 'N', commands: SELECTOR_COMMANDS },
  { name: 'orig-zone', value: 'N', commands: SELECTOR_COMMANDS },
  { name: 'reply-zone', value: 'N', commands: SELECTOR_COMMANDS },
  { name: 'netns', value: 'NAME|PATH', commands: 'all' },
  { name: 'dry-run', commands: ['purge'] },
  { name: 'limit', value: 'N', commands: ['purge', 'list'] },
  { name: 'max-delete', value: 'N|PCT%', commands: ['purge'] },
  { name: 'log', value: 'FILE', commands: ['purge'] },
  { name: 'json', commands: 'all' },
  { name: 'every', value: 'DUR', commands: ['purge'] },
  { name: 'adaptive', commands: ['purge'] },
  { name: 'when-above', value: 'PCT', commands: ['purge'] },
  { name: 'metrics-file', value: 'PATH', commands: ['purge'] },
  { name: 'metrics-listen', value: '[HOST:]PORT', commands: ['purge'] },
  { name: 'lock-wait', value: 'DUR', commands: ['purge'] },
  { name: 'pid-file', value: 'PATH', commands: ['purge'] },
  { name: 'output', short: 'o', value: 'table|conntrack', commands: ['list'] },
  { name: 'top', value: 'N', commands: ['stats'] },
  { name: 'quiet', short: 'q', commands: 'all' },
  { name: 'verbose', short: 'v', commands: 'all' },
  { name: 'help', short: 'h', commands: 'all' },
  { name: 'version', commands: 'all' },
];

export interface ParsedArgs {
  command: Command;
  query: Query;
  netns?: string;
  dryRun: boolean;
  limit?: number;
  /** A purge stops (exit 3) before it deletes more than this: a count, or a share of the table (0-1). */
  maxDelete?: { count: number } | { share: number };
  log?: string;
  json: boolean;
  /** Daemon mode: seconds between runs. */
  every?: number;
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

function u32(value: string, option: string): number {
  const n = /^0x[0-9a-f]+$/i.test(value) ? Number.parseInt(value.slice(2), 16) : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new UsageError(`${option}: expected a number 0-4294967295 (decimal or 0x hex), got ${JSON.stringify(value.slice(0, 40))}`);
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
      if (first !== 'purge') throw new UsageError(`unknown command '${first.slice(0, 40)}' (commands: list, stats, doctor, watch; the default is the purge)`);
    }
    command = first as Command;
    rest = argv.slice(1);
  }
  const out = defaults(command);
  const values = new Map<string, string[]>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg.length > MAX_ARG_LENGTH) throw new UsageError(`argument ${i + 1} is longer than ${MAX_ARG_LENGTH} characters`);
    if (arg.includes('\0')) throw new UsageError(`argument ${i + 1} contains a NUL byte`);
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = OPTIONS.find((o) => o.name === name);
      if (!spec) throw new UsageError(`unknown option --${name.slice(0, 40)}`);
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
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new UsageError(`${label} needs a value (${spec.value})`);
      if (v.length > MAX_ARG_LENGTH) throw new UsageError(`${label}: value is longer than ${MAX_ARG_LENGTH} characters`);
      if (v.includes('\0')) throw new UsageError(`${label}: value contains a NUL byte`);
    }
    const prev = values.get(spec.name);
    if (prev && !spec.repeat) throw new UsageError(`${label} given twice`);
    values.set(spec.name, [...(prev ?? []), v]);
  }

  const one = (k: string) => values.get(k)?.[0];
  const list = (k: string) => (values.get(k) ?? []).flatMap((v) => v.split(',')).map((v) => v.trim());
  const q: Query = {};
  if (values.has('unreplied')) q.unreplied = true;
  if (values.has('assured')) q.assured = true;
  if (values.has('older')) q.olderThan = usage(() => parseDuration(one('older'), '--older'));
  if (values.has('idle')) q.idleFor = usage(() => parseDuration(one('idle'), '--idle'));
  if (values.has('state')) {
    const states = list('state');
    if (states.some((s) => s === '')) throw new UsageError('--state: empty state name');
    q.state = states;
  }
  if (values.has('proto')) {
    const p = usage(() => parseProtocol(one('proto'), '--proto'));
    q.protocol = p;
  }
  if (values.has('family')) {
    const f = one('family');
    if (f !== 'ipv4' && f !== 'ipv6') throw new UsageError(`--family: expected ipv4 or ipv6, got ${JSON.stringify(f?.slice(0, 40))}`);
    q.family = f;
  }
  for (const [opt, key] of [['src', 'src'], ['dst', 'dst'], ['reply-src', 'replySrc'], ['reply-dst', 'replyDst']] as const) {
    if (!values.has(opt)) continue;
    const cidrs = list(opt);
    for (const c of cidrs) usage(() => parseCidr(c, `--${opt}`));
    q[key] = cidrs;
  }
  for (const key of ['sport', 'dport'] as const) {
    if (values.has(key)) q[key] = usage(() => parsePortRange(one(key), `--${key}`));
  }
  if (values.has('mark')) {
    const [v, m, extra] = (one('mark') as string).split('/');
    if (extra !== undefined) throw new UsageError('--mark: expected VALUE or VALUE/MASK');
    q.mark = { value: u32(v ?? '', '--mark'), mask: m === undefined ? 0xffffffff : u32(m, '--mark mask') };
  }
  for (const [opt, key] of [['zone', 'zone'], ['orig-zone', 'origZone'], ['reply-zone', 'replyZone']] as const) {
    if (values.has(opt)) q[key] = integer(one(opt) as string, `--${opt}`, 65535);
  }
  if (values.has('netns')) out.netns = usage(() => (resolveNetns(one('netns'), '--netns'), one('netns') as string));
  out.dryRun = values.has('dry-run');
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
    else if (o === 'table' || o === 'conntrack') out.output = o;
    else throw new UsageError(`--output: expected table, conntrack or json, got ${JSON.stringify(o?.slice(0, 40))}`);
  }
  if (values.has('top')) out.top = Math.max(1, integer(one('top') as string, '--top', 1000));
  out.quiet = values.has('quiet');
  out.verbose = values.has('verbose');
  out.help = values.has('help');
  out.version = values.has('version');
  if (out.quiet && out.verbose) throw new UsageError('--quiet and --verbose contradict each other');
  if (out.log && out.json && out.log === '-') throw new UsageError('--log - would mix entries into the --json summary on stdout');
  out.query = q;
  return out;
}

function defaults(command: Command): ParsedArgs {
  return { command, query: {}, dryRun: false, json: false, adaptive: false, lockWait: 10, output: 'table', top: 10, quiet: false, verbose: false, help: false, version: false };
}

/** '9469' -> 127.0.0.1:9469 (loopback unless a host is given); '0.0.0.0:9469'; '[::1]:9469'. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--metrics-listen: expected [HOST:]PORT, got ${JSON.stringify(value.slice(0, 60))}`);
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : '127.0.0.1';
  return { host, port };
}
