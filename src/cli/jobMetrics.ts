/** The metrics of a purge job (a rule, or the command line's purge) and of the table it ran on. */
import type { Conntrack } from '../conntrack.js';
import { PurgeMetrics } from '../metrics.js';
import type { PurgeJob } from './purgeCommand.js';

/**
 * Reads the whole table's shape into the metrics (one dump). It is a bonus: a failure is
 * reported on stderr and never fails the purge that ran. True when it was read.
 */
export async function recordTableShape(metrics: PurgeMetrics, ct: Conntrack): Promise<boolean> {
  try {
    metrics.recordTable(await ct.summary({}, { talkers: false }));
    return true;
  } catch (err) {
    process.stderr.write(`ctpurge: reading the table for metrics: ${(err as Error).message}\n`);
    return false;
  }
}

/** The labels on every series of a handle's metrics: the namespace as the operator named it. */
export function metricsLabels(ct: Conntrack): Record<string, string> {
  return ct.netnsName ? { netns: ct.netnsName } : {};
}

/** A rule's metrics: the handle's labels, and its name as rule="..." (not on the table's shape). */
export function jobMetrics(ct: Conntrack, job: PurgeJob): PurgeMetrics {
  const base = metricsLabels(ct);
  return new PurgeMetrics(job.rule === null ? base : { ...base, rule: job.rule }, base);
}

/** Writes the sets as one exposition to --metrics-file; an error names the option and keeps its code. */
export async function writeMetricsFile(file: string, sets: readonly PurgeMetrics[]): Promise<void> {
  await (sets[0] ?? new PurgeMetrics()).writeFile(file, PurgeMetrics.renderAll(sets)).catch((err: unknown) => {
    throw Object.assign(new Error(`--metrics-file: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code });
  });
}

/**
 * A daemon's --metrics-file writer: one write at a time, and a write asked for while one is in
 * flight comes after it, with the counters as they are then (several asked meanwhile make one).
 * Each write renames a new file into place, so two at once could leave the older counters last.
 * The promise returned settles once the counters as of the call are on disk (or failed, said on
 * stderr).
 */
export function metricsFileWriter(write: () => Promise<void>): () => Promise<void> {
  let inFlight: Promise<void> | null = null;
  let again = false;
  return () => {
    again = true;
    inFlight ??= (async () => {
      while (again) {
        again = false;
        await write().catch((err: unknown) => void process.stderr.write(`ctpurge: --metrics-file: ${(err as Error).message}\n`));
      }
      inFlight = null;
    })();
    return inFlight;
  };
}
