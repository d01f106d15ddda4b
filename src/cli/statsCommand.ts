/** ctpurge stats: size, breakdowns and top talkers, with small bar charts. */
import type { Conntrack, ConntrackStats, QueryPlan } from '../conntrack.js';
import type { Ranked, TableSummary } from '../summary.js';
import type { ParsedArgs } from './args.js';
import { bar, formatCount, percent } from './format.js';

export interface StatsReport {
  netns: string | null;
  stats: ConntrackStats;
  summary: TableSummary;
}

export async function collectStats(ct: Conntrack, args: ParsedArgs, plan: QueryPlan): Promise<StatsReport> {
  const [stats, summary] = await Promise.all([ct.stats(), ct.summary(plan, { top: args.top })]);
  return { netns: ct.netns, stats, summary };
}

function section(title: string, rows: Ranked[], total: number): string {
  if (rows.length === 0) return '';
  const w = Math.max(...rows.map((r) => r.key.length));
  const cw = Math.max(...rows.map((r) => formatCount(r.count).length));
  return `${title}\n${rows.map((r) => `  ${r.key.padEnd(w)}  ${formatCount(r.count).padStart(cw)}  ${bar(r.count / total)} ${percent(r.count, total).padStart(6)}`).join('\n')}\n`;
}

/** Bucket counts per state and reply status, the largest groups first (at most 12 rows). */
function histograms(title: string, m: TableSummary, which: 'idle' | 'age'): string {
  const rows = m.distributions.slice(0, 12);
  if (rows.length === 0) return '';
  const labels = m.byIdle.map((b) => b.key);
  const names = rows.map((r) => `${r.group} ${r.reply}`);
  const w0 = Math.max(...names.map((n) => n.length));
  const cells = rows.map((r) => r[which].map((c) => formatCount(c)));
  const w = labels.map((l, i) => Math.max(l.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (name: string, cols: string[]) => `  ${name.padEnd(w0)}  ${cols.map((c, i) => c.padStart(w[i] ?? 0)).join('  ')}`;
  return `${title}\n${line('', labels)}\n${rows.map((r, i) => line(names[i] as string, cells[i] as string[])).join('\n')}\n`;
}

/** What a few typical purges would remove, and the table's fill level after each. */
function freeSpace(r: StatsReport): string {
  const { stats: s, summary: m } = r;
  const rows = m.candidates.map((c) => [`ctpurge ${c.args}`, formatCount(c.matched), percent(c.matched, s.count), `table ${percent(Math.max(0, s.count - c.matched), s.max)} full after`]);
  const w = [0, 1].map((i) => Math.max(...rows.map((row) => (row[i] as string).length)));
  const line = (row: string[]) => `  ${row[0]?.padEnd(w[0] ?? 0)}  ${row[1]?.padStart(w[1] ?? 0)}  ${row[2]?.padStart(6)}  ${row[3]}`;
  return `what would free space (entries shown above)\n${rows.map(line).join('\n')}\n`;
}

export function renderStats(r: StatsReport): string {
  const { stats: s, summary: m } = r;
  const total = m.total || 1;
  const lines = [
    `conntrack table${r.netns ? ` in ${r.netns}` : ''}: ${formatCount(s.count)} of ${formatCount(s.max)} entries (${percent(s.count, s.max)} full)` +
      `${s.buckets ? `, ${formatCount(s.buckets)} buckets` : ''}`,
    `  ${bar(s.usage, 40)} ${percent(s.count, s.max)}`,
    `per-CPU totals: drop ${formatCount(s.totals.drop)}, early_drop ${formatCount(s.totals.earlyDrop)}, insert_failed ${formatCount(s.totals.insertFailed)}, invalid ${formatCount(s.totals.invalid)}`,
    '',
    section('replied vs unreplied', [{ key: 'unreplied', count: m.unreplied }, { key: 'replied', count: m.replied }], total),
    section('by protocol', m.byProtocol, total),
    section('by state', m.byState, total),
    section('by family', m.byFamily, total),
    section('age known from', m.byAgeSource, total),
    section('idle (since the last packet)', m.byIdle.filter((b) => b.count > 0), total),
    section('age (since creation)', m.byAge.filter((b) => b.count > 0), total),
    histograms('idle time by state and reply', m, 'idle'),
    histograms('age by state and reply', m, 'age'),
    freeSpace(r),
    section(`top ${m.topSources.length} sources`, m.topSources, total),
    section(`top ${m.topDestinations.length} destinations`, m.topDestinations, total),
    section(`top ${m.topDestinationPorts.length} destination ports`, m.topDestinationPorts, total),
  ];
  return `${lines.filter((l) => l !== '').join('\n')}\n`;
}
