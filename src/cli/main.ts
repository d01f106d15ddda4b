/** The ctpurge command: parse, validate everything, then call the library. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Conntrack, type PurgeResult } from '../conntrack.js';
import type { GraceOutcome } from '../purge.js';
import { AbortError, ConntrackError } from '../errors.js';
import { kernelFeatures } from '../kernel.js';
import { planQuery, type QueryPlan } from '../plan.js';
import { allowFlushFor } from '../purge.js';
import { resolveNetns } from '../netns.js';
import { optionError, optionOf, parseArgs, UsageError, type ParsedArgs } from './args.js';
import { doctorCommand, renderDoctor } from './doctorCommand.js';
import { commandHelp } from './help.js';
import { listCommand } from './listCommand.js';
import { Output, PipeClosed } from './output.js';
import { graceOutcomeLine, maxDeleteLine, purgeCommand, purgeSummary, runLimit, type PurgeJob } from './purgeCommand.js';
// Rules files (--rules, check-rules) are read with the yaml package, loaded only for them:
// every other run starts without it (3.5 MB less at start-up, measured).
type RulesModule = typeof import('./rules.js');
import { collectStats, renderStats } from './statsCommand.js';
import { jobMetrics, recordTableShape, runDaemon } from './daemon.js';
import { acquirePurgeLock } from '../lock.js';
import { AuditLog, checkOutputFile, PidFile } from './files.js';
import { PurgeMetrics } from '../metrics.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** A purge that --max-delete stopped: more entries matched than it allows. */
export const EXIT_MAX_DELETE = 3;

function version(): string {
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** The threads the CLI dumps with (read ahead): it has no event loop to keep responsive (see OpenOptions.lanes). */
const CLI_LANES = 2;

/**
 * Validates what can be validated without the kernel, and plans the query once for the
 * commands (the handle uses the plan as it is); throws UsageError.
 */
function validate(args: ParsedArgs): QueryPlan {
  let plan: QueryPlan;
  try {
    // --max-delete needs each entry counted as it goes: no flush.
    const allowFlush = args.command === 'purge' && args.maxDelete === undefined && allowFlushFor({ dryRun: args.dryRun, limit: args.limit, logFd: args.log, grace: args.grace });
    plan = planQuery(args.query, kernelFeatures(), { lanes: CLI_LANES, allowFlush });
  } catch (err) {
    // The error names its field (fieldError): put the CLI's option in its place.
    throw optionError(err);
  }
  if (args.command === 'purge' && !plan.selective) {
    // What the query selects, not how many options were given: --mark 5/0 or --src 0.0.0.0/0
    // alone would still delete every entry (of a family or protocol).
    const why = plan.unselective.map((u) => `; ${optionOf(u.field)}: ${u.reason}`).join('');
    throw new UsageError(
      plan.empty
        ? 'refusing to purge without a selector: that would delete every entry. Give at least one, e.g. --unreplied --older 3600'
        : `refusing to purge: no selector narrows the table (${plan.description}${why}), so every such entry would go. Add one that does, e.g. --unreplied --older 3600`,
    );
  }
  if (args.netns !== undefined) {
    const file = resolveNetns(args.netns, '--netns');
    if (!existsSync(file)) {
      throw new UsageError(args.netns.includes('/') ? `--netns: ${file} does not exist` : `--netns: no network namespace named '${args.netns}' (see: ip netns list)`);
    }
  }
  return plan;
}

/**
 * The purges of a run: the command line's, or each rule of --rules FILE with the command
 * line's other options; validated and planned. A rule's error names the file, its line and
 * the rule. key: the rules file's text, read once (a daemon's reload compares it).
 */
function jobsOf(args: ParsedArgs, rulesModule: RulesModule | null): { key: string; jobs: PurgeJob[] } {
  if (args.rules === undefined || rulesModule === null) return { key: '', jobs: [{ rule: null, args, plan: validate(args) }] };
  const key = rulesModule.readRulesText(args.rules);
  const set = rulesModule.parseRules(key, args.rules);
  const jobs = set.rules.map((r) => {
    const ruleArgs: ParsedArgs = { ...args, command: 'purge', ...r.args };
    try {
      return { rule: r.name, args: ruleArgs, plan: validate(ruleArgs) };
    } catch (err) {
      // The message names the option (--idle: ...): the line of its key, else the rule's.
      const option = /^--([a-z-]+)/.exec(err instanceof Error ? err.message : '')?.[1];
      if (err instanceof UsageError) throw new UsageError(`${set.file}:${(option && r.keyLines[option]) ?? r.line}: ${r.name}: ${err.message}`);
      throw err;
    }
  });
  return { key, jobs };
}

function errorLine(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const ignoreHangup = () => undefined;

/** A reader that went away (`| head`, `| true`) is not an error: the exit code stays the command's. */
function ignoreClosedPipes(): void {
  const quiet = (err: NodeJS.ErrnoException) => {
    // Other failures belong to the command's Output, when it has one.
    if (err.code !== 'EPIPE' && process.stdout.listenerCount('error') === 1) throw err;
  };
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', quiet);
  // Nothing can be reported about stderr itself.
  if (process.stderr.listenerCount('error') === 0) process.stderr.on('error', () => undefined);
}

/** What bin/ctpurge.js hands over: a SIGHUP it caught while the modules loaded. */
export interface EarlySignals {
  hangupSeen(): boolean;
  releaseHangup(): void;
}

/** What a one-shot purge of one job left to do once the lock is released. */
interface PurgeDone {
  job: PurgeJob;
  result: PurgeResult;
  limit: number | undefined;
  stoppedByMax: boolean;
}

/**
 * One purge of a one-shot run, under the lock, and its summary line (prefixed with the rule's
 * name). The grace's wait comes after the lock is released (finishOneShot).
 */
async function purgeOneShot(ct: Conntrack, job: PurgeJob, out: Output, signal: AbortSignal, log: AuditLog | undefined): Promise<PurgeDone> {
  const { args, plan } = job;
  const run = runLimit(args, args.maxDelete ? (await ct.stats()).count : 0);
  const result = await purgeCommand(ct, args, plan, signal, log, run.limit, job.rule);
  // The summary first: what was deleted is said even when the metrics cannot be written.
  if (!args.json && !args.quiet) await summaryTo(out, log, `${named(job)}${purgeSummary(result)}\n`);
  // rsync's convention: more matched than --max-delete allows stops the run, and fails it.
  return { job, result, limit: run.limit, stoppedByMax: run.byMaxDelete && result.limitReached };
}

const named = (job: PurgeJob) => (job.rule === null ? '' : `${job.rule}: `);
/** With --log - the audit lines own stdout: the summaries go to stderr. */
const summaryTo = (out: Output, log: AuditLog | undefined, text: string) => (log?.file === '-' ? Promise.resolve(void process.stderr.write(text)) : out.write(text));

/**
 * The rest of a one-shot purge, once its grace (if any) was waited out: what expired; the JSON
 * line (after the wait: one line); the metrics of the run; the exit code (3 when --max-delete
 * stopped it).
 */
async function finishOneShot(ct: Conntrack, done: PurgeDone, outcome: GraceOutcome | null, out: Output, log: AuditLog | undefined): Promise<{ exit: number; metrics: PurgeMetrics }> {
  const { job, result, limit, stoppedByMax } = done;
  const { args, plan } = job;
  if (outcome && !args.json && !args.quiet) await summaryTo(out, log, `${named(job)}${graceOutcomeLine(outcome)}\n`);
  if (args.json) {
    const extra = { ...(outcome ? { graceOutcome: outcome } : {}), ...(args.maxDelete ? { maxDelete: limit, maxDeleteReached: stoppedByMax } : {}) };
    await out.write(`${JSON.stringify({ netns: ct.netns, ...(job.rule === null ? {} : { rule: job.rule }), query: plan.description, ...result, ...extra })}\n`);
  }
  const metrics = jobMetrics(ct, job);
  if (args.metricsFile) {
    metrics.recordRun(result, { count: result.tableSize - result.deleted, max: (await ct.stats()).max });
    if (outcome) metrics.recordGrace(outcome);
  }
  if (stoppedByMax) {
    process.stderr.write(`ctpurge: ${named(job)}${maxDeleteLine(args, result, limit ?? 0)}\n`);
    return { exit: EXIT_MAX_DELETE, metrics };
  }
  return { exit: EXIT_OK, metrics };
}

export async function main(argv: string[], early?: EarlySignals): Promise<number> {
  ignoreClosedPipes();
  // Until the command is known, a hangup is held (bin/ctpurge.js): a purge ignores it, any other
  // command gets the default action it would have had.
  const settleHangup = (purge: boolean) => {
    if (!early) return;
    early.releaseHangup();
    if (!purge && early.hangupSeen()) process.kill(process.pid, 'SIGHUP');
    early = undefined;
  };
  let args: ParsedArgs;
  let plan: QueryPlan;
  let jobs: PurgeJob[] = [];
  let rulesKey = '';
  let rulesModule: RulesModule | null = null;
  let log: AuditLog | undefined;
  try {
    args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(commandHelp(args.command));
      return EXIT_OK;
    }
    if (args.version) {
      process.stdout.write(`ctpurge ${version()}\n`);
      return EXIT_OK;
    }
    if (args.command === 'check-rules') {
      rulesModule = await import('./rules.js');
      ({ jobs } = jobsOf(args, rulesModule));
      if (args.json) {
        const rules = jobs.map((j) => ({ name: j.rule, query: j.plan.description, selective: j.plan.selective, grace: j.args.grace ?? null, limit: j.args.limit ?? null, maxDelete: j.args.maxDelete ?? null }));
        process.stdout.write(`${JSON.stringify({ file: args.rules, rules })}\n`);
        return EXIT_OK;
      }
      process.stdout.write(`${args.rules}: ${jobs.length} rule${jobs.length === 1 ? '' : 's'}\n${jobs.map((j) => `  ${j.rule}: ${j.plan.description}${j.args.grace === undefined ? '' : `; grace ${j.args.grace} s`}${j.args.maxDelete ? `; max-delete ${'count' in j.args.maxDelete ? j.args.maxDelete.count : `${+(j.args.maxDelete.share * 100).toFixed(2)}%`}` : ''}${j.args.limit === undefined ? '' : `; limit ${j.args.limit}`}\n`).join('')}`);
      return EXIT_OK;
    }
    if (args.command === 'purge') {
      if (args.rules !== undefined) rulesModule = await import('./rules.js');
      ({ key: rulesKey, jobs } = jobsOf(args, rulesModule));
      plan = (jobs[0] as PurgeJob).plan;
    } else {
      plan = validate(args);
    }
    // Before the table is touched: a file that must not be written is a usage error (exit 2).
    if (args.metricsFile) checkOutputFile('--metrics-file', args.metricsFile, true);
    if (args.pidFile) checkOutputFile('--pid-file', args.pidFile);
    if (args.log && args.command === 'purge') log = AuditLog.open(args.log);
  } catch (err) {
    settleHangup(false);
    if (err instanceof UsageError) {
      process.stderr.write(`ctpurge: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }

  const out = new Output();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // logrotate's postrotate signals every ctpurge writing the log: a one-shot purge finishes
  // (its lines land in the rotated file) instead of dying, from its first moment on; a daemon
  // adds its own handler, which reopens the log, once it runs.
  if (args.command === 'purge') process.on('SIGHUP', ignoreHangup);
  settleHangup(args.command === 'purge');
  let ct: Conntrack | undefined;
  try {
    ct = await Conntrack.open(args.netns === undefined ? { lanes: CLI_LANES } : { netns: args.netns, lanes: CLI_LANES });
    switch (args.command) {
      case 'purge': {
        if (args.every !== undefined) {
          const pid = args.pidFile ? PidFile.write(args.pidFile) : undefined;
          try {
            const rules = args.rules;
            const m = rulesModule;
            const reload = rules === undefined || m === null ? undefined : { key: rulesKey, load: () => jobsOf(args, m) };
            await runDaemon(ct, args, jobs, abort.signal, log, reload);
          } finally {
            pid?.remove();
          }
          break;
        }
        // A SIGTERM while waiting for another purge ends the wait at once: nothing is deleted.
        const lock = await acquirePurgeLock(ct.netns, args.lockWait, { signal: abort.signal }).catch((err: unknown) => {
          if (err instanceof AbortError) return null;
          throw err;
        });
        if (lock === null) {
          if (!args.quiet) process.stderr.write('ctpurge: stopped while waiting for the purge lock; nothing was deleted\n');
          if (args.json) await out.write(`${JSON.stringify({ netns: ct.netns, query: plan.description, started: false, cancelled: true, matched: 0, deleted: 0 })}\n`);
          break;
        }
        // Each job in turn under the one lock: the command line's purge, or each rule. The
        // graces' waits come after it is released, all at once.
        const done: PurgeDone[] = [];
        try {
          for (const job of jobs) {
            if (abort.signal.aborted) break;
            done.push(await purgeOneShot(ct, job, out, abort.signal, log));
          }
        } finally {
          lock.release();
        }
        const outcomes = await Promise.all(done.map((d) => (d.result.settle && !d.job.args.noWait ? d.result.settle({ signal: abort.signal }) : null)));
        let exit = EXIT_OK;
        const sets: PurgeMetrics[] = [];
        for (const [i, d] of done.entries()) {
          const finished = await finishOneShot(ct, d, outcomes[i] ?? null, out, log);
          sets.push(finished.metrics);
          if (finished.exit !== EXIT_OK) exit = finished.exit;
        }
        if (args.metricsFile && sets.length > 0) {
          await recordTableShape(sets[0] as PurgeMetrics, ct);
          await (sets[0] as PurgeMetrics).writeFile(args.metricsFile, PurgeMetrics.renderAll(sets)).catch((err: unknown) => {
            throw Object.assign(new Error(`--metrics-file: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code });
          });
        }
        if (exit !== EXIT_OK) return exit;
        break;
      }
      case 'list':
        await listCommand(ct, args, plan, out, abort.signal);
        break;
      case 'watch': {
        // The lines are formatted in C++, as `list` formats its own; each says when it was read.
        for await (const batch of ct.eventLines({ query: plan.query, signal: abort.signal, format: args.json ? 'ndjson' : 'conntrack', timestamps: true })) {
          if (batch.lost > 0) {
            process.stderr.write(`ctpurge: ${batch.lost} event overflow(s): the kernel dropped events\n`);
            if (args.json) await out.write(`${JSON.stringify({ type: 'lost', time: new Date().toISOString(), count: batch.lost })}\n`);
          }
          if (batch.text.length > 0) await out.write(batch.text);
        }
        break;
      }
      case 'stats': {
        const report = await collectStats(ct, args, plan);
        await out.write(args.json ? `${JSON.stringify(report)}\n` : renderStats(report));
        break;
      }
      case 'doctor': {
        const report = await doctorCommand(ct, args);
        await out.write(args.json ? `${JSON.stringify(report)}\n` : renderDoctor(report));
        break;
      }
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof PipeClosed) return EXIT_OK;
    if (err instanceof UsageError) {
      process.stderr.write(`ctpurge: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ConntrackError && err.operation === 'open' && args.netns !== undefined && (err.code === 'ENOENT' || err.code === 'EINVAL')) {
      process.stderr.write(`ctpurge: --netns: ${err.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`ctpurge: ${errorLine(err)}\n`);
    if (args.verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT_FAILURE;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // The SIGHUP handler stays: a hangup while the process winds down must not kill it (exit 129).
    await ct?.close();
    log?.close();
  }
}
