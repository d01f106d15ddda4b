/** `ctpurge [selectors] --every DUR`: the scheduled purge, metrics, and a clean stop. */
import type { Conntrack } from '../conntrack.js';
import { ConntrackError } from '../errors.js';
import { acquirePurgeLock } from '../lock.js';
import { PurgeMetrics } from '../metrics.js';
import { GraceWaits } from './graceWaits.js';
import { jobMetrics, metricsFileWriter, recordTableShape } from './jobMetrics.js';
import { closeServer, listen } from './metricsServer.js';
import { Purger, type PurgerRun } from '../purger.js';
import { formatDuration } from '../parse/duration.js';
import type { ParsedArgs } from './args.js';
import type { AuditLog } from './files.js';
import { logFailure, maxDeleteLine, purgeSummary, runLimit, type PurgeJob } from './purgeCommand.js';

/** How often the daemon reads the whole table for the by_state / by_idle gauges. */
const TABLE_METRICS_EVERY_MS = 60_000;

/**
 * Runs until SIGTERM/SIGINT (signal), then finishes the batch in flight, writes metrics and
 * resolves. Rejects (exit 1) when it must not go on: the audit log cannot be written, or the
 * --netns namespace was deleted or replaced (a handle on a dead namespace would purge nothing,
 * forever; the service manager's Restart= brings ctpurge back on the new one).
 * SIGHUP reopens --log (logrotate), rewrites --metrics-file at its path and, with --rules,
 * reads the rules again (reload): a file that does not validate keeps the rules running.
 * Each job (the command line's purge, or one rule) has its own Purger and metrics; their runs
 * take the namespace's purge lock in turn.
 */
export interface RulesReload {
  /** The rules file's content when the running rules were read. */
  key: string;
  /** Reads the file: its content, and its rules (throws UsageError when it does not validate). */
  load(): { key: string; jobs: PurgeJob[] };
}

export async function runDaemon(ct: Conntrack, args: ParsedArgs, firstJobs: readonly PurgeJob[], signal: AbortSignal, log?: AuditLog, reload?: RulesReload): Promise<void> {
  let running: { job: PurgeJob; purger: Purger; metrics: PurgeMetrics }[] = [];
  /** Metrics by rule name: a rule that stays across a reload keeps its counters. */
  const metricsByRule = new Map<string | null, PurgeMetrics>();
  const render = () => PurgeMetrics.renderAll(running.map((r) => r.metrics));
  const server = args.metricsListen ? await listen(render, args.metricsListen.host, args.metricsListen.port) : null;
  const metricsFile = args.metricsFile;
  const writeMetrics = metricsFile ? metricsFileWriter(async () => running[0]?.metrics.writeFile(metricsFile, render())) : async () => undefined;
  // The table's shape (entries by state and idle time) costs a dump of the whole table: read
  // at most once a minute, after a run, and only when metrics go somewhere. It goes with the
  // first job's metrics (without its rule label: it is the table's).
  let tableReadAt = -Infinity;
  const refreshTable = async (): Promise<boolean> => {
    const first = running[0]?.metrics;
    if (!first || (!args.metricsFile && !server) || Date.now() - tableReadAt < TABLE_METRICS_EVERY_MS) return false;
    tableReadAt = Date.now();
    // One set holds the table's shape (a reload may have made another set the first).
    for (const r of running.slice(1)) r.metrics.table = null;
    return recordTableShape(first, ct);
  };
  let fatal: unknown;
  const done = new AbortController();
  const fail = (err: unknown) => {
    fatal ??= err;
    done.abort();
  };
  // Reopening while a run writes would close the descriptor under it: a SIGHUP during a run
  // is served when no run is in flight (its lines go to the rotated file, none is lost).
  let inRun = 0;
  let reopenPending = false;
  const reopen = () => {
    reopenPending = false;
    try {
      log?.reopen();
    } catch (err) {
      process.stderr.write(`ctpurge: ${(err as Error).message}; still writing to the file opened before\n`);
    }
  };
  const sinkOf = () => (log?.file === '-' ? process.stderr : process.stdout);
  // The rules' runs take the namespace's lock in turn, in the order they asked: flock(2) would
  // make two of this process's own runs wait for each other, and time out after --lock-wait.
  let turns: Promise<void> = Promise.resolve();
  const takeTurn = (): Promise<() => void> => {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = turns;
    turns = turns.then(() => mine);
    return before.then(() => release);
  };
  const lockInTurn = async (stopSignal: AbortSignal) => {
    const endTurn = await takeTurn();
    try {
      const lock = await acquirePurgeLock(ct, args.lockWait, { signal: stopSignal });
      return {
        release: () => {
          lock.release();
          endTurn();
        },
      };
    } catch (err) {
      endTurn();
      throw err;
    }
  };
  // A grace's outcome is counted once it is over, without holding the lock or the next run. On
  // the way out the waits end: what has expired by then is counted, and in the last metrics.
  const graces = new GraceWaits({ quiet: args.quiet, json: args.json, sink: sinkOf });

  const start = (job: PurgeJob) => {
    const metrics = metricsByRule.get(job.rule) ?? jobMetrics(ct, job);
    metricsByRule.set(job.rule, metrics);
    const named = job.rule === null ? '' : `${job.rule}: `;
    // Whether this job's run in flight holds the log (its fd was asked for): a SIGHUP reopens
    // the log once no run holds it.
    let holdsLog = false;
    const runEnded = () => {
      if (holdsLog) inRun--;
      holdsLog = false;
      if (reopenPending && inRun === 0) reopen();
    };
    const purger = new Purger(ct, {
      query: job.plan,
      every: args.every as number,
      adaptive: args.adaptive,
      whenAbove: args.whenAbove,
      limit: job.args.maxDelete ? (count: number) => runLimit(job.args, count).limit as number : job.args.limit,
      dryRun: args.dryRun,
      ...(job.args.grace === undefined ? {} : { grace: job.args.grace }),
      ...(job.rule === null ? {} : { rule: job.rule }),
      // The Purger checks before each run that --netns still names the namespace it opened.
      lock: lockInTurn,
      logFd: log
        ? () => {
            if (reopenPending && inRun === 0) reopen();
            inRun++;
            holdsLog = true;
            return log.fd;
          }
        : undefined,
    });
    purger.on('run', (run: PurgerRun) => {
      runEnded();
      metrics.recordRun(run.result, run);
      void writeMetrics();
      void refreshTable().then((read) => (read ? writeMetrics() : undefined));
      const limit = job.args.maxDelete ? runLimit(job.args, run.count) : null;
      if (run.result?.limitReached && limit?.byMaxDelete) {
        // Counted as a failed run (the alerts see it); the next run tries again.
        metrics.recordError();
        void writeMetrics();
        process.stderr.write(`ctpurge: ${named}${maxDeleteLine(job.args, run.result, limit.limit ?? 0)}\n`);
      }
      const r = run.result;
      if (r?.settle && r.graced > 0) {
        void graces.wait({ rule: job.rule, run: r.run, settle: r.settle }, named, {}, (outcome) => {
          metrics.recordGrace(outcome);
          void writeMetrics();
        });
      }
      if (args.quiet) return;
      const next = `next run in ${formatDuration(run.nextInSeconds)}`;
      // With --log - the audit lines own stdout: the run lines go to stderr, as the one-shot's summary does.
      // Each line says when (a daemon's output often goes to a file, not to the journal).
      const time = new Date().toISOString();
      if (args.json) sinkOf().write(`${JSON.stringify({ time, ...(job.rule === null ? {} : { rule: job.rule }), ...run })}\n`);
      else if (run.skipped) sinkOf().write(`${time} ${named}skipped: table ${(run.usage * 100).toFixed(1)}% full, not above ${((args.whenAbove ?? 0) * 100).toFixed(0)}%; ${next}\n`);
      else if (r) sinkOf().write(`${time} ${named}${purgeSummary(r)} (run ${r.run}); ${next}\n`);
    });
    purger.on('error', (err: Error) => {
      runEnded();
      metrics.recordError();
      void writeMetrics();
      if (err instanceof ConntrackError && err.operation === 'netns') {
        const what = err.code === 'ENOENT' ? 'is gone (deleted with ip netns del?)' : 'was replaced by a new namespace';
        fail(new Error(`--netns: ${args.netns ?? err.netns} ${what}; exiting so the service manager can start ctpurge on the current one`));
        return;
      }
      if (err instanceof ConntrackError && err.operation === 'log') {
        fail(logFailure(err, log));
        return;
      }
      process.stderr.write(`ctpurge: ${named}${err.message}\n`);
    });
    return { job, purger, metrics };
  };

  // A reload (SIGHUP, also logrotate's): a file that changed and validates replaces the rules
  // once their runs in flight have ended; an unchanged file changes nothing.
  let rulesKey = reload?.key;
  let reloading: Promise<void> = Promise.resolve();
  const rulesText = (n: number) => `${n} rule${n === 1 ? '' : 's'}`;
  const reloadRules = () => {
    if (!reload) return;
    reloading = reloading
      .then(async () => {
        let next: { key: string; jobs: PurgeJob[] };
        try {
          next = reload.load();
        } catch (err) {
          process.stderr.write(`ctpurge: --rules: ${(err as Error).message}; keeping the ${rulesText(running.length)} loaded before\n`);
          return;
        }
        if (next.key === rulesKey) return;
        const old = running;
        // Let each run in flight end (its deletes and audit lines whole), then stop the schedule.
        await Promise.all(old.map(async (r) => {
          while (r.purger.running) await new Promise((resolve) => setTimeout(resolve, 50));
          await r.purger.stop();
        }));
        if (done.signal.aborted || signal.aborted) return;
        try {
          running = next.jobs.map(start);
        } catch (err) {
          running = old.map((r) => start(r.job));
          for (const r of running) r.purger.start();
          throw err;
        }
        rulesKey = next.key;
        for (const name of [...metricsByRule.keys()]) if (!next.jobs.some((j) => j.rule === name)) metricsByRule.delete(name);
        for (const r of running.slice(1)) r.metrics.table = null;
        tableReadAt = -Infinity;
        for (const r of running) r.purger.start();
        if (!args.quiet) sinkOf().write(`${new Date().toISOString()} --rules: loaded ${rulesText(next.jobs.length)} from ${args.rules}: ${next.jobs.map((j) => j.rule).join(', ')}\n`);
        void writeMetrics();
      })
      .catch((err: unknown) => {
        process.stderr.write(`ctpurge: --rules: reloading failed: ${(err as Error).message}; the rules loaded before run on\n`);
      });
  };
  const onHangup = () => {
    reopenPending = true;
    if (inRun === 0) reopen();
    reloadRules();
    void writeMetrics();
  };
  process.on('SIGHUP', onHangup);
  // The purgers' timers are unref'd (a Purger must never hold a host process open); the daemon
  // itself is what keeps this process alive.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    done.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  running = firstJobs.map(start);
  for (const r of running) r.purger.start();
  await stopped;
  await reloading;
  await Promise.all(running.map((r) => r.purger.stop()));
  await graces.end();
  clearInterval(keepAlive);
  process.off('SIGHUP', onHangup);
  await writeMetrics();
  if (server) await closeServer(server);
  if (fatal !== undefined) throw fatal;
}
