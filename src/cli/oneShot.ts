/**
 * A one-shot purge (no --every): the namespace's lock, each job (the command line's purge, or
 * each rule) in turn under it with its summary line, then the graces waited out after the lock
 * is released, the JSON lines and the metrics of each job.
 */
import type { Conntrack, PurgeResult } from '../conntrack.js';
import { AbortError } from '../errors.js';
import { acquirePurgeLock } from '../lock.js';
import type { PurgeMetrics } from '../metrics.js';
import type { GraceOutcome } from '../purge.js';
import type { ParsedArgs } from './args.js';
import type { AuditLog } from './files.js';
import { jobMetrics } from './jobMetrics.js';
import type { Output } from './output.js';
import { graceOutcomeLine, maxDeleteLine, purgeCommand, purgeSummary, runLimit, type PurgeJob } from './purgeCommand.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** A purge that --max-delete stopped: more entries matched than it allows. */
export const EXIT_MAX_DELETE = 3;

/** What a one-shot purge of one job left to do once the lock is released. */
interface PurgeDone {
  job: PurgeJob;
  result: PurgeResult;
  limit: number | undefined;
  stoppedByMax: boolean;
}

/** Where a run's lines go, and what starts each (the namespace's name, with --all-netns). */
export interface RunOutput {
  out: Output;
  log: AuditLog | undefined;
  prefix: string;
  /** A progress line on a terminal (default true); off where runs go on side by side. */
  progress?: boolean;
  /** Record each job's run in its metrics (default: with --metrics-file). */
  metrics?: boolean;
}

/** A grace given and not waited for (--no-wait): its outcome, for whoever waits for it. */
export interface PendingGrace {
  rule: string | null;
  run: string;
  settle: NonNullable<PurgeResult['settle']>;
}

/** What a one-shot purge of one namespace comes to. */
export interface OneShotResult {
  /** EXIT_OK, or EXIT_MAX_DELETE when --max-delete stopped a job. */
  exit: number;
  /** Each job's metrics. */
  metrics: PurgeMetrics[];
  /** The graces not waited for (--no-wait). */
  pending: PendingGrace[];
}

/**
 * The purge of each job on one namespace, under its lock, then each job's grace waited out (not
 * with --no-wait), its lines and its metrics; null when a signal ended the wait for the lock
 * (nothing was deleted).
 */
export async function oneShotPurge(ct: Conntrack, args: ParsedArgs, jobs: readonly PurgeJob[], to: RunOutput, signal: AbortSignal): Promise<OneShotResult | null> {
  const locked = await purgeLocked(ct, args, jobs, to, signal);
  return locked === null ? null : locked.finish();
}

/**
 * oneShotPurge in its two steps: the jobs under the lock (this), then finish(): the graces'
 * waits, after the lock is released, all at once, and each job's lines and metrics. With
 * --all-netns the waits go on beside the other namespaces' purges.
 */
export async function purgeLocked(ct: Conntrack, args: ParsedArgs, jobs: readonly PurgeJob[], to: RunOutput, signal: AbortSignal): Promise<{ finish(): Promise<OneShotResult> } | null> {
  // A SIGTERM while waiting for another purge ends the wait at once: nothing is deleted.
  const lock = await acquirePurgeLock(ct, args.lockWait, { signal }).catch((err: unknown) => {
    if (err instanceof AbortError) return null;
    throw err;
  });
  if (lock === null) {
    if (!args.quiet) process.stderr.write(`ctpurge: ${to.prefix}stopped while waiting for the purge lock; nothing was deleted\n`);
    if (args.json) await to.out.write(`${JSON.stringify({ netns: ct.netns, ...nameOf(ct), query: jobs[0]?.plan.description, started: false, cancelled: true, matched: 0, deleted: 0 })}\n`);
    return null;
  }
  // Each job in turn under the one lock.
  const done: PurgeDone[] = [];
  try {
    for (const job of jobs) {
      if (signal.aborted) break;
      done.push(await purgeJob(ct, job, to, signal));
    }
  } finally {
    lock.release();
  }
  return {
    async finish() {
      const outcomes = await Promise.all(done.map((d) => (d.result.settle && !d.job.args.noWait ? d.result.settle({ signal }) : null)));
      let exit = EXIT_OK;
      const metrics: PurgeMetrics[] = [];
      for (const [i, d] of done.entries()) {
        const finished = await finishJob(ct, d, outcomes[i] ?? null, to);
        metrics.push(finished.metrics);
        if (finished.exit !== EXIT_OK) exit = finished.exit;
      }
      const pending = done.flatMap(({ job, result }) => (result.settle && result.graced > 0 && job.args.noWait ? [{ rule: job.rule, run: result.run, settle: result.settle }] : []));
      return { exit, metrics, pending };
    },
  };
}

/** The namespace's name in JSON lines, where it is not its path. */
export const nameOf = (ct: Conntrack) => (ct.netnsName !== null && ct.netnsName !== ct.netns ? { netnsName: ct.netnsName } : {});

/** One job's purge, under the lock, and its summary line. The grace's wait comes after the lock is released (finishJob). */
async function purgeJob(ct: Conntrack, job: PurgeJob, to: RunOutput, signal: AbortSignal): Promise<PurgeDone> {
  const { args, plan } = job;
  const run = runLimit(args, args.maxDelete ? (await ct.stats()).count : 0);
  const result = await purgeCommand(ct, args, plan, signal, to.log, run.limit, job.rule, to.progress !== false);
  // The summary first: what was deleted is said even when the metrics cannot be written.
  if (!args.json && !args.quiet) await summaryTo(to, `${named(to, job)}${purgeSummary(result)}\n`);
  // rsync's convention: more matched than --max-delete allows stops the run, and fails it.
  return { job, result, limit: run.limit, stoppedByMax: run.byMaxDelete && result.limitReached };
}

const named = (to: RunOutput, job: PurgeJob) => `${to.prefix}${job.rule === null ? '' : `${job.rule}: `}`;
/** With --log - the audit lines own stdout: the summaries go to stderr. */
const summaryTo = (to: RunOutput, text: string) => (to.log?.file === '-' ? Promise.resolve(void process.stderr.write(text)) : to.out.write(text));

/**
 * The rest of a job's purge, once its grace (if any) was waited out: what expired; the JSON
 * line (after the wait: one line); the metrics of the run; the exit code (3 when --max-delete
 * stopped it).
 */
async function finishJob(ct: Conntrack, done: PurgeDone, outcome: GraceOutcome | null, to: RunOutput): Promise<{ exit: number; metrics: PurgeMetrics }> {
  const { job, result, limit, stoppedByMax } = done;
  const { args, plan } = job;
  if (outcome && !args.json && !args.quiet) await summaryTo(to, `${named(to, job)}${graceOutcomeLine(outcome)}\n`);
  if (args.json) {
    const extra = { ...(outcome ? { graceOutcome: outcome } : {}), ...(args.maxDelete ? { maxDelete: limit, maxDeleteReached: stoppedByMax } : {}) };
    await to.out.write(`${JSON.stringify({ netns: ct.netns, ...nameOf(ct), ...(job.rule === null ? {} : { rule: job.rule }), query: plan.description, ...result, ...extra })}\n`);
  }
  const metrics = jobMetrics(ct, job);
  if (args.metricsFile || to.metrics) {
    metrics.recordRun(result, { count: result.tableSize - result.deleted, max: (await ct.stats()).max });
    if (outcome) metrics.recordGrace(outcome);
    // A run --max-delete stopped is a failed run, as in a daemon: the shipped alerts see it.
    if (stoppedByMax) metrics.recordError();
  }
  if (stoppedByMax) {
    process.stderr.write(`ctpurge: ${named(to, job)}${maxDeleteLine(args, result, limit ?? 0)}\n`);
    return { exit: EXIT_MAX_DELETE, metrics };
  }
  return { exit: EXIT_OK, metrics };
}
