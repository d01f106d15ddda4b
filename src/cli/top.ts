/**
 * `ctpurge top`: a live view of the table for the incident itself. On a terminal, full screen,
 * refreshed every --interval: the fill level, the rates, the table's shape. Keys: p pause,
 * s sort, f filter (selectors), r read the table now, q or Ctrl-C quit. The terminal is put back
 * on every way out (q, SIGTERM, SIGINT, a crash). Not on a terminal, or with --once: one
 * snapshot (text, or --json), then exit.
 *
 * Cheap by construction: each refresh reads the kernel's counter and per-CPU statistics (one
 * request), inserts and deletes are counted from the event stream without decoding entries,
 * and the full summary (a dump) is read at most every SUMMARY_GAP_FACTOR times its own duration
 * (at least MIN_SUMMARY_GAP_MS apart), so its cost stays a tenth of a CPU whatever the table size.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Conntrack } from '../conntrack.js';
import type { QueryPlan } from '../plan.js';
import type { TableSummary } from '../summary.js';
import { parseArgs, UsageError, type ParsedArgs } from './args.js';
import type { Output } from './output.js';
import { renderTop, snapshotJson, TopTracker, type TopNetnsRow, type TopRates, type TopReading, type TopSnapshot, type TopSort } from './topModel.js';

export const MIN_SUMMARY_GAP_MS = 5_000;
export const SUMMARY_GAP_FACTOR = 10;

/** Where the view's numbers come from: one namespace, or every namespace's counters. */
export interface TopSource {
  netns: string | null;
  /** The counter and statistics (one request), and with --all-netns a row per namespace. */
  read(): Promise<{ reading: TopReading; namespaces?: TopNetnsRow[] }>;
  /** The event counts, for one namespace; none with --all-netns (each would need its socket). */
  ct?: Conntrack;
}

interface Live {
  plan: QueryPlan;
  tracker: TopTracker;
  rates: TopRates | null;
  reading: TopReading | null;
  namespaces?: TopNetnsRow[];
  summary: TableSummary | null;
  summaryAt: number;
  summaryMs: number;
  nextSummaryAt: number;
  summarizing: Promise<void> | null;
  events: AbortController;
  /** Aborted on the way out (a signal, q): a summary dump in flight stops after its buffer. */
  done: AbortController;
  error: string;
}

export async function topCommand(source: TopSource, args: ParsedArgs, plan: QueryPlan, out: Output, signal: AbortSignal): Promise<number> {
  const live: Live = { plan, tracker: new TopTracker(), rates: null, reading: null, summary: null, summaryAt: 0, summaryMs: 0, nextSummaryAt: 0, summarizing: null, events: new AbortController(), done: new AbortController(), error: '' };
  const onAbort = () => live.done.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const interval = (args.interval ?? 1) * 1000;
  const countEvents = () => {
    live.events.abort();
    live.events = new AbortController();
    const ct = source.ct;
    if (!ct) return;
    const events = live.events;
    void (async () => {
      for await (const c of ct.eventCounts({ types: ['new', 'destroy'], query: live.plan.query, signal: events.signal })) {
        live.tracker.addEvents(c);
        // Events lost: the shape is read again at once (the counter never drifts: it is the kernel's).
        if (c.lost > 0) live.nextSummaryAt = 0;
      }
    })().catch(() => undefined);
  };
  const summarize = () => {
    const ct = source.ct;
    if (!ct || live.summarizing || Date.now() < live.nextSummaryAt) return;
    const t0 = Date.now();
    const forPlan = live.plan;
    live.summarizing = ct
      .summary(forPlan, { top: 5, signal: live.done.signal })
      .then(
        (m) => {
          if (forPlan !== live.plan) return;
          live.summary = m;
          live.summaryAt = Date.now();
          live.summaryMs = live.summaryAt - t0;
          live.nextSummaryAt = live.summaryAt + Math.max(MIN_SUMMARY_GAP_MS, SUMMARY_GAP_FACTOR * live.summaryMs);
        },
        (err: unknown) => {
          // Shown, and tried again later: the counter and rates go on.
          live.error = `reading the table: ${(err as Error).message}`;
          live.nextSummaryAt = Date.now() + MIN_SUMMARY_GAP_MS;
        },
      )
      .finally(() => (live.summarizing = null));
  };
  const refresh = async () => {
    const r = await source.read();
    live.rates = live.tracker.reading(r.reading);
    live.reading = r.reading;
    live.namespaces = r.namespaces;
    summarize();
  };
  const snapshot = (): TopSnapshot => ({
    netns: source.netns,
    time: new Date().toISOString(),
    reading: live.reading as TopReading,
    rates: live.rates,
    eventsLost: live.tracker.lost,
    lostAt: live.tracker.lostAt === null ? null : new Date(live.tracker.lostAt).toISOString().slice(11, 19),
    summary: live.summary,
    summaryAge: live.summary ? (Date.now() - live.summaryAt) / 1000 : null,
    summaryMs: live.summary ? live.summaryMs : null,
    filter: live.plan.empty ? '' : live.plan.description,
    ...(live.namespaces ? { namespaces: live.namespaces } : {}),
  });

  countEvents();
  try {
    if (!(process.stdout.isTTY && process.stdin.isTTY) || args.once || args.json) {
      // One snapshot: two readings an interval apart (the rates between them) and the shape.
      await refresh();
      await sleep(interval, undefined, { signal }).catch(() => undefined);
      await refresh();
      await live.summarizing;
      if (signal.aborted) return 0;
      const s = snapshot();
      await out.write(args.json ? `${JSON.stringify(snapshotJson(s))}\n` : `${title(source, s)}\n${renderTop(s).join('\n')}\n`);
      return 0;
    }
    await runScreen(live, source, signal, { refresh, snapshot, countEvents, interval });
    return 0;
  } finally {
    live.done.abort();
    live.events.abort();
    signal.removeEventListener('abort', onAbort);
    await live.summarizing?.catch(() => undefined);
  }
}

function title(source: TopSource, s: TopSnapshot): string {
  return `ctpurge top${source.netns ? ` (${source.netns})` : ''} ${s.time.slice(11, 19)}`;
}

/** The full-screen loop: draws every interval, reads keys, puts the terminal back on every way out. */
async function runScreen(live: Live, source: TopSource, signal: AbortSignal, ops: { refresh(): Promise<void>; snapshot(): TopSnapshot; countEvents(): void; interval: number }): Promise<void> {
  const stdout = process.stdout;
  const stdin = process.stdin;
  let sort: TopSort = 'count';
  let paused = false;
  let editing: string | null = null;
  let note = '';
  const quit = new AbortController();
  let restored = false;
  // The terminal is put back at once (not after the refresh in flight), and further signals
  // while the screen is up are taken here: a second SIGTERM must not end us with raw mode on.
  const stop = () => {
    restore();
    quit.abort();
    live.done.abort();
  };
  signal.addEventListener('abort', stop, { once: true });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const restore = () => {
    if (restored) return;
    restored = true;
    // Cursor shown, the main screen back, the line discipline as it was.
    stdout.write('\x1b[?25h\x1b[?1049l');
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  };
  const onCrash = (err: unknown) => {
    restore();
    process.stderr.write(`ctpurge: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  };
  process.on('exit', restore);
  process.on('uncaughtException', onCrash);
  const draw = () => {
    if (!live.reading || restored) return;
    const rows = stdout.rows || 24;
    const cols = stdout.columns || 80;
    const s = ops.snapshot();
    const head = `${title(source, s)}  every ${ops.interval / 1000} s${paused ? '  PAUSED' : ''}`;
    const body = renderTop(s, sort).slice(0, rows - 2);
    const status = editing !== null ? `filter: ${editing}` : note || live.error || 'q quit  p pause  s sort  f filter  r read the table now';
    const lines = [head, ...body].map((l) => `${l.slice(0, cols)}\x1b[K`);
    stdout.write(`\x1b[H${lines.join('\r\n')}\x1b[J\x1b[${rows};1H\x1b[7m${status.slice(0, cols).padEnd(cols)}\x1b[0m`);
  };
  const apply = (text: string) => {
    try {
      const words = text.trim().split(/\s+/).filter(Boolean);
      const query = words.length === 0 ? {} : parseArgs(['list', ...words]).query;
      live.plan = (source.ct as Conntrack).plan(query);
      live.summary = null;
      live.nextSummaryAt = 0;
      ops.countEvents();
      note = words.length ? `filter: ${live.plan.description}` : 'filter cleared';
    } catch (err) {
      note = `filter: ${err instanceof UsageError || err instanceof Error ? err.message : String(err)}`;
    }
  };
  const onKey = (data: Buffer) => {
    const key = data.toString('utf8');
    if (editing !== null) {
      if (key === '\r' || key === '\n') {
        apply(editing);
        editing = null;
      } else if (key === '\x1b' || key === '\x03') editing = null;
      else if (key === '\x7f' || key === '\b') editing = editing.slice(0, -1);
      else if (!key.startsWith('\x1b')) editing += key.replace(/[\x00-\x1f]/g, '');
    } else if (key === 'q' || key === '\x03') stop();
    else if (key === 'p' || key === ' ') paused = !paused;
    else if (key === 's') sort = sort === 'count' ? 'name' : 'count';
    else if (key === 'r') live.nextSummaryAt = 0;
    else if ((key === 'f' || key === '/') && source.ct) editing = '';
    draw();
  };
  stdout.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[J');
  stdin.setRawMode(true);
  stdin.resume();
  stdin.on('data', onKey);
  stdout.on('resize', draw);
  // A signal that came before the screen was up (while the namespace was opened).
  if (signal.aborted) stop();
  try {
    while (!quit.signal.aborted) {
      if (!paused) {
        await ops.refresh();
        draw();
      }
      await sleep(ops.interval, undefined, { signal: quit.signal }).catch(() => undefined);
    }
  } finally {
    stdin.off('data', onKey);
    stdout.off('resize', draw);
    signal.removeEventListener('abort', stop);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    restore();
    process.off('uncaughtException', onCrash);
    process.off('exit', restore);
  }
}
