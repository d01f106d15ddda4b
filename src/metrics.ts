/** Prometheus metrics for scheduled purges: the textfile-collector format, written atomically. */
import { chmod, lstat, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PurgeResult } from './conntrack.js';
import { randomHex } from './random.js';
import type { TableSummary } from './summary.js';

/** The table's shape, for gauges with bounded label sets (states, idle buckets). */
export interface TableShape {
  byState: { key: string; count: number }[];
  byIdle: { key: string; count: number }[];
  total: number;
  unreplied: number;
}

/** One metric family of the exposition. */
export interface MetricFamily {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  lines: string[];
}

/** Label names in order, as node_exporter and Prometheus print them. */
function labelText(labels: Record<string, string>): string {
  const l = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${(labels[k] as string).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
  return l ? `{${l}}` : '';
}

const num = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(6));

function renderFamilies(families: readonly MetricFamily[]): string {
  return families.map((f) => `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n${f.lines.join('\n')}\n`).join('');
}

export class PurgeMetrics {
  runs = 0;
  deleted = 0;
  matched = 0;
  errors = 0;
  /** --grace: entries given the short timeout, and what became of them once it was over. */
  graced = 0;
  graceExpired = 0;
  graceAlive = 0;
  lastRunTimestamp = 0;
  lastRunDuration = 0;
  entries = 0;
  max = 0;
  /** Seconds until the next scheduled run; 0 for a one-shot run (the series is left out). */
  interval = 0;
  /** The whole table's shape when last read (recordTable); null: those series are left out. */
  table: TableShape | null = null;
  tableTimestamp = 0;

  /**
   * labels: on every series (netns, and rule for a rule of a rules file). tableLabels: on the
   * table's shape (by_state, by_idle, unreplied), which is the table's and not a rule's.
   */
  constructor(
    readonly labels: Record<string, string> = {},
    readonly tableLabels: Record<string, string> = labels,
  ) {}

  recordRun(result: PurgeResult | null, table: { count: number; max: number; nextInSeconds?: number }, finishedAt = Date.now()): void {
    this.runs++;
    this.interval = table.nextInSeconds ?? 0;
    if (result) {
      this.deleted += result.deleted;
      this.matched += result.matched;
      this.graced += result.graced;
      this.lastRunDuration = result.durationMs / 1000;
      this.entries = Math.max(0, result.tableSize - result.deleted);
    } else {
      this.lastRunDuration = 0;
      this.entries = table.count;
    }
    this.max = table.max;
    this.lastRunTimestamp = finishedAt / 1000;
  }

  /** A grace's outcome (PurgeResult.settle), counted once it is over; cut short, only what expired. */
  recordGrace(outcome: { expired: number; alive: number; complete?: boolean }): void {
    this.graceExpired += outcome.expired;
    if (outcome.complete !== false) this.graceAlive += outcome.alive;
  }

  recordError(): void {
    this.errors++;
  }

  /** The table's shape from a summary of the whole table (`ct.summary({}, { talkers: false })`). */
  recordTable(s: TableSummary, at = Date.now()): void {
    const stated = s.byState.reduce((a, b) => a + b.count, 0);
    this.table = {
      // Entries of protocols without states (UDP, ICMP, ...) as state "none": the series sum to the table.
      byState: [...s.byState, { key: 'none', count: s.total - stated }],
      byIdle: s.byIdle,
      total: s.total,
      unreplied: s.unreplied,
    };
    this.tableTimestamp = at / 1000;
  }

  /** The text exposition format (version 0.0.4). */
  render(): string {
    return renderFamilies(this.families());
  }

  /** The metric families, each with its HELP, TYPE and sample lines. */
  families(): MetricFamily[] {
    const lab = labelText(this.labels);
    const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number): MetricFamily => ({ name, type, help, lines: [`${name}${lab} ${num(value)}`] });
    // One family, one series per key of a bounded set (state names, idle buckets).
    const family = (name: string, help: string, label: string, rows: { key: string; count: number }[]): MetricFamily => ({
      name,
      type: 'gauge',
      help,
      lines: rows.map((r) => `${name}${labelText({ ...this.tableLabels, [label]: r.key })} ${num(r.count)}`),
    });
    const tableLab = labelText(this.tableLabels);
    const t = this.table;
    const out: MetricFamily[] = [
      metric('ctpurge_runs_total', 'counter', 'Purge runs, including runs skipped below --when-above.', this.runs),
      metric('ctpurge_entries_deleted_total', 'counter', 'Conntrack entries deleted.', this.deleted),
      metric('ctpurge_entries_matched_total', 'counter', 'Conntrack entries that matched the selectors when read.', this.matched),
      metric('ctpurge_errors_total', 'counter', 'Purge runs that failed.', this.errors),
      metric('ctpurge_entries_graced_total', 'counter', 'Conntrack entries given --grace (a short timeout) instead of a delete.', this.graced),
      metric('ctpurge_grace_expired_total', 'counter', 'Graced entries that expired: no packet came within the grace.', this.graceExpired),
      metric('ctpurge_grace_alive_total', 'counter', 'Graced entries still there after the grace: a packet restored their timeout.', this.graceAlive),
      metric('ctpurge_last_run_timestamp_seconds', 'gauge', 'Unix time the last run finished.', this.lastRunTimestamp),
      metric('ctpurge_last_run_duration_seconds', 'gauge', 'Wall time of the last run.', this.lastRunDuration),
      metric('ctpurge_conntrack_entries', 'gauge', 'Entries in the conntrack table after the last run.', this.entries),
      metric('ctpurge_conntrack_max', 'gauge', 'nf_conntrack_max.', this.max),
    ];
    // Alert rules compare the last run's age with it ("no run for 3 intervals").
    if (this.interval > 0) out.push(metric('ctpurge_interval_seconds', 'gauge', 'Seconds from the last run to the next scheduled one (--every, as --adaptive last set it).', this.interval));
    if (t) {
      out.push(
        family('ctpurge_table_entries_by_state', 'Entries by protocol state when the table was last read (none: protocols without states).', 'state', t.byState),
        family('ctpurge_table_entries_by_idle', 'Entries by time since their last packet when the table was last read (unknown: no policy timeout explains the timeout left).', 'idle', t.byIdle),
        { name: 'ctpurge_table_entries_unreplied', type: 'gauge', help: 'Entries that never saw a reply when the table was last read.', lines: [`ctpurge_table_entries_unreplied${tableLab} ${num(t.unreplied)}`] },
        { name: 'ctpurge_table_read_timestamp_seconds', type: 'gauge', help: 'Unix time the table was last read for the by_state and by_idle series.', lines: [`ctpurge_table_read_timestamp_seconds${tableLab} ${num(this.tableTimestamp)}`] },
      );
    }
    return out;
  }

  /** Several sets (one per rule) as one exposition: each family once, with every set's series. */
  static renderAll(sets: readonly PurgeMetrics[]): string {
    const merged = new Map<string, MetricFamily>();
    for (const set of sets) {
      for (const f of set.families()) {
        const seen = merged.get(f.name);
        if (seen) seen.lines.push(...f.lines);
        else merged.set(f.name, { ...f, lines: [...f.lines] });
      }
    }
    return renderFamilies([...merged.values()]);
  }

  /**
   * Writes the file atomically: a temp file in the same directory, then rename. The file is
   * made to be read by another user (node_exporter runs as its own), so it gets 0644 whatever
   * the umask: systemd's UMask=0077 would otherwise turn the create mode into 0600.
   */
  async writeFile(file: string, text = this.render()): Promise<void> {
    // Only a regular file is ever replaced: the rename would turn a device node, FIFO or
    // symlink someone put at the path into our file.
    const existing = await lstat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (existing && !existing.isFile()) throw new Error(`${file} is not a regular file; refusing to replace it`);
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomHex(4)}.tmp`);
    try {
      // 'wx' (O_EXCL): never through a symlink planted at the temporary name.
      await writeFile(tmp, text, { mode: 0o644, flag: 'wx' });
      await chmod(tmp, 0o644);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      // The error names the file asked for, not the temporary one, and keeps its code.
      const e = err as NodeJS.ErrnoException;
      throw Object.assign(new Error(`cannot write ${file}: ${e.code ?? e.message}`, { cause: err }), { code: e.code, errno: e.errno, syscall: e.syscall, path: file });
    }
  }
}
