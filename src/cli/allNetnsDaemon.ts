/**
 * `ctpurge --all-netns --every DUR`: each run finds the namespaces again (containers come and
 * go) and purges each job in each, several at once, as the one-shot --all-netns does. Metrics
 * carry a netns label with the namespace's name: the METRICS_TOP_NAMESPACES namespaces with the
 * most entries have series of their own, the rest are summed into netns="other", so the number
 * of series stays bounded however many namespaces the host has.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PurgeMetrics } from '../metrics.js';
import type { Conntrack } from '../conntrack.js';
import type { NamespaceInfo } from '../namespaces.js';
import { formatDuration } from '../parse/duration.js';
import { discover, eachNamespace, label } from './allNetns.js';
import type { ParsedArgs } from './args.js';
import type { RulesReload } from './daemon.js';
import type { AuditLog } from './files.js';
import { formatCount } from './format.js';
import { closeServer, listen } from './metricsServer.js';
import { GraceWaits } from './graceWaits.js';
import { EXIT_FAILURE, EXIT_OK, nameOf, oneShotPurge, type PendingGrace } from './oneShot.js';
import type { GraceOutcome } from '../purge.js';
import { Output } from './output.js';
import { metricsFileWriter } from './jobMetrics.js';
import type { PurgeJob } from './purgeCommand.js';

/** Namespaces with series of their own; the others are summed into netns="other". */
export const METRICS_TOP_NAMESPACES = 20;

/** One namespace's part of a run. */
interface NamespaceRun {
  entries: number;
  max: number;
  skipped: boolean;
  sets: PurgeMetrics[];
}

/** Adds a run's metrics (a fresh set per job) into the set that keeps them across runs. */
function accumulate(into: PurgeMetrics, run: PurgeMetrics): void {
  into.runs += run.runs;
  into.deleted += run.deleted;
  into.matched += run.matched;
  into.errors += run.errors;
  into.graced += run.graced;
  into.lastRunTimestamp = Math.max(into.lastRunTimestamp, run.lastRunTimestamp);
  into.lastRunDuration = Math.max(into.lastRunDuration, run.lastRunDuration);
  into.max = run.max;
}

export async function runAllNetnsDaemon(args: ParsedArgs, firstJobs: readonly PurgeJob[], signal: AbortSignal, log: AuditLog | undefined, reload: RulesReload | undefined): Promise<number> {
  let jobs = firstJobs;
  const every = args.every as number;
  // By namespace name, then by rule: the sets that keep counting across runs.
  const own = new Map<string, Map<string | null, PurgeMetrics>>();
  const other = new Map<string | null, PurgeMetrics>();
  const setOf = (where: Map<string | null, PurgeMetrics>, netns: string, rule: string | null) => {
    let m = where.get(rule);
    if (!m) where.set(rule, (m = new PurgeMetrics(rule === null ? { netns } : { netns, rule }, { netns })));
    return m;
  };
  const render = () => PurgeMetrics.renderAll([...[...own.values()].flatMap((m) => [...m.values()]), ...other.values()]);
  const server = args.metricsListen ? await listen(render, args.metricsListen.host, args.metricsListen.port) : null;
  const metricsFile = args.metricsFile;
  const writeMetrics = metricsFile ? metricsFileWriter(() => new PurgeMetrics().writeFile(metricsFile, render())) : async () => undefined;
  // SIGHUP (logrotate): the log is reopened and the rules file read again between runs.
  let hangup = false;
  let inRun = false;
  const betweenRuns = () => {
    if (!hangup) return;
    hangup = false;
    try {
      log?.reopen();
    } catch (err) {
      process.stderr.write(`ctpurge: ${(err as Error).message}; still writing to the file opened before\n`);
    }
    if (!reload) return;
    try {
      const next = reload.load();
      if (next.key !== reload.key) {
        jobs = next.jobs;
        reload.key = next.key;
        if (!args.quiet) sink().write(`${new Date().toISOString()} --rules: loaded ${next.jobs.length} rules from ${args.rules}\n`);
      }
    } catch (err) {
      process.stderr.write(`ctpurge: --rules: ${(err as Error).message}; keeping the rules loaded before\n`);
    }
  };
  const onHangup = () => {
    hangup = true;
    if (!inRun) betweenRuns();
  };
  process.on('SIGHUP', onHangup);
  const sink = () => (log?.file === '-' ? process.stderr : process.stdout);
  // The graces' outcomes: counted once each is over, in the series the namespace has (its own,
  // or "other", as the last run ranked it), with a line each. A grace that ends before the run
  // that gave it has ranked its namespace waits for that ranking (unranked). On the way out the
  // waits end: what has expired by then is counted, and in the last metrics.
  const graces = new GraceWaits({ quiet: args.quiet, json: args.json, sink });
  /** The namespaces the last run summed into "other". */
  let othered = new Set<string>();
  const unranked: { name: string; rule: string | null; outcome: GraceOutcome }[] = [];
  /** Counts an outcome in its namespace's series; false when no run has ranked it yet. */
  const recordGrace = (name: string, rule: string | null, outcome: GraceOutcome): boolean => {
    const mine = own.get(name);
    if (mine) setOf(mine, name, rule).recordGrace(outcome);
    else if (othered.has(name)) setOf(other, 'other', rule).recordGrace(outcome);
    else return false;
    return true;
  };
  const awaitGrace = (ct: Conntrack, info: NamespaceInfo, grace: PendingGrace): Promise<void> =>
    graces.wait(grace, `${label(info)}: ${grace.rule === null ? '' : `${grace.rule}: `}`, { netns: ct.netns, ...nameOf(ct) }, (outcome) => {
      // Not ranked yet: during a run, the ranking at its end places it; between runs, the
      // namespace has gone from the runs since, and its series with it (as when it drops out
      // of the busiest 20).
      if (!recordGrace(info.name, grace.rule, outcome) && inRun) unranked.push({ name: info.name, rule: grace.rule, outcome });
      void writeMetrics();
    });
  const out = new Output();
  let exit = EXIT_OK;
  let warned = false;
  try {
    while (!signal.aborted) {
      inRun = true;
      const started = Date.now();
      // A grace's outcome is waited for beside the runs, as the one-namespace daemon does
      // (awaitGrace): a run does not wait for it, nor the next run.
      const runJobs = jobs.map((j) => ({ ...j, args: { ...j.args, noWait: true } }));
      // Unreadable namespace files are said on the first run (each run would repeat it).
      const infos = await discover(args.quiet || warned);
      warned = true;
      const visits = await eachNamespace(infos, async (ct, info, hold): Promise<NamespaceRun> => {
        const s = await ct.stats();
        if (s.count === 0 || (args.whenAbove !== undefined && s.usage <= args.whenAbove)) return { entries: s.count, max: s.max, skipped: true, sets: [] };
        const prefix = `${new Date().toISOString()} ${label(info)}: `;
        const r = await oneShotPurge(ct, args, runJobs, { out, log, prefix, progress: false, metrics: true }, signal);
        // The handle stays open until the grace is over (its entries are looked up there).
        for (const grace of r?.pending ?? []) hold(awaitGrace(ct, info, grace));
        return { entries: r?.metrics[0]?.entries ?? s.count, max: s.max, skipped: false, sets: r?.metrics ?? [] };
      });
      inRun = false;
      betweenRuns();
      // The namespaces with the most entries keep series of their own; the rest go to "other".
      const ranked = visits.filter((v) => v.value || v.error).sort((a, b) => (b.value?.entries ?? 0) - (a.value?.entries ?? 0));
      const top = new Set(ranked.slice(0, METRICS_TOP_NAMESPACES).map((v) => v.info.name));
      othered = new Set(ranked.slice(METRICS_TOP_NAMESPACES).map((v) => v.info.name));
      for (const name of [...own.keys()]) if (!top.has(name)) own.delete(name);
      for (const m of other.values()) m.entries = 0;
      let deleted = 0;
      let entries = 0;
      for (const v of ranked) {
        const name = v.info.name;
        const where = top.has(name) ? (own.get(name) ?? own.set(name, new Map()).get(name)!) : other;
        const netns = top.has(name) ? name : 'other';
        if (v.error) {
          // Counted on the first rule's series (the command line's purge has no rule).
          setOf(where, netns, runJobs[0]?.rule ?? null).recordError();
          process.stderr.write(`ctpurge: ${label(v.info)}: ${v.error.message}\n`);
          continue;
        }
        const run = v.value as NamespaceRun;
        entries += run.entries;
        for (const [i, set] of (run.skipped ? [] : run.sets).entries()) {
          const into = setOf(where, netns, runJobs[i]?.rule ?? null);
          accumulate(into, set);
          deleted += set.deleted;
        }
        // Every namespace's table is counted, purged or not: the gauge sums "other"'s tables.
        for (const job of runJobs) {
          const into = setOf(where, netns, job.rule);
          into.entries = netns === 'other' ? into.entries + run.entries : run.entries;
          into.max = run.max;
          into.interval = every;
          // A namespace skipped (an empty table, or not above --when-above) was still run: the
          // alert on the last run's age must not fire for it.
          if (run.skipped) {
            into.runs++;
            into.lastRunTimestamp = Math.max(into.lastRunTimestamp, Date.now() / 1000);
          }
        }
      }
      // The graces that ended during this run, now that their namespaces are ranked.
      for (const u of unranked.splice(0)) recordGrace(u.name, u.rule, u.outcome);
      await writeMetrics();
      const gone = visits.filter((v) => v.gone !== undefined);
      if (!args.quiet) {
        for (const v of gone) process.stderr.write(`ctpurge: ${label(v.info)}: skipped, the namespace is gone (${v.gone})\n`);
        const failed = visits.filter((v) => v.error).length;
        const line = { time: new Date().toISOString(), namespaces: visits.length, purged: ranked.filter((v) => v.value && !v.value.skipped).length, gone: gone.length, failed, deleted, entries, durationMs: Date.now() - started, nextInSeconds: every };
        sink().write(
          args.json
            ? `${JSON.stringify({ allNetns: true, ...line })}\n`
            : `${line.time} all namespaces: ${formatCount(deleted)} deleted, ${formatCount(entries)} entries left in ${formatCount(line.namespaces)} namespaces (${line.purged} purged, ${gone.length} gone, ${failed} failed) in ${(line.durationMs / 1000).toFixed(2)} s; next run in ${formatDuration(every)}\n`,
        );
      }
      await sleep(every * 1000, undefined, { signal }).catch(() => undefined);
    }
  } catch (err) {
    process.stderr.write(`ctpurge: ${(err as Error).message}\n`);
    exit = EXIT_FAILURE;
  } finally {
    process.off('SIGHUP', onHangup);
    await graces.end();
    await writeMetrics();
    if (server) await closeServer(server);
  }
  return exit;
}
