/** The ctpurge command: parse, validate everything, then call the library. */
import { lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Conntrack } from '../conntrack.js';
import { ConntrackError } from '../errors.js';
import { kernelFeatures } from '../kernel.js';
import { planQuery, type QueryPlan } from '../plan.js';
import { allowFlushFor } from '../purge.js';
import { resolveNetns } from '../netns.js';
import type { PurgeMetrics } from '../metrics.js';
import { optionError, optionOf, parseArgs, UsageError, type ParsedArgs } from './args.js';
import { Output, PipeClosed } from './output.js';
import type { PurgeJob } from './purgeCommand.js';
import type { RulesReload } from './daemon.js';
import { AuditLog, checkOutputFile, PidFile } from './files.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneShotPurge } from './oneShot.js';
// Each command's module is loaded when it runs: a purge starts without the daemon's HTTP server,
// doctor, stats or list (and rules files need the yaml package, 3.5 MB): every module loaded
// is start-up time, which is a large share of a CLI run on a small table.
type RulesModule = typeof import('./rules.js');

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
    // lstat, not existsSync: a file this user may not look at exists all the same (EACCES is
    // a runtime failure when it is opened, with its own hint), only ENOENT is "no such".
    let missing = false;
    try {
      lstatSync(file);
    } catch (err) {
      missing = (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR';
    }
    if (missing) {
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

/** The error's message, with its hint where the message does not carry it yet (errors made in TypeScript: the lock, the audit log). */
function errorLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const hint = err instanceof ConntrackError ? err.hint : undefined;
  return hint && !err.message.includes(hint) ? `${err.message} (${hint})` : err.message;
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
  /** A SIGTERM or SIGINT that came before main() had its own handlers, or null. */
  stopSeen?(): string | null;
  releaseStop?(): void;
}

/** stats, doctor and the purge (one-shot or --every) over every namespace of the host. */
async function allNetnsCommand(args: ParsedArgs, plan: QueryPlan, jobs: PurgeJob[], out: Output, log: AuditLog | undefined, signal: AbortSignal, reload: RulesReload | undefined): Promise<number> {
  const m = await import('./allNetns.js');
  switch (args.command) {
    case 'stats': {
      const r = await m.collectAllStats(plan);
      await out.write(args.json ? `${JSON.stringify(r)}\n` : m.renderAllStats(r, !plan.empty));
      return r.failed.length > 0 ? EXIT_FAILURE : EXIT_OK;
    }
    case 'top': {
      const source = m.allNetnsTopSource();
      try {
        return await (await import('./top.js')).topCommand(source, args, plan, out, signal);
      } finally {
        await source.close();
      }
    }
    case 'doctor': {
      const r = await m.collectAllDoctor();
      await out.write(args.json ? `${JSON.stringify(r)}\n` : m.renderAllDoctor(r));
      return r.failed.length > 0 ? EXIT_FAILURE : EXIT_OK;
    }
    default: {
      if (args.every !== undefined) {
        const { runAllNetnsDaemon } = await import('./allNetnsDaemon.js');
        return await PidFile.around(args.pidFile, () => runAllNetnsDaemon(args, jobs, signal, log, reload));
      }
      const r = await m.purgeAllNetns(args, jobs, out, log, signal);
      if (args.metricsFile && r.metrics.length > 0) await (await import('./jobMetrics.js')).writeMetricsFile(args.metricsFile, r.metrics);
      return r.exit;
    }
  }
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
      process.stdout.write((await import('./help.js')).commandHelp(args.command));
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
  // A stop while the modules loaded (bin/ctpurge.js) stops the command now, as one that came
  // just after this point would.
  early?.releaseStop?.();
  if (early?.stopSeen?.()) abort.abort();
  // logrotate's postrotate signals every ctpurge writing the log: a one-shot purge finishes
  // (its lines land in the rotated file) instead of dying, from its first moment on; a daemon
  // adds its own handler, which reopens the log, once it runs.
  if (args.command === 'purge') process.on('SIGHUP', ignoreHangup);
  settleHangup(args.command === 'purge');
  let ct: Conntrack | undefined;
  try {
    const rulesReload = (m: RulesModule | null) => (args.rules === undefined || m === null ? undefined : { key: rulesKey, load: () => jobsOf(args, m) });
    if (args.allNetns) return await allNetnsCommand(args, plan, jobs, out, log, abort.signal, rulesReload(rulesModule));
    ct = await Conntrack.open(args.netns === undefined ? { lanes: CLI_LANES } : { netns: args.netns, lanes: CLI_LANES });
    switch (args.command) {
      case 'purge': {
        if (args.every !== undefined) {
          const { runDaemon } = await import('./daemon.js');
          const daemonCt = ct;
          await PidFile.around(args.pidFile, () => runDaemon(daemonCt, args, jobs, abort.signal, log, rulesReload(rulesModule)));
          break;
        }
        const run = await oneShotPurge(ct, args, jobs, { out, log, prefix: '' }, abort.signal);
        if (run === null) break;
        if (args.metricsFile && run.metrics.length > 0) {
          const { recordTableShape, writeMetricsFile } = await import('./jobMetrics.js');
          await recordTableShape(run.metrics[0] as PurgeMetrics, ct);
          await writeMetricsFile(args.metricsFile, run.metrics);
        }
        if (run.exit !== EXIT_OK) return run.exit;
        break;
      }
      case 'list': {
        const { listCommand } = await import('./listCommand.js');
        await listCommand(ct, args, plan, out, abort.signal);
        break;
      }
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
        const { collectStats, renderStats } = await import('./statsCommand.js');
        const report = await collectStats(ct, args, plan);
        await out.write(args.json ? `${JSON.stringify(report)}\n` : renderStats(report));
        break;
      }
      case 'top': {
        const [{ topCommand }, { readingOf }] = await Promise.all([import('./top.js'), import('./topModel.js')]);
        const handle = ct;
        return await topCommand({ netns: ct.netnsName, ct, read: async () => ({ reading: readingOf(await handle.stats()) }) }, args, plan, out, abort.signal);
      }
      case 'doctor': {
        const { doctorCommand, renderDoctor } = await import('./doctorCommand.js');
        const report = await doctorCommand(ct, args.netns);
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
