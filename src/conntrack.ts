/**
 * The public Conntrack class: one handle on one network namespace's conntrack table. Every
 * query is planned once (src/plan.ts) and the plan executed natively; the larger operations
 * live in their own modules (purge.ts, list.ts, events.ts, summary.ts).
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { AbortError, captureStack, ConntrackError, fromNative, throwIfAborted } from './errors.js';
import { decodeRecords, type Entry } from './entry.js';
import { createToNative, entryToTuple, isEntry, tupleToNative, type CreateSpec, type TupleSpec } from './entrySpec.js';
import { kernelFeatures, type KernelFeatures } from './kernel.js';
import { namespaceField, resolveNetns } from './netns.js';
import { findNamespaces, processStartTime, type NamespaceInfo, type NamespaceSources } from './namespaces.js';
import { loadNative } from './addon.js';
import type { NativeBinding, NativeCpuStats, NativeHandle, NativeSettings } from './native.js';
import { bare, booleanField, integerField, ownOptions, signalField } from './validate.js';
import type { Query } from './query.js';
import { planQuery, toPlan, type PlanOptions, type QueryPlan } from './plan.js';
import { tableSummary, type TableSummary } from './summary.js';
import { streamEventCounts, streamEventLines, streamEvents, type ConntrackEvent, type EventCounts, type EventLines, type EventLinesOptions, type EventsOptions } from './events.js';
import { abortFlag, type HandleAccess } from './handleAccess.js';
import { entriesOf, exportOptions, exportPlan, streamLanes, type ExportOptions, type ListOptions } from './list.js';
import { onPool, SHORT_SLOTS } from './pool.js';
import { purgeRequest, runPurge, type PurgeOptions, type PurgeResult } from './purge.js';
import { Purger, type PurgerOptions } from './purger.js';
export type { ConntrackEvent, EventCounts, EventLines, EventLinesOptions, EventsOptions, EventType } from './events.js';
export type { ExportOptions, ListOptions } from './list.js';
export type { PurgeOptions, PurgeProgress, PurgeResult } from './purge.js';
export type { QueryPlan, PlanOptions } from './plan.js';

export interface OpenOptions {
  /**
   * A name from `ip netns list`, a path such as /proc/PID/ns/net, or a namespace that
   * `Conntrack.namespaces()` found (opened only while its path still names that namespace).
   * Default: the caller's namespace.
   */
  netns?: string | NamespaceInfo;
  /** For tests: a stand-in for the native addon. */
  binding?: NativeBinding;
  /** For tests: the kernel features to assume instead of reading uname. */
  kernel?: KernelFeatures;
  /**
   * Threads one operation's dump may use (1 or 2). With 2 the dump is read ahead on a thread
   * of its own, where the kernel does its dump work, while the operation's thread parses,
   * matches and deletes (or formats): on 1M entries a purge takes 0.5x the time of one thread.
   * Default: 2 when the process may run on more than two CPUs, else 1. A kernel dump that skips
   * entries (a filter that matches few) walks the table inside one recvmsg() without yielding
   * its CPU on kernels built without preemption: with two busy threads on a 2-CPU machine, the
   * event loop waited up to 55 ms for a CPU. One CPU is left to the event loop; the CLI, which
   * has no loop to keep responsive, uses 2.
   */
  lanes?: number;
}

export type CpuStats = NativeCpuStats;

export interface ConntrackStats {
  /** Entries in this namespace (nf_conntrack_count). */
  count: number;
  /** nf_conntrack_max: global, but applied to each namespace. */
  max: number;
  /** count / max, 0-1. */
  usage: number;
  /** Hash buckets (global); null if unreadable. */
  buckets: number | null;
  perCpu: CpuStats[];
  /** perCpu summed. */
  totals: Omit<CpuStats, 'cpu'>;
}

export interface ConntrackSettings {
  timeouts: NativeSettings['timeouts'];
  /** Whether new entries get a start timestamp (exact ages). */
  timestamps: boolean | null;
  /** Whether packet/byte counters are kept. */
  accounting: boolean | null;
  tcpLoose: boolean | null;
  buckets: number | null;
}

export class Conntrack {
  /** The namespace file this handle works in; null for the caller's own namespace. */
  readonly netns: string | null;
  /**
   * How the operator named the namespace (metrics labels, audit lines, summaries): the name or
   * path given, or the name `Conntrack.namespaces()` gave it; null for the caller's own.
   */
  readonly netnsName: string | null;
  /**
   * The inode of the namespace this handle has open (its identity: acquirePurgeLock(ct) names
   * the lock by it); null for the caller's own.
   */
  readonly netnsInode: number | null;
  readonly kernel: KernelFeatures;
  #handle: NativeHandle | null;
  #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  /** Dump threads per operation (OpenOptions.lanes). */
  readonly lanes: number;
  /** What the operation modules get: the native handle and tracked calls. */
  readonly #access: HandleAccess;

  private constructor(handle: NativeHandle, netns: string | null, netnsName: string | null, kernel: KernelFeatures, lanes: number) {
    this.#handle = handle;
    this.netns = netns;
    this.netnsName = netnsName;
    this.netnsInode = handle.inode();
    this.kernel = kernel;
    this.lanes = lanes;
    this.#access = { netns, netnsName, native: () => this.#native(), call: (fn, h, paced) => this.#call(fn, h, paced) };
  }

  /**
   * Every network namespace of the host (the host's first): the `ip netns` ones, Docker's, and
   * those held only by a process, named as an operator knows them ('host', 'blue', 'ctr web',
   * 'pid 4123'). Each can be opened: `Conntrack.open({ netns: ns })`. Reads /run/netns,
   * /run/docker/netns and /proc; touches no table.
   */
  static async *namespaces(sources: NamespaceSources = {}): AsyncIterableIterator<NamespaceInfo> {
    yield* await findNamespaces(ownOptions<NamespaceSources>(sources, 'sources', ['proc', 'namespaceDirs', 'dockerRoot', 'kubeletRoot']));
  }

  /** Opens a handle; checks the namespace and CAP_NET_ADMIN with one request. */
  static async open(options: OpenOptions = {}): Promise<Conntrack> {
    options = ownOptions<OpenOptions>(options, 'options', ['netns', 'binding', 'kernel', 'lanes']);
    const lanes = options.lanes === undefined ? (availableParallelism() > 2 ? 2 : 1) : integerField(options.lanes, 'lanes', 1, 2);
    const found = typeof options.netns === 'object' && options.netns !== null ? namespaceField(options.netns) : null;
    const path = found ? found.path : options.netns === undefined ? null : resolveNetns(options.netns);
    const name = found ? found.name : (options.netns as string | undefined) ?? null;
    const binding = options.binding ?? loadNative();
    const captured = captureStack();
    let handle: NativeHandle;
    try {
      handle = await binding.open(path);
    } catch (err) {
      throw fromNative(err, captured, path ?? name);
    }
    // A namespace found earlier is opened only while its path names it: a /proc/PID path names
    // another one once the process is gone and its pid reused.
    // Its process's start time, read again now that the namespace is open, tells a pid reused
    // meanwhile (whose new namespace may even have been given the freed inode).
    if (found && (handle.inode() !== found.inode || (found.startTime !== undefined && (await processStartTime(found.path)) !== found.startTime))) {
      handle.close();
      throw new ConntrackError(`${found.name} is gone: ${found.path} now names another namespace`, { code: 'ENOENT', syscall: 'open', operation: 'open', netns: found.path });
    }
    // The caller's kernel features are read as own fields: an optional one it left out
    // (maskedMarkFilter) must not come from a polluted Object.prototype.
    return new Conntrack(handle, path, name, Object.freeze(bare({ ...(options.kernel ?? kernelFeatures()) })), lanes);
  }

  /** True once close() was called: new operations throw. */
  get closed(): boolean {
    return this.#handle === null || this.#closing !== null;
  }

  #native(): NativeHandle {
    if (!this.#handle || this.#closing) {
      throw new ConntrackError('Conntrack: this handle is closed (close() was called); open a new one', { code: 'ERR_USE_AFTER_CLOSE', operation: 'closed', netns: this.netns });
    }
    return this.#handle;
  }

  /** Runs one native call, tracked so close() lets it finish. */
  async #call<T>(fn: (h: NativeHandle) => Promise<T>, h: NativeHandle = this.#native(), paced = false): Promise<T> {
    const captured = captureStack();
    try {
      // Each native call holds a pool thread: the library's share of the pool is bounded (pool.ts).
      return await this.#track(paced ? fn(h) : onPool(() => fn(h)));
    } catch (err) {
      throw fromNative(err, captured, this.netns);
    }
  }

  /** An operation in flight: close() waits for it before it releases the native handle. */
  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * Plans a query for this handle (its kernel and lanes): validated now, reusable by every
   * method that takes a query, and by purge({ plan }). `allowFlush: true` lets a purge with the
   * plan use a filtered flush (see PlanOptions). Throws TypeError/RangeError naming the field.
   */
  plan(query: Query = {}, options: Pick<PlanOptions, 'allowFlush'> = {}): QueryPlan {
    // Only allowFlush is the caller's to set (planQuery checks it); the lanes are this handle's.
    return planQuery(query, this.kernel, { ...ownOptions<Pick<PlanOptions, 'allowFlush'>>(options, 'plan options', ['allowFlush']), lanes: this.lanes });
  }

  /** A query or a plan, as a dump plan for this handle (a plan made for it is used as it is). */
  #dumpPlan(query: Query | QueryPlan): QueryPlan {
    return toPlan(query, this.kernel, { lanes: this.lanes });
  }

  /**
   * Streams the entries that match the query. The query is validated now (it throws
   * before any kernel I/O); the dump starts at the first iteration and arrives in chunks,
   * so memory stays bounded whatever the table size.
   */
  list(query: Query | QueryPlan = {}, options: ListOptions = {}): AsyncIterableIterator<Entry> {
    return entriesOf(this.listChunks(query, options));
  }

  /** Like list(), but yields the packed record chunks (see docs/api.md) for bulk consumers. */
  listChunks(query: Query | QueryPlan = {}, options: ListOptions = {}): AsyncIterableIterator<ArrayBuffer> {
    return streamLanes(this.#access, this.#dumpPlan(query), options, (h, lane, size) => h.dump(lane, size, 'records'));
  }

  /**
   * Like list(), but yields NDJSON text (one entry per line, the same fields as Entry, with
   * start as an ISO string and status as a list of flag names), formatted in C++: the fast
   * path for exporting a whole table.
   */
  listNdjson(query: Query | QueryPlan = {}, options: ListOptions = {}): AsyncIterableIterator<Buffer> {
    return streamLanes(this.#access, this.#dumpPlan(query), options, (h, lane, size) => h.dump(lane, size, 'ndjson'));
  }

  /**
   * Writes the matching entries to an open file descriptor, one line each: NDJSON (the
   * listNdjson format), lines like `conntrack -L` prints (format 'conntrack'), or the rows of
   * the `ctpurge list` table under its header (format 'table'). They are
   * formatted and written by the dump threads: no chunk crosses into JavaScript, so memory
   * stays flat however large the table (`ctpurge list` uses it). A
   * pipe that is not drained makes the dump wait. `limit` stops it after that many lines, and
   * `signal` after the lines in flight. Resolves with the number of lines written;
   * a failed write (EPIPE when the reader went away, ENOSPC, ...) rejects with a
   * ConntrackError (operation 'write') whose `partial` is `{ kind: 'export', written }`.
   */
  async exportTo(fd: number, query: Query | QueryPlan = {}, options: ExportOptions = {}): Promise<number> {
    const o = exportOptions(fd, options);
    return exportPlan(this.#access, this.#dumpPlan(query), o);
  }

  /** Counts matching entries; with no query, the table size from the kernel's counter. */
  async count(query: Query | QueryPlan = {}): Promise<number> {
    const plan = this.#dumpPlan(query);
    if (plan.empty) return this.#call(async (h) => (await h.stats()).count);
    return this.#call((h) => h.count(plan.lanes));
  }

  /** Looks up one entry by its original tuple (and zone); null when there is none. */
  async get(tuple: TupleSpec): Promise<Entry | null> {
    const spec = tupleToNative(tuple, 'get');
    const buf = await this.#call((h) => h.get(spec));
    if (!buf) return null;
    return decodeRecords(buf).next().value ?? null;
  }

  /** Inserts an entry, like `conntrack -I`. */
  async create(spec: CreateSpec): Promise<void> {
    const native = createToNative(spec);
    await this.#call((h) => h.create(native));
  }

  /**
   * Deletes one entry. Given an Entry (from list/get), deletes by tuple + zone + id, so a
   * new flow that reused the tuple is left alone. Returns false when nothing was deleted
   * (already gone, or the id no longer matches).
   */
  async delete(target: Entry | TupleSpec): Promise<boolean> {
    const spec = tupleToNative(isEntry(target) ? entryToTuple(target) : target, 'delete');
    return this.#call((h) => h.delete(spec));
  }

  /** Just the fill level: { count, max, usage }, one kernel request. */
  async usage(): Promise<{ count: number; max: number; usage: number }> {
    const s = await this.#call((h) => h.stats());
    return { count: s.count, max: s.max, usage: s.max > 0 ? s.count / s.max : 0 };
  }

  async stats(): Promise<ConntrackStats> {
    // In a slot of its own, not the pool share (pool.ts): two short requests, while a live
    // view's event stream and summary dump hold the share for seconds and its counter must not
    // wait for them (a refresh stalled behind the summary of 1M entries).
    const s = await this.#call((h) => SHORT_SLOTS.run(() => h.stats()), undefined, true);
    const totals = { found: 0, invalid: 0, insert: 0, insertFailed: 0, drop: 0, earlyDrop: 0, error: 0, searchRestart: 0, clashResolve: 0, chainTooLong: 0 };
    for (const c of s.cpus) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += c[k];
    return { count: s.count, max: s.max, usage: s.max > 0 ? s.count / s.max : 0, buckets: await readBuckets(), perCpu: s.cpus, totals };
  }

  /**
   * Breakdowns of the matching entries: by protocol, state, reply status, idle time and age,
   * what typical purges would free, and the top sources, destinations and ports (talkers:
   * false skips the top lists, which keep one key per distinct address). An abort of `signal`
   * stops the dump after the buffer it is reading and rejects with an AbortError.
   */
  async summary(query: Query | QueryPlan = {}, options: { top?: number; talkers?: boolean; signal?: AbortSignal } = {}): Promise<TableSummary> {
    const { top: given, talkers, signal } = ownOptions<{ top?: unknown; talkers?: unknown; signal?: unknown }>(options, 'summary options', ['top', 'talkers', 'signal']);
    const top = given === undefined ? 10 : integerField(given, 'top', 1, 1000);
    const withTalkers = talkers === undefined ? true : booleanField(talkers, 'talkers');
    const abort = signal === undefined ? undefined : signalField(signal, 'signal');
    const plan = this.#dumpPlan(query);
    throwIfAborted(abort, 'summary');
    const cancel = abortFlag(abort);
    try {
      const n = await this.#call((h) => h.summary(plan.lanes, { talkers: withTalkers, top, cancel: cancel.flag }));
      if (n.cancelled) throw new AbortError('summary: aborted; the dump stopped early', { cause: abort?.reason });
      return tableSummary(n, top, withTalkers);
    } finally {
      cancel.release();
    }
  }

  /** The namespace's policy timeouts and the conntrack sysctls that matter for purging. */
  async settings(): Promise<ConntrackSettings> {
    const s = await this.#call((h) => h.settings());
    const flag = (v: number | undefined) => (v === undefined ? null : v !== 0);
    return {
      timeouts: s.timeouts,
      timestamps: flag(s.sysctl.timestamp),
      accounting: flag(s.sysctl.acct),
      tcpLoose: flag(s.sysctl.tcp_loose),
      buckets: s.sysctl.buckets ?? (await readBuckets()),
    };
  }

  /**
   * Deletes every entry that matches the query: dumped with kernel-side filters, matched
   * in C++, deleted in batches (tuple + zone + id) while the dump runs. When the running
   * kernel compares every condition exactly as the match does (status, mark, and from 6.12 an
   * exact protocol, TCP/UDP port and IPv4 address; never a zone or an exclusion), one filtered
   * flush is used (the plan says which: src/plan.ts). The query comes as fields of the
   * options, or as `plan`. A query that selects every entry of its kind is refused, and an
   * already aborted signal rejects with an AbortError before anything is touched.
   */
  async purge(options: PurgeOptions): Promise<PurgeResult> {
    const request = purgeRequest(options, this.kernel, this.lanes);
    return this.#track(runPurge(this.#access, request));
  }

  /**
   * Conntrack events from the kernel's multicast groups, as they happen. Overflow is never
   * silent: a { type: 'lost' } marker comes first. Ends when the loop breaks or the signal aborts.
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<ConntrackEvent> {
    return streamEvents(this.#native(), this.netns, options);
  }

  /**
   * The events counted by type, per batch read (at most every 200 ms), with no entry decoded:
   * what a live view needs, cheaply, under thousands of new flows a second.
   */
  eventCounts(options: EventsOptions = {}): AsyncIterableIterator<EventCounts> {
    return streamEventCounts(this.#native(), this.netns, options);
  }

  /**
   * The same events as text, formatted in C++ with no JS object per event: batches of lines,
   * NDJSON (`{"type":"new","entry":{...}}`) or `[NEW] ` and a `conntrack -L` line, with the
   * overflows seen while reading each (`ctpurge watch` prints them).
   */
  eventLines(options: EventLinesOptions): AsyncIterableIterator<EventLines> {
    return streamEventLines(this.#native(), this.netns, options);
  }

  /** A Purger on this handle: `ct.schedule({ query, every: '5m' }).start()`. */
  schedule(options: PurgerOptions): Purger {
    return new Purger(this, options);
  }

  /**
   * Releases the handle, gracefully like a database client's end(): operations already started
   * (purge, count, summary, ...) finish first; new ones throw. Streams already iterating keep
   * their own sockets until they end or break. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const h = this.#handle;
    this.#closing = (async () => {
      while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
      this.#handle = null;
      h?.close();
    })();
    return this.#closing;
  }

}

async function readBuckets(): Promise<number | null> {
  try {
    const n = Number((await readFile('/sys/module/nf_conntrack/parameters/hashsize', 'utf8')).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}
