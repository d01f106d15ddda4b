/**
 * --all-netns: stats, doctor and purges over every network namespace of the host
 * (src/namespaces.ts), several at once (see concurrency: one per CPU, one dump thread each).
 * Each namespace is opened on a thread of its own (the addon's setns) and only while its path
 * still names the namespace found; one that is gone by its turn is reported and skipped.
 */
import { availableParallelism } from 'node:os';
import { Conntrack } from '../conntrack.js';
import { ConntrackError } from '../errors.js';
import { POOL_SLOTS } from '../pool.js';
import type { PurgeMetrics } from '../metrics.js';
import { findNamespaces, forEachLimit, type NamespaceInfo, type Unreadable } from '../namespaces.js';
import type { QueryPlan } from '../plan.js';
import type { Ranked } from '../summary.js';
import type { ParsedArgs } from './args.js';
import { doctorCommand, type DoctorReport } from './doctorCommand.js';
import type { AuditLog } from './files.js';
import { formatCount, percent } from './format.js';
import { EXIT_FAILURE, EXIT_MAX_DELETE, EXIT_OK, purgeLocked, type OneShotResult } from './oneShot.js';
import type { Output } from './output.js';
import type { TopSource } from './top.js';
import { NetnsReadings, readingOf } from './topModel.js';
import type { PurgeJob } from './purgeCommand.js';

/** What became of one namespace: its value, or why it was skipped (gone) or failed. */
export interface Visit<T> {
  info: NamespaceInfo;
  value?: T;
  gone?: string;
  error?: Error;
}

/** A namespace as a line starts: its name, with the pid of a container's process. */
export function label(info: NamespaceInfo): string {
  return info.container && info.pid !== undefined ? `${info.name} (pid ${info.pid})` : info.name;
}

/** What --netns takes for it: an `ip netns` name, else its path; nothing for the host. */
export function netnsArg(info: NamespaceInfo): string | undefined {
  if (info.name === 'host') return undefined;
  return info.path === `/run/netns/${info.name}` ? info.name : info.path;
}

/**
 * The namespaces, and a line on stderr (unless quiet) when some could not be read: without
 * CAP_SYS_PTRACE another user's /proc/PID/ns/net is refused, and its namespace would be missing
 * from a report that reads clean.
 */
export async function discover(quiet = false): Promise<NamespaceInfo[]> {
  const unreadable: Unreadable[] = [];
  const infos = await findNamespaces({}, unreadable);
  if (unreadable.length > 0 && !quiet) {
    const first = unreadable[0] as Unreadable;
    process.stderr.write(`ctpurge: ${unreadable.length} namespace file${unreadable.length === 1 ? '' : 's'} could not be read (${first.path}: ${first.code}), their namespaces left out; run as root (CAP_SYS_ADMIN, CAP_SYS_PTRACE)\n`);
  }
  return infos;
}

/**
 * Namespaces opened at once: one per CPU, each with one dump thread, within the library's share
 * of libuv's pool (pool.ts; half of UV_THREADPOOL_SIZE, default 4): no namespace is opened and
 * locked only to wait there for a thread.
 */
export const concurrency = () => Math.max(1, Math.min(availableParallelism(), POOL_SLOTS.size));

/**
 * Opens each namespace in turn (at most `limit` at once), runs fn on it and closes it, at once
 * or, when fn held it open (`hold`), once what it waits for is over.
 */
export async function eachNamespace<T>(
  infos: readonly NamespaceInfo[],
  fn: (ct: Conntrack, info: NamespaceInfo, hold: (until: Promise<unknown>) => void) => Promise<T>,
  limit = concurrency(),
): Promise<Visit<T>[]> {
  const visits: Visit<T>[] = infos.map((info) => ({ info }));
  await forEachLimit(infos, limit, async (info, i) => {
    const visit = visits[i] as Visit<T>;
    let ct: Conntrack;
    try {
      ct = await Conntrack.open({ netns: info, lanes: 1 });
    } catch (err) {
      // Deleted since it was found (ip netns del, a container that stopped): not a failure.
      if (err instanceof ConntrackError && err.operation === 'open' && (err.code === 'ENOENT' || err.code === 'EINVAL')) visit.gone = err.message;
      else visit.error = err as Error;
      return;
    }
    // What fn holds the handle open for (a grace's wait) goes on after the visit, out of the
    // limit: the handle is closed once that is over.
    const held: Promise<unknown>[] = [];
    let visiting = true;
    const hold = (until: Promise<unknown>) => {
      // Once the visit is over the handle may be closed already: a late hold would not keep it.
      if (!visiting) throw new Error(`${label(info)}: hold() after the visit ended`);
      held.push(until);
    };
    try {
      visit.value = await fn(ct, info, hold);
    } catch (err) {
      visit.error = err as Error;
    } finally {
      visiting = false;
      if (held.length === 0) await ct.close();
      else void Promise.allSettled(held).then(() => ct.close()).catch((err: unknown) => void process.stderr.write(`ctpurge: ${label(info)}: ${(err as Error).message}\n`));
    }
  });
  return visits;
}

/** The lines for namespaces skipped or failed, on stderr; true when one failed. */
function reportTrouble(visits: readonly Visit<unknown>[], quiet: boolean): boolean {
  for (const v of visits) {
    if (v.gone !== undefined && !quiet) process.stderr.write(`ctpurge: ${label(v.info)}: skipped, the namespace is gone (${v.gone})\n`);
    if (v.error) process.stderr.write(`ctpurge: ${label(v.info)}: ${v.error.message}\n`);
  }
  return visits.some((v) => v.error);
}

const trouble = (visits: readonly Visit<unknown>[]) => ({
  skipped: visits.filter((v) => v.gone !== undefined).map((v) => ({ name: v.info.name, path: v.info.path, reason: v.gone })),
  failed: visits.filter((v) => v.error).map((v) => ({ name: v.info.name, path: v.info.path, error: v.error?.message, code: (v.error as ConntrackError).code })),
});

/**
 * How many entries the detail dumps may walk, per dump running at once (concurrency). All namespaces share one hash table:
 * a dump in one walks every namespace's entries to find its own (0.62 s for a namespace of
 * 5,000 among 1M, measured), so the detail costs (namespaces dumped) x (entries in all). The
 * counts come from a counter and cost nothing: every namespace gets them; the detail goes to
 * the namespaces with the most entries first, while it fits (at least the largest one).
 */
export const DETAIL_BUDGET_PER_CPU = 2_000_000;

interface Counted {
  info: NamespaceInfo;
  entries: number;
  usage: number;
  max: number;
}

/** The namespaces' counts (no dump), and those worth a dump within the budget, the largest first. */
async function countAll(infos: readonly NamespaceInfo[] | undefined): Promise<{ counted: Counted[]; detail: Counted[]; visits: Visit<unknown>[] }> {
  const visits = await eachNamespace(infos ?? (await discover()), async (ct, info): Promise<Counted> => {
    const s = await ct.stats();
    return { info, entries: s.count, usage: s.usage, max: s.max };
  });
  const counted = visits.flatMap((v) => (v.value ? [v.value] : []));
  const total = counted.reduce((a, c) => a + c.entries, 0);
  const budget = DETAIL_BUDGET_PER_CPU * concurrency();
  const bySize = counted.filter((c) => c.entries > 0).sort((a, b) => b.entries - a.entries);
  const fits = Math.max(1, total > 0 ? Math.floor(budget / total) : bySize.length);
  return { counted, detail: bySize.slice(0, fits), visits };
}

export interface NamespaceRow {
  name: string;
  path: string;
  inode: number;
  pid?: number;
  container?: NamespaceInfo['container'];
  entries: number;
  /** entries / nf_conntrack_max (which applies to each namespace). */
  usage: number;
  /** Whether the rest was read (one dump: see DETAIL_BUDGET_PER_CPU); null fields when not. */
  detailed: boolean;
  /** Entries the selectors take (all of them without selectors). */
  matched: number | null;
  unreplied: number | null;
  idleOverDay: number | null;
  largestState: Ranked | null;
}

export interface AllNetnsStats {
  max: number;
  /** Namespaces with entries: the host first, then the most entries first. */
  namespaces: NamespaceRow[];
  /** Namespaces whose table is empty (since 4.10 conntrack runs only where a rule needs it). */
  empty: number;
  /** The sums over the namespaces with entries (matched, unreplied, idle: over the detailed ones). */
  total: { entries: number; matched: number; unreplied: number; idleOverDay: number };
  /** Namespaces read in detail, and the share of all entries they hold. */
  detail: { namespaces: number; share: number };
  skipped: { name: string; path: string; reason: string | undefined }[];
  failed: { name: string; path: string; error: string | undefined; code: string | undefined }[];
}

const IDLE_DAY_BUCKETS = new Set(['1d-5d', '>=5d']);

export async function collectAllStats(plan: QueryPlan, infos?: readonly NamespaceInfo[]): Promise<AllNetnsStats> {
  const { counted, detail, visits } = await countAll(infos);
  const summaries = await eachNamespace(
    detail.map((d) => d.info),
    (ct) => ct.summary(plan.query, { talkers: false }),
  );
  const rows: NamespaceRow[] = counted
    .filter((c) => c.entries > 0)
    .map((c) => {
      const m = summaries.find((v) => v.info === c.info)?.value;
      const { info } = c;
      return {
        name: info.name,
        path: info.path,
        inode: info.inode,
        ...(info.pid === undefined ? {} : { pid: info.pid }),
        ...(info.container ? { container: info.container } : {}),
        entries: c.entries,
        usage: c.usage,
        detailed: m !== undefined,
        matched: m ? m.total : null,
        unreplied: m ? m.unreplied : null,
        idleOverDay: m ? m.byIdle.filter((b) => IDLE_DAY_BUCKETS.has(b.key)).reduce((a, b) => a + b.count, 0) : null,
        // Tables of UDP only have no state: their largest protocol stands in.
        largestState: m ? (m.byState[0] ?? m.byProtocol[0] ?? null) : null,
      };
    })
    .sort((a, b) => (a.name === 'host' ? -1 : b.name === 'host' ? 1 : b.entries - a.entries));
  const sum = (k: 'entries' | 'matched' | 'unreplied' | 'idleOverDay') => rows.reduce((a, r) => a + (r[k] ?? 0), 0);
  const all = [...visits, ...summaries];
  return {
    max: counted[0]?.max ?? 0,
    namespaces: rows,
    empty: counted.length - rows.length,
    total: { entries: sum('entries'), matched: sum('matched'), unreplied: sum('unreplied'), idleOverDay: sum('idleOverDay') },
    detail: { namespaces: rows.filter((r) => r.detailed).length, share: sum('entries') > 0 ? rows.filter((r) => r.detailed).reduce((a, r) => a + r.entries, 0) / sum('entries') : 1 },
    ...trouble(all),
  };
}

export function renderAllStats(r: AllNetnsStats, selective: boolean): string {
  const head = ['NAMESPACE', 'ENTRIES', 'FULL', ...(selective ? ['MATCHED'] : []), 'UNREPLIED', 'IDLE >1D', 'LARGEST STATE'];
  const n = (v: number | null) => (v === null ? '-' : formatCount(v));
  const rows = r.namespaces.map((row) => [
    row.container && row.pid !== undefined ? `${row.name} (pid ${row.pid})` : row.name,
    formatCount(row.entries),
    percent(row.entries, r.max),
    ...(selective ? [n(row.matched)] : []),
    n(row.unreplied),
    n(row.idleOverDay),
    row.largestState ? `${row.largestState.key} ${formatCount(row.largestState.count)}` : '-',
  ]);
  const t = r.total;
  rows.push(['total', formatCount(t.entries), '', ...(selective ? [formatCount(t.matched)] : []), formatCount(t.unreplied), formatCount(t.idleOverDay), '']);
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  // Names left-aligned, numbers right-aligned, the last column as it is.
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(w[0] ?? 0) : i === row.length - 1 ? c : c.padStart(w[i] ?? 0))).join('  ').trimEnd();
  const count = r.namespaces.length + r.empty;
  const out = [
    `conntrack tables in ${formatCount(count)} namespace${count === 1 ? '' : 's'}: ${formatCount(t.entries)} entries in all (nf_conntrack_max ${formatCount(r.max)} applies to each)`,
    ...all.map(line),
  ];
  const notes = [r.empty > 0 ? `${formatCount(r.empty)} with an empty table` : '', r.skipped.length > 0 ? `${r.skipped.length} gone while read: ${r.skipped.map((s) => s.name).join(', ')}` : '', r.failed.length > 0 ? `${r.failed.length} failed: ${r.failed.map((f) => f.name).join(', ')}` : ''].filter(Boolean);
  if (notes.length) out.push(`(${notes.join('; ')})`);
  if (r.detail.namespaces < r.namespaces.length) {
    // Said, not hidden: a total over the detailed namespaces only.
    out.push(`unreplied, idle and state read for the ${r.detail.namespaces} largest namespaces (${percent(r.detail.share, 1)} of the entries; their totals are theirs): each namespace's dump walks the whole shared table. The rest: ctpurge stats --netns PATH`);
  }
  return `${out.join('\n')}\n`;
}

export interface AllNetnsDoctor {
  /** Entries in all namespaces. */
  total: number;
  max: number;
  /** Namespaces diagnosed (the largest, within the dump budget), each with its share of all entries and its report. */
  namespaces: { name: string; path: string; pid?: number; share: number; report: DoctorReport }[];
  /** Namespaces with entries not diagnosed (beyond the budget): their names and counts. */
  notRead: { name: string; path: string; entries: number }[];
  empty: number;
  skipped: AllNetnsStats['skipped'];
  failed: AllNetnsStats['failed'];
}

export async function collectAllDoctor(infos?: readonly NamespaceInfo[]): Promise<AllNetnsDoctor> {
  const { counted, detail, visits } = await countAll(infos);
  const reports = await eachNamespace(
    detail.map((d) => d.info),
    (ct, info) => doctorCommand(ct, netnsArg(info)),
  );
  const total = counted.reduce((a, c) => a + c.entries, 0);
  const found = reports.flatMap((v) => (v.value ? [{ info: v.info, report: v.value }] : []));
  return {
    total,
    max: counted[0]?.max ?? 0,
    namespaces: found
      .sort((a, b) => b.report.count - a.report.count)
      .map((f) => ({ name: label(f.info), path: f.info.path, ...(f.info.pid === undefined ? {} : { pid: f.info.pid }), share: total > 0 ? f.report.count / total : 0, report: f.report })),
    notRead: counted
      .filter((c) => c.entries > 0 && !detail.includes(c))
      .sort((a, b) => b.entries - a.entries)
      .map((c) => ({ name: label(c.info), path: c.info.path, entries: c.entries })),
    empty: counted.filter((c) => c.entries === 0).length,
    ...trouble([...visits, ...reports]),
  };
}

/** A namespace matters when it has a warning or worse, or holds a tenth of all entries. */
const matters = (n: AllNetnsDoctor['namespaces'][number]) => n.share >= 0.1 || n.report.findings.some((f) => f.severity !== 'info');

export function renderAllDoctor(r: AllNetnsDoctor): string {
  const count = r.namespaces.length + r.notRead.length + r.empty;
  const out = [`ctpurge doctor --all-netns: ${formatCount(count)} namespaces, ${formatCount(r.total)} entries in all (nf_conntrack_max ${formatCount(r.max)} applies to each)`, ''];
  const shown = r.namespaces.filter(matters);
  for (const n of shown) {
    const rep = n.report;
    const top = rep.findings[0];
    out.push(`${n.name}: ${percent(rep.count, r.total)} of all entries (${formatCount(rep.count)}, table ${percent(rep.count, rep.max)} full)${top ? `: ${top.title}` : ': no findings'}`);
    for (const f of rep.findings) {
      out.push(`  [${f.severity}] ${f.title}`);
      for (const c of f.commands) out.push(`    $ ${c}`);
    }
  }
  const rest = r.namespaces.filter((n) => !matters(n));
  if (shown.length === 0) out.push('no namespace stands out: none has a warning, none holds a tenth of the entries.');
  if (rest.length > 0) out.push(`${rest.length} other namespace${rest.length === 1 ? '' : 's'} read (${formatCount(rest.reduce((a, n) => a + n.report.count, 0))} entries): nothing worth a warning`);
  if (r.notRead.length > 0) {
    const largest = r.notRead[0] as AllNetnsDoctor['notRead'][number];
    out.push(`${r.notRead.length} smaller namespace${r.notRead.length === 1 ? '' : 's'} not read (${formatCount(r.notRead.reduce((a, n) => a + n.entries, 0))} entries, the largest ${largest.name} with ${formatCount(largest.entries)}): each dump walks the whole shared table. One of them: ctpurge doctor --netns PATH`);
  }
  if (r.empty > 0) out.push(`${r.empty} namespace${r.empty === 1 ? '' : 's'} with an empty table`);
  for (const s of r.skipped) out.push(`${s.name}: gone while read, skipped`);
  out.push('', 'doctor changes nothing; the commands above are for you to review and run.');
  return `${out.join('\n')}\n`;
}

/**
 * The purge (each job) in every namespace with entries, several at once: each under its own
 * lock, with its own summary lines and audit lines (named by netnsName), a line for each
 * namespace skipped or failed. Exit: 1 when a namespace failed, else 3 when --max-delete stopped
 * one, else 0. The metrics sets of every namespace are returned for --metrics-file.
 */
export async function purgeAllNetns(args: ParsedArgs, jobs: readonly PurgeJob[], out: Output, log: AuditLog | undefined, signal: AbortSignal): Promise<{ exit: number; metrics: PurgeMetrics[] }> {
  const visits = await eachNamespace(await discover(args.quiet), async (ct, info, hold) => {
    if ((await ct.stats()).count === 0) return null;
    const locked = await purgeLocked(ct, args, jobs, { out, log, prefix: `${label(info)}: `, progress: false }, signal);
    if (locked === null) return { finished: Promise.resolve(null) };
    // A grace is waited out beside the other namespaces' purges, not in a slot of theirs (200
    // namespaces, two at a time, each waiting a minute, would take 100 minutes).
    const finished = locked.finish();
    hold(finished);
    return { finished };
  });
  // Each namespace's lines and metrics are written once its graces are over; a failure there
  // fails the namespace.
  const ran: OneShotResult[] = [];
  let cancelled = 0;
  for (const v of visits) {
    if (!v.value) continue;
    try {
      const r = await v.value.finished;
      if (r) ran.push(r);
      else cancelled++;
    } catch (err) {
      v.error = err as Error;
    }
  }
  const failed = reportTrouble(visits, args.quiet);
  const exit = failed ? EXIT_FAILURE : ran.some((r) => r.exit === EXIT_MAX_DELETE) ? EXIT_MAX_DELETE : EXIT_OK;
  if (args.json) await out.write(`${JSON.stringify({ allNetns: true, namespaces: visits.length, purged: ran.length, empty: visits.filter((v) => v.value === null).length, cancelled, ...trouble(visits), exit })}\n`);
  return { exit, metrics: ran.flatMap((r) => r.metrics) };
}

/**
 * top --all-netns: every namespace's counter at each refresh, from handles kept open (the
 * namespaces are found again every NAMESPACES_FOUND_EVERY_MS): a row each, the sum as the
 * reading, its rates from each namespace's own change (NetnsReadings).
 */
export const NAMESPACES_FOUND_EVERY_MS = 10_000;

export function allNetnsTopSource(): TopSource & { close(): Promise<void> } {
  const open = new Map<number, { info: NamespaceInfo; ct: Conntrack }>();
  const readings = new NetnsReadings();
  let foundAt = -Infinity;
  const drop = async (inode: number) => {
    const o = open.get(inode);
    open.delete(inode);
    await o?.ct.close();
  };
  return {
    netns: null,
    async read() {
      if (Date.now() - foundAt >= NAMESPACES_FOUND_EVERY_MS) {
        foundAt = Date.now();
        const infos = await findNamespaces();
        for (const inode of [...open.keys()]) if (!infos.some((i) => i.inode === inode)) await drop(inode);
        await forEachLimit(infos.filter((i) => !open.has(i.inode)), concurrency(), async (info) => {
          const ct = await Conntrack.open({ netns: info, lanes: 1 }).catch(() => null);
          if (ct) open.set(info.inode, { info, ct });
        });
      }
      const at = Date.now();
      const read = await Promise.all(
        [...open.entries()].map(async ([inode, o]) => {
          const s = await o.ct.stats().catch(() => null);
          if (!s) {
            await drop(inode);
            return null;
          }
          return { key: inode, name: label(o.info), counters: readingOf(s) };
        }),
      );
      return readings.read(at, read.flatMap((r) => (r ? [r] : [])));
    },
    close: async () => {
      for (const inode of [...open.keys()]) await drop(inode);
    },
  };
}
