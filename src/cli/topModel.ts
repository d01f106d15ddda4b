/**
 * ctpurge top: what one refresh shows, and its text. The entries come from the kernel's counter
 * (exact when read), the rates from consecutive readings of it and of the per-CPU statistics,
 * inserts and deletes from the event stream (NEW and DESTROY counted), and the table's shape
 * (states, idle times, talkers, what would free space) from the last full summary, read at most
 * every few seconds. Pure: the terminal is top.ts's.
 */
import type { ConntrackStats } from '../conntrack.js';
import type { EventCounts } from '../events.js';
import type { TableSummary } from '../summary.js';
import { bar, formatCount, percent } from './format.js';

/** One reading of the table's counter and statistics. */
export interface TopReading {
  at: number;
  count: number;
  max: number;
  drop: number;
  earlyDrop: number;
  insertFailed: number;
  /**
   * The level the entries' rate is taken from, where the count alone would mislead (with
   * --all-netns, namespaces come and go): default count.
   */
  level?: number;
}

export const readingOf = (s: ConntrackStats, at = Date.now()): TopReading => ({ at, count: s.count, max: s.max, drop: s.totals.drop, earlyDrop: s.totals.earlyDrop, insertFailed: s.totals.insertFailed });

/** Per second, over the time between two readings. */
export interface TopRates {
  entries: number;
  new: number;
  destroy: number;
  drop: number;
  earlyDrop: number;
  insertFailed: number;
}

/** Rates from readings and the events counted between them; lost events are kept, never silent. */
export class TopTracker {
  #prev: TopReading | null = null;
  #events = { new: 0, destroy: 0 };
  lost = 0;
  lostAt: number | null = null;

  addEvents(c: EventCounts, at = Date.now()): void {
    this.#events.new += c.new;
    this.#events.destroy += c.destroy;
    if (c.lost > 0) {
      this.lost += c.lost;
      this.lostAt = at;
    }
  }

  /** The rates since the previous reading (null for the first); the events counted are reset. */
  reading(r: TopReading): TopRates | null {
    const prev = this.#prev;
    const events = this.#events;
    this.#prev = r;
    this.#events = { new: 0, destroy: 0 };
    if (!prev || r.at <= prev.at) return null;
    const s = (r.at - prev.at) / 1000;
    // A counter that went back (a namespace made again) reads as no change, not a negative rate.
    const per = (now: number, before: number) => Math.max(0, now - before) / s;
    return { entries: ((r.level ?? r.count) - (prev.level ?? prev.count)) / s, new: events.new / s, destroy: events.destroy / s, drop: per(r.drop, prev.drop), earlyDrop: per(r.earlyDrop, prev.earlyDrop), insertFailed: per(r.insertFailed, prev.insertFailed) };
  }
}

/** One namespace's counter and statistics at a refresh (--all-netns). */
export interface NetnsCounters {
  count: number;
  max: number;
  drop: number;
  earlyDrop: number;
  insertFailed: number;
}

type Running = Omit<NetnsCounters, 'max'>;
const RUNNING = ['count', 'drop', 'earlyDrop', 'insertFailed'] as const;

/**
 * With --all-netns: each refresh's readings of every namespace as a row each and one reading.
 * The reading's count is the sum; its level and counters add each namespace's change since its
 * own previous reading, so a namespace found (with its entries and drops so far) or gone is no
 * burst in the rates.
 */
export class NetnsReadings {
  readonly #prev = new Map<number, Running & { at: number }>();
  readonly #run: Running = { count: 0, drop: 0, earlyDrop: 0, insertFailed: 0 };

  read(at: number, namespaces: readonly { key: number; name: string; counters: NetnsCounters }[]): { reading: TopReading; namespaces: TopNetnsRow[] } {
    const rows: TopNetnsRow[] = [];
    let count = 0;
    let max = 0;
    const seen = new Set<number>();
    for (const { key, name, counters: now } of namespaces) {
      seen.add(key);
      const prev = this.#prev.get(key);
      const secs = prev ? (at - prev.at) / 1000 : 0;
      // A statistics counter that went back (reset) reads as no change.
      const delta = (k: keyof Running) => (!prev ? 0 : k === 'count' ? now.count - prev.count : Math.max(0, now[k] - prev[k]));
      const drops = delta('drop') + delta('earlyDrop') + delta('insertFailed');
      rows.push({ name, count: now.count, max: now.max, change: prev && secs > 0 ? delta('count') / secs : null, drops: prev && secs > 0 ? drops / secs : null });
      for (const k of RUNNING) this.#run[k] += delta(k);
      this.#prev.set(key, { at, count: now.count, drop: now.drop, earlyDrop: now.earlyDrop, insertFailed: now.insertFailed });
      count += now.count;
      max = Math.max(max, now.max);
    }
    for (const key of [...this.#prev.keys()]) if (!seen.has(key)) this.#prev.delete(key);
    const r = this.#run;
    return { reading: { at, count, max, level: r.count, drop: r.drop, earlyDrop: r.earlyDrop, insertFailed: r.insertFailed }, namespaces: rows };
  }
}

/** A namespace's row with --all-netns. */
export interface TopNetnsRow {
  name: string;
  count: number;
  max: number;
  /** Entries per second since the last refresh (null on the first). */
  change: number | null;
  drops: number | null;
}

export interface TopSnapshot {
  netns: string | null;
  time: string;
  reading: TopReading;
  rates: TopRates | null;
  eventsLost: number;
  lostAt: string | null;
  summary: TableSummary | null;
  /** Seconds since the summary was read, and how long it took. */
  summaryAge: number | null;
  summaryMs: number | null;
  filter: string;
  namespaces?: TopNetnsRow[];
}

export type TopSort = 'count' | 'name';

const rate = (v: number | undefined | null) => (v === undefined || v === null ? '-' : `${v < 0 ? '-' : ''}${formatCount(Math.round(Math.abs(v)))}/s`);
const signed = (v: number | null | undefined) => (v === undefined || v === null ? '-' : `${v >= 0 ? '+' : '-'}${formatCount(Math.round(Math.abs(v)))}/s`);

/** The lines of one refresh: the screen's (clipped by top.ts) or a snapshot's (--once, a pipe). */
export function renderTop(s: TopSnapshot, sort: TopSort = 'count'): string[] {
  const r = s.reading;
  const out: string[] = [];
  const busiest = s.namespaces?.reduce<TopNetnsRow | null>((a, n) => (a === null || n.count > a.count ? n : a), null);
  if (s.namespaces) {
    // Each namespace fills up to nf_conntrack_max on its own: the bar is the busiest one's.
    const b = busiest ?? { name: '-', count: 0, max: r.max };
    out.push(`busiest ${b.name}: ${bar(b.max > 0 ? b.count / b.max : 0, 30)} ${percent(b.count, b.max)}  ${formatCount(r.count)} entries in ${s.namespaces.length} namespaces  ${signed(s.rates?.entries)}`);
  } else {
    out.push(`table ${bar(r.max > 0 ? r.count / r.max : 0, 40)} ${percent(r.count, r.max)}  ${formatCount(r.count)} of ${formatCount(r.max)} entries  ${signed(s.rates?.entries)}`);
  }
  // With --all-netns no event stream is read (it would take a socket per namespace).
  const flows = s.namespaces ? '' : `new ${rate(s.rates?.new)}  destroy ${rate(s.rates?.destroy)}  `;
  out.push(`rates  ${flows}drop ${rate(s.rates?.drop)}  early_drop ${rate(s.rates?.earlyDrop)}  insert_failed ${rate(s.rates?.insertFailed)}`);
  if (s.eventsLost > 0) out.push(`events lost: ${formatCount(s.eventsLost)} (the kernel dropped them, last at ${s.lostAt}); the entries are the kernel's counter, the table re-read`);
  if (s.namespaces) return [...out, '', ...namespaceRows(s.namespaces, sort)];
  const m = s.summary;
  if (!m) return [...out, '', 'reading the table...'];
  out.push('');
  const age = s.summaryAge === null ? '' : ` (read ${Math.round(s.summaryAge)} s ago in ${((s.summaryMs ?? 0) / 1000).toFixed(2)} s${s.filter ? `; ${s.filter}` : ''})`;
  const total = m.total || 1;
  const assured = m.distributions.filter((d) => d.reply === 'assured').reduce((a, d) => a + d.total, 0);
  out.push(`states${age}: unreplied ${percent(m.unreplied, total)}, assured ${percent(assured, total)}, replied ${percent(m.total - m.unreplied - assured, total)}`);
  const states = [...m.byState, ...m.byProtocol.filter((p) => !m.byState.length || p.key !== 'tcp')].slice(0, 6);
  const ordered = sort === 'name' ? [...states].sort((a, b) => a.key.localeCompare(b.key)) : states;
  for (const st of ordered) out.push(`  ${st.key.padEnd(14)} ${formatCount(st.count).padStart(11)}  ${bar(st.count / total, 20)} ${percent(st.count, total).padStart(6)}`);
  out.push('', ...idleTable(m, sort), '', ...talkers(m), '', 'what would free space');
  for (const c of m.candidates) out.push(`  ctpurge ${c.args.padEnd(30)} ${formatCount(c.matched).padStart(11)}  table ${percent(Math.max(0, r.count - c.matched), r.max)} full after`);
  return out;
}

/** Idle time by state and reply: the summary's distributions, the largest groups first. */
function idleTable(m: TableSummary, sort: TopSort): string[] {
  const rows = (sort === 'name' ? [...m.distributions].sort((a, b) => `${a.group} ${a.reply}`.localeCompare(`${b.group} ${b.reply}`)) : m.distributions).slice(0, 6);
  const labels = m.byIdle.map((b) => b.key);
  const names = rows.map((d) => `${d.group} ${d.reply}`);
  const w0 = Math.max(20, ...names.map((n) => n.length));
  const cells = rows.map((d) => d.idle.map((c) => formatCount(c)));
  const w = labels.map((l, i) => Math.max(l.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (name: string, cols: string[]) => `  ${name.padEnd(w0)} ${cols.map((c, i) => c.padStart(w[i] ?? 0)).join(' ')}`;
  return [`idle time by state and reply`, line('', labels), ...rows.map((_, i) => line(names[i] as string, cells[i] as string[]))];
}

/** Top sources, destinations and destination ports, side by side. */
function talkers(m: TableSummary): string[] {
  const cols = [
    ['top sources', m.topSources],
    ['top destinations', m.topDestinations],
    ['top destination ports', m.topDestinationPorts],
  ] as const;
  const width = 30;
  const rows = Math.min(5, Math.max(...cols.map(([, l]) => l.length)));
  const out = [cols.map(([t]) => t.padEnd(width)).join('').trimEnd()];
  for (let i = 0; i < rows; i++) {
    out.push(
      cols
        .map(([, l]) => {
          const x = l[i];
          return (x ? `${x.key.slice(0, 20).padEnd(20)} ${formatCount(x.count).padStart(8)}` : '').padEnd(width);
        })
        .join('')
        .trimEnd(),
    );
  }
  return out;
}

/** --all-netns: a row per namespace, the busiest first (or by name, or by change). */
function namespaceRows(rows: TopNetnsRow[], sort: TopSort): string[] {
  const sorted = [...rows].sort((a, b) => (sort === 'name' ? a.name.localeCompare(b.name) : b.count - a.count));
  const w = Math.max(9, ...rows.map((r) => r.name.length));
  const out = [`${'NAMESPACE'.padEnd(w)}  ${'ENTRIES'.padStart(11)}  ${'FULL'.padStart(6)}  ${'CHANGE'.padStart(10)}  ${'DROPS'.padStart(8)}`];
  for (const r of sorted) out.push(`${r.name.padEnd(w)}  ${formatCount(r.count).padStart(11)}  ${percent(r.count, r.max).padStart(6)}  ${signed(r.change).padStart(10)}  ${rate(r.drops).padStart(8)}`);
  const total = rows.reduce((a, r) => a + r.count, 0);
  out.push(`${'total'.padEnd(w)}  ${formatCount(total).padStart(11)}`);
  return out;
}

/** The JSON of a snapshot (--json): the numbers, no text. */
export function snapshotJson(s: TopSnapshot): object {
  return { netns: s.netns, time: s.time, entries: s.reading.count, max: s.reading.max, usage: s.reading.max > 0 ? s.reading.count / s.reading.max : 0, rates: s.rates, eventsLost: s.eventsLost, filter: s.filter || null, summary: s.summary, ...(s.namespaces ? { namespaces: s.namespaces } : {}) };
}
