/** The default command: purge matching entries. */
import { getSystemErrorMap } from 'node:util';
import type { Conntrack, PurgeResult, QueryPlan } from '../conntrack.js';
import type { GraceOutcome } from '../purge.js';
import { ConntrackError } from '../errors.js';
import type { ParsedArgs } from './args.js';
import type { AuditLog } from './files.js';
import { formatCount } from './format.js';
import { Progress } from './output.js';

/** The CLI's one-line message for a failed audit log write, naming --log, the path and the counts. */
export function logFailure(err: unknown, log: AuditLog | undefined): unknown {
  if (!(err instanceof ConntrackError) || err.operation !== 'log' || !log) return err;
  const partial = err.partial?.kind === 'purge' ? err.partial.result : undefined;
  const counts = partial ? `: ${partial.deleted} deleted, ${partial.logged} logged` : '';
  const file = log.file === '-' ? 'standard output' : log.file;
  const text = err.errno !== undefined ? getSystemErrorMap().get(err.errno)?.[1] : undefined;
  const why = text ? `${err.code} (${text})` : err.code;
  return Object.assign(new Error(`--log: cannot write ${file}: ${why}; stopped before the next delete${counts}`), { code: err.code });
}

/**
 * The most a purge may delete under --max-delete, for a table of `count` entries: the count
 * given, or the share of the table (rounded down). Undefined without the option.
 */
export function maxDeleteCount(args: ParsedArgs, count: number): number | undefined {
  const m = args.maxDelete;
  if (!m) return undefined;
  // Rounded up: a share of a nearly empty table is at least one entry, or the shipped rules'
  // 50% would stop every run on a namespace that holds one stale entry.
  // The share is PCT/100 in binary floating point: 7% of 100 comes to 7.000000000000001, which
  // must not round up to 8. A relative nudge below exact integers keeps them.
  return 'count' in m ? m.count : Math.ceil(m.share * count * (1 - 1e-12));
}

/** The limit a run uses (--limit and --max-delete, the smaller), and whether --max-delete set it. */
export function runLimit(args: ParsedArgs, count: number): { limit: number | undefined; byMaxDelete: boolean } {
  const cap = maxDeleteCount(args, count);
  if (cap === undefined || (args.limit !== undefined && args.limit <= cap)) return { limit: args.limit, byMaxDelete: false };
  return { limit: cap, byMaxDelete: true };
}

/** The line for a run that --max-delete stopped (more entries matched than it allows). */
export function maxDeleteLine(args: ParsedArgs, r: PurgeResult, cap: number): string {
  const m = args.maxDelete;
  const what = m && 'share' in m ? `${cap} (${+(m.share * 100).toFixed(2)}% of ${formatCount(r.tableSize)})` : String(cap);
  const done = r.dryRun
    ? `a purge would ${r.grace === null ? 'delete' : 'give the grace to'} ${formatCount(r.matched)} and stop`
    : r.grace === null
      ? `${formatCount(r.deleted)} deleted`
      : `${formatCount(r.graced)} given the grace`;
  return `stopped at --max-delete ${what}: more entries matched; ${done}. Check the selectors, or raise --max-delete`;
}

/** One purge of a run: the command line's (rule null), or one rule of a rules file, planned. */
export interface PurgeJob {
  readonly rule: string | null;
  /** The command line's options with the rule's selectors, grace, limit and max-delete. */
  readonly args: ParsedArgs;
  readonly plan: QueryPlan;
}

export async function purgeCommand(ct: Conntrack, args: ParsedArgs, plan: QueryPlan, signal: AbortSignal, log?: AuditLog, limit = args.limit, rule: string | null = null, showProgress = true): Promise<PurgeResult> {
  const progress = new Progress(showProgress && process.stderr.isTTY === true && !args.quiet);
  try {
    const result = await ct.purge({
      plan,
      dryRun: args.dryRun,
      limit,
      signal,
      logFd: log?.fd,
      ...(args.grace === undefined ? {} : { grace: args.grace }),
      ...(rule === null ? {} : { rule }),
      onProgress: (p) => {
        progress.update(() => `${args.dryRun || args.grace !== undefined ? 'matched' : 'purged'} ${formatCount(args.dryRun || args.grace !== undefined ? p.matched : p.deleted)}, scanned ${formatCount(p.scanned)}`);
      },
    });
    progress.clear();
    if (args.verbose && !args.json) {
      process.stderr.write(`query: ${plan.description}; method: ${result.method}; ${result.scanned} scanned${ct.netns ? `; netns ${ct.netns}` : ''}\n`);
    }
    return result;
  } catch (err) {
    throw logFailure(err, log);
  } finally {
    progress.clear();
  }
}

export function purgeSummary(r: PurgeResult): string {
  const secs = (r.durationMs / 1000).toFixed(r.durationMs < 10000 ? 2 : 1);
  const tail = [r.cancelled ? 'stopped early' : '', r.limitReached ? 'limit reached' : '', r.lostReports ? `${r.lostReports} batch reports lost` : '']
    .filter(Boolean)
    .join(', ');
  // Entries that arrived during the run can be matched too: then "N of M" would read as more
  // deleted than there were.
  const of = (n: number) => (n <= r.tableSize ? `${formatCount(n)} of ${formatCount(r.tableSize)} entries` : `${formatCount(n)} entries (the table held ${formatCount(r.tableSize)} when the run started)`);
  if (r.grace !== null) return `${graceHead(r, of)} in ${secs} s${tail ? `; ${tail}` : ''}`;
  // A kernel flush counts nothing: what it took is how much the table shrank meanwhile, which
  // other flows' arrivals and expiries change too.
  const head = r.dryRun
    ? `would purge ${of(r.matched)} (dry run)`
    : r.method === 'flush'
      ? `purged ${of(r.deleted)} (a kernel flush: the count is how much the table shrank)`
      : `purged ${of(r.deleted)} (${formatCount(r.matched)} matched, ${formatCount(r.vanished)} vanished)`;
  return `${head} in ${secs} s${tail ? `; ${tail}` : ''}`;
}

/** "gave 1,000 of 5,000 entries 60 s to show a packet (1,020 matched, ...)". */
function graceHead(r: PurgeResult, of: (n: number) => string): string {
  const left = [
    r.fixedTimeout ? `${formatCount(r.fixedTimeout)} with a fixed timeout` : '',
    r.offloaded ? `${formatCount(r.offloaded)} offloaded` : '',
    r.expiring ? `${formatCount(r.expiring)} due to expire sooner` : '',
  ].filter(Boolean);
  const kept = left.length ? `; left as they are: ${left.join(', ')}` : '';
  if (r.dryRun) return `would give ${of(r.matched - r.fixedTimeout - r.offloaded - r.expiring)} ${r.grace} s to show a packet (dry run, ${formatCount(r.matched)} matched${kept})`;
  return `gave ${of(r.graced)} ${r.grace} s to show a packet (${formatCount(r.matched)} matched, ${formatCount(r.vanished)} vanished${kept})`;
}

/** The line a one-shot run prints once it has waited the grace out. */
export function graceOutcomeLine(o: GraceOutcome): string {
  if (!o.complete) return `the wait for the grace was cut short: ${formatCount(o.expired)} expired so far, ${formatCount(o.alive)} not yet`;
  return `after the grace: ${formatCount(o.expired)} expired, ${formatCount(o.alive)} proved alive`;
}
