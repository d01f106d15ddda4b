/** The public Conntrack class: one handle on one network namespace's conntrack table. */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { captureStack, ConntrackError, fromNative } from './errors.js';
import { decodeRecord, decodeRecords, RECORD_SIZE, type Entry } from './entry.js';
import { createToNative, entryToTuple, isEntry, tupleToNative, type CreateSpec, type TupleSpec } from './entrySpec.js';
import { kernelFeatures, type KernelFeatures } from './kernel.js';
import { resolveNetns } from './netns.js';
import { loadNative, type NativeBinding, type NativeCpuStats, type NativeCursor, type NativeFilter, type NativeHandle, type NativePurgeCounts, type NativeSettings } from './native.js';
import { booleanField, fieldError, integerField, ownOptions, typeName } from './validate.js';
import { compileQuery, laneFilters, QUERY_FIELDS, type Query } from './query.js';
import { tableSummary, type TableSummary } from './summary.js';
import { TimeSlice } from './timeSlice.js';
import { streamEvents, type ConntrackEvent, type EventsOptions } from './events.js';
export type { ConntrackEvent, EventsOptions, EventType } from './events.js';
import { Purger, type PurgerOptions } from './purger.js';

export interface OpenOptions {
  /** A name from `ip netns list`, or a path such as /proc/PID/ns/net. Default: the caller's namespace. */
  netns?: string;
  /** For tests: a stand-in for the native addon. */
  binding?: NativeBinding;
  /** For tests: the kernel features to assume instead of reading uname. */
  kernel?: KernelFeatures;
  /**
   * Dump threads one operation may use (1 or 2). Default: 2 when the process may run on more
   * than two CPUs, else 1. A kernel dump that skips entries (a filter that matches few)
   * walks the table inside one recvmsg() without yielding its CPU on kernels built without
   * preemption: with two such threads on a 2-CPU machine, the event loop waited up to 55 ms
   * for a CPU. One CPU is left to the event loop; the CLI, which has no loop to keep
   * responsive, uses 2.
   */
  lanes?: number;
}

export interface ListOptions {
  /** Entries per native chunk (default 4096). */
  chunkSize?: number;
}

export interface ExportOptions {
  /**
   * 'ndjson' (the listNdjson format, default), 'conntrack' (`conntrack -L` lines) or 'table'
   * (the `ctpurge list` table: a header, then aligned columns; nothing when nothing matches).
   */
  format?: 'ndjson' | 'conntrack' | 'table';
  /** Stop after this many lines. */
  limit?: number;
  /** Stops the export after the lines in flight. */
  signal?: AbortSignal;
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

export interface PurgeOptions extends Query {
  /** Count (and report through onDeleted) what would go; delete nothing. */
  dryRun?: boolean;
  /** At most this many delete requests. */
  limit?: number;
  /** Called for every deleted entry (in a dry run: every entry that would go). */
  onDeleted?: (entry: Entry) => void;
  /** Called about every 200 ms with the counts so far. */
  onProgress?: (progress: PurgeProgress) => void;
  /** Stops after the batch in flight; the result then has cancelled: true. */
  signal?: AbortSignal;
  /**
   * A write-ahead audit log: an open file descriptor that gets each entry's NDJSON line (the
   * `list --json` format) before the batch holding it is deleted; in a dry run, each match.
   * No entry is deleted without its line. A failed or short write stops the purge before the
   * next delete: purge() then rejects with a ConntrackError (operation 'log', the write's
   * code) whose `partial` is the result so far. Never used with a flush.
   */
  logFd?: number;
}

export interface PurgeProgress {
  scanned: number;
  matched: number;
  deleted: number;
  vanished: number;
}

export interface PurgeResult {
  /** Entries that matched the query when they were read. */
  matched: number;
  /** Entries the kernel deleted for us (0 in a dry run). */
  deleted: number;
  /** Matched, but gone before our delete reached them (ENOENT): expired, or a new flow reused the tuple. */
  vanished: number;
  /** Entries read and checked. With the kernel's status filter, only entries that passed it. */
  scanned: number;
  /** Entries in the table when the purge started. */
  tableSize: number;
  durationMs: number;
  /** 'flush': kernel-side filtered flush (every condition one the kernel compares, see docs/kernel-filters.md); 'dump': dump, match, delete. */
  method: 'flush' | 'dump';
  dryRun: boolean;
  cancelled: boolean;
  limitReached: boolean;
  /** Delete batches whose error replies the kernel dropped (ENOBUFS): their vanished count is unknown. */
  lostReports: number;
  /** Lines written to logFd (0 without it). */
  logged: number;
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

/** A purge's or an export's `limit`: an integer, 0 or more. */
function checkLimit(limit: unknown): asserts limit is number {
  if (typeof limit !== 'number' || !Number.isInteger(limit)) throw fieldError(TypeError, 'limit', `expected an integer, got ${typeName(limit)}`);
  if (limit < 0 || limit > Number.MAX_SAFE_INTEGER) throw fieldError(RangeError, 'limit', `must be 0 or more`);
}

const PURGE_KEYS = ['dryRun', 'limit', 'onDeleted', 'onProgress', 'signal', 'logFd'];

export class Conntrack {
  /** The namespace file this handle works in; null for the caller's own namespace. */
  readonly netns: string | null;
  readonly kernel: KernelFeatures;
  #handle: NativeHandle | null;
  #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  /** Dump threads per operation (OpenOptions.lanes). */
  readonly lanes: number;

  private constructor(handle: NativeHandle, netns: string | null, kernel: KernelFeatures, lanes: number) {
    this.#handle = handle;
    this.netns = netns;
    this.kernel = kernel;
    this.lanes = lanes;
  }

  /** Opens a handle; checks the namespace and CAP_NET_ADMIN with one request. */
  static async open(options: OpenOptions = {}): Promise<Conntrack> {
    options = ownOptions<OpenOptions>(options, 'options', ['netns', 'binding', 'kernel', 'lanes']);
    const lanes = options.lanes === undefined ? (availableParallelism() > 2 ? 2 : 1) : integerField(options.lanes, 'lanes', 1, 2);
    const path = options.netns === undefined ? null : resolveNetns(options.netns);
    const binding = options.binding ?? loadNative();
    const captured = captureStack();
    try {
      const handle = await binding.open(path);
      return new Conntrack(handle, path, options.kernel ?? kernelFeatures(), lanes);
    } catch (err) {
      throw fromNative(err, captured, path ?? options.netns ?? null);
    }
  }

  /** True once close() was called: new operations throw. */
  get closed(): boolean {
    return this.#handle === null || this.#closing !== null;
  }

  #native(): NativeHandle {
    if (!this.#handle || this.#closing) throw new Error('Conntrack: this handle is closed (close() was called); open a new one');
    return this.#handle;
  }

  /** Runs one native call, tracked so close() lets it finish. */
  async #call<T>(fn: (h: NativeHandle) => Promise<T>, h: NativeHandle = this.#native()): Promise<T> {
    const captured = captureStack();
    try {
      return await this.#track(fn(h));
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
   * Streams the entries that match the query. The query is validated now (it throws
   * before any kernel I/O); the dump starts at the first iteration and arrives in chunks,
   * so memory stays bounded whatever the table size.
   */
  list(query: Query = {}, options: ListOptions = {}): AsyncIterableIterator<Entry> {
    const chunks = this.listChunks(query, options);
    async function* entries(): AsyncGenerator<Entry> {
      // Sliced per entry: the consumer's own work between two entries counts too.
      const slice = new TimeSlice();
      for await (const chunk of chunks) {
        for (let off = 0; off + RECORD_SIZE <= chunk.byteLength; off += RECORD_SIZE) {
          yield decodeRecord(chunk, off);
          if (slice.due()) await slice.pause();
        }
      }
    }
    return entries();
  }

  /** Like list(), but yields the packed record chunks (see docs/api.md) for bulk consumers. */
  listChunks(query: Query = {}, options: ListOptions = {}): AsyncIterableIterator<ArrayBuffer> {
    return this.#stream(query, options, (h, filter, size) => h.dump(filter, size, 'records'));
  }

  /**
   * Like list(), but yields NDJSON text (one entry per line, the same fields as Entry, with
   * start as an ISO string and status as a list of flag names), formatted in C++: the fast
   * path for exporting a whole table.
   */
  listNdjson(query: Query = {}, options: ListOptions = {}): AsyncIterableIterator<Buffer> {
    return this.#stream(query, options, (h, filter, size) => h.dump(filter, size, 'ndjson'));
  }

  /**
   * Writes the matching entries to an open file descriptor, one line each: NDJSON (the
   * listNdjson format), lines like `conntrack -L` prints (format 'conntrack'), or the rows of
   * the `ctpurge list` table under its header (format 'table'). They are
   * formatted and written by the dump threads: no chunk crosses into JavaScript, so memory
   * stays flat however large the table (`ctpurge list --json` and `-o conntrack` use it). A
   * pipe that is not drained makes the dump wait. `limit` stops it after that many lines, and
   * `signal` after the lines in flight. Resolves with the number of lines written;
   * a failed write (EPIPE when the reader went away, ENOSPC, ...) rejects with a
   * ConntrackError (operation 'write') whose `partial` is that number.
   */
  async exportTo(fd: number, query: Query = {}, options: ExportOptions = {}): Promise<number> {
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw fieldError(TypeError, 'fd', `expected an open file descriptor, got ${typeName(fd)}`);
    const { format = 'ndjson', signal, limit } = ownOptions<{ format?: unknown; signal?: unknown; limit?: unknown }>(options, 'export options', ['format', 'signal', 'limit']);
    if (limit !== undefined) checkLimit(limit);
    if (format !== 'ndjson' && format !== 'conntrack' && format !== 'table') throw fieldError(TypeError, 'format', `expected 'ndjson', 'conntrack' or 'table', got ${typeName(format)}`);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw fieldError(TypeError, 'signal', `expected an AbortSignal, got ${typeName(signal)}`);
    const compiled = compileQuery(query, this.kernel);
    // An abort stops the export after the lines in flight (the lanes look between dump reads).
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(cancel, 0, 1);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    // The purge's dry-run path with its write-ahead writer: it matches, formats and writes on
    // the lanes' threads, and never deletes (a dry run never flushes, never sends a delete).
    const counts = await this.#call((h) => h.purge(compiled.filter, laneFilters(compiled.filter, this.lanes), { dryRun: true, wantEntries: false, logFd: fd, logFormat: format, cancel, ...(limit === undefined ? {} : { limit }) }, () => undefined)).finally(() =>
      signal?.removeEventListener('abort', onAbort),
    );
    // A writer waiting on a full pipe gives up with EAGAIN when the export is aborted: that is the abort, not a failure.
    const aborted = Atomics.load(cancel, 0) === 1;
    if (counts.logCode !== undefined && !(aborted && counts.logCode === 'EAGAIN')) {
      throw Object.assign(
        new ConntrackError(`cannot write the entries: ${counts.logCode} (${counts.logged} written)`, {
          code: counts.logCode,
          errno: counts.logErrno,
          syscall: 'write',
          operation: 'write',
          netns: this.netns,
        }),
        { partial: counts.logged },
      );
    }
    return counts.logged;
  }

  #stream<T>(query: Query, options: ListOptions, open: (h: NativeHandle, filter: NativeFilter, chunkSize: number) => NativeCursor<T>): AsyncIterableIterator<T> {
    const compiled = compileQuery(query, this.kernel);
    const { chunkSize: given } = ownOptions<ListOptions>(options, 'list options', ['chunkSize']);
    const chunkSize = given === undefined ? 4096 : integerField(given, 'chunkSize', 1, 1 << 20);
    const handle = this.#native();
    const netns = this.netns;
    // One dump per lane, on their own worker threads; chunks arrive as they are ready.
    const filters = laneFilters(compiled.filter, this.lanes);
    async function* chunks(): AsyncGenerator<T> {
      const cursors = filters.map((f) => open(handle, f, chunkSize));
      const captured = captureStack();
      const pending = new Map<number, Promise<{ lane: number; chunk: T | null }>>();
      // Each cursor reads its next chunk on a worker thread while the consumer handles this one.
      const arm = (lane: number) => pending.set(lane, (cursors[lane] as NativeCursor<T>).next().then((chunk) => ({ lane, chunk })));
      const slice = new TimeSlice();
      try {
        cursors.forEach((_, lane) => arm(lane));
        while (pending.size > 0) {
          const { lane, chunk } = await Promise.race(pending.values());
          pending.delete(lane);
          if (!chunk) continue;
          arm(lane);
          // A chunk already waiting resolves as a microtask: let timers and I/O in between.
          if (slice.due()) await slice.pause();
          yield chunk;
        }
      } catch (err) {
        throw fromNative(err, captured, netns);
      } finally {
        for (const p of pending.values()) p.catch(() => undefined);
        for (const c of cursors) c.close();
      }
    }
    return chunks();
  }

  /** Counts matching entries; with no query, the table size from the kernel's counter. */
  async count(query: Query = {}): Promise<number> {
    const compiled = compileQuery(query, this.kernel);
    if (compiled.empty) return this.#call(async (h) => (await h.stats()).count);
    return this.#call((h) => h.count(laneFilters(compiled.filter, this.lanes)));
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
    const s = await this.#call((h) => h.stats());
    const totals = { found: 0, invalid: 0, insert: 0, insertFailed: 0, drop: 0, earlyDrop: 0, error: 0, searchRestart: 0, clashResolve: 0, chainTooLong: 0 };
    for (const c of s.cpus) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += c[k];
    return { count: s.count, max: s.max, usage: s.max > 0 ? s.count / s.max : 0, buckets: await readBuckets(), perCpu: s.cpus, totals };
  }

  /**
   * Breakdowns of the matching entries: by protocol, state, reply status, idle time and age,
   * what typical purges would free, and the top sources, destinations and ports (talkers:
   * false skips the top lists, which keep one key per distinct address).
   */
  async summary(query: Query = {}, options: { top?: number; talkers?: boolean } = {}): Promise<TableSummary> {
    const { top: given, talkers } = ownOptions<{ top?: unknown; talkers?: unknown }>(options, 'summary options', ['top', 'talkers']);
    const top = given === undefined ? 10 : integerField(given, 'top', 1, 1000);
    const withTalkers = talkers === undefined ? true : booleanField(talkers, 'talkers');
    const compiled = compileQuery(query, this.kernel);
    const n = await this.#call((h) => h.summary(laneFilters(compiled.filter, this.lanes), { talkers: withTalkers, top }));
    return tableSummary(n, top, withTalkers);
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
   * kernel compares every condition itself (status, mark, zone, and from 6.12 an exact
   * protocol, TCP/UDP port and IPv4 address), one filtered flush is used.
   * An empty query is refused.
   */
  async purge(options: PurgeOptions): Promise<PurgeResult> {
    // One snapshot of the caller's own fields: the query and the options both come from it.
    const own = ownOptions<Record<string, unknown>>(options, 'purge', [...PURGE_KEYS, ...QUERY_FIELDS]);
    const query: Record<string, unknown> = {};
    for (const k of QUERY_FIELDS) if (k in own) query[k] = own[k];
    const { dryRun = false, limit, onDeleted, onProgress, signal, logFd } = own as PurgeOptions;
    if (logFd !== undefined && (typeof logFd !== 'number' || !Number.isInteger(logFd) || logFd < 0 || logFd > 0x7fffffff)) {
      throw fieldError(TypeError, 'logFd', `expected an open file descriptor, got ${typeName(logFd)}`);
    }
    if (typeof dryRun !== 'boolean') throw fieldError(TypeError, 'dryRun', `expected true or false, got ${typeName(dryRun)}`);
    if (limit !== undefined) checkLimit(limit);
    if (onDeleted !== undefined && typeof onDeleted !== 'function') throw fieldError(TypeError, 'onDeleted', `expected a function, got ${typeName(onDeleted)}`);
    if (onProgress !== undefined && typeof onProgress !== 'function') throw fieldError(TypeError, 'onProgress', `expected a function, got ${typeName(onProgress)}`);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw fieldError(TypeError, 'signal', `expected an AbortSignal, got ${typeName(signal)}`);
    const compiled = compileQuery(query as Query, this.kernel);
    if (compiled.empty) {
      throw new TypeError('purge: refusing to purge with an empty query, which would delete every entry; give at least one condition (e.g. { unreplied: true, olderThan: 3600 })');
    }
    const handle = this.#native();
    return this.#track(this.#purge(handle, compiled, { dryRun, limit, onDeleted, onProgress, signal, logFd }));
  }

  async #purge(
    handle: NativeHandle,
    compiled: ReturnType<typeof compileQuery>,
    { dryRun, limit, onDeleted, onProgress, signal, logFd }: PurgeOptions & { dryRun: boolean },
  ): Promise<PurgeResult> {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(cancel, 0, 1);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let callbackError: unknown;
    const started = performance.now();
    try {
      const tableSize = (await this.#call((h) => h.stats(), handle)).count;
      const counts: NativePurgeCounts = await this.#call(() =>
        handle.purge(
          compiled.filter,
          laneFilters(compiled.filter, this.lanes),
          { dryRun, limit, wantEntries: onDeleted !== undefined, logFd, cancel },
          (progress, records) => {
            try {
              if (records && onDeleted) for (const e of decodeRecords(records)) onDeleted(e);
              onProgress?.({ scanned: progress.scanned, matched: progress.matched, deleted: progress.deleted, vanished: progress.vanished });
            } catch (err) {
              callbackError ??= err;
            }
          },
        ),
        handle,
      );
      if (callbackError !== undefined) throw callbackError;
      const result: PurgeResult = {
        matched: counts.matched,
        deleted: counts.deleted,
        vanished: counts.vanished,
        scanned: counts.scanned,
        tableSize,
        durationMs: performance.now() - started,
        method: counts.method,
        dryRun,
        cancelled: counts.cancelled,
        limitReached: counts.limitReached,
        lostReports: counts.lostReports,
        logged: counts.logged,
      };
      if (counts.logCode !== undefined) {
        throw Object.assign(
          new ConntrackError(`cannot write the audit log: ${counts.logCode}; stopped before the next delete (${counts.deleted} deleted, ${counts.logged} logged)`, {
            code: counts.logCode,
            errno: counts.logErrno,
            syscall: 'write',
            operation: 'log',
            netns: this.netns,
            hint: counts.logCode === 'ENOSPC' || counts.logCode === 'EDQUOT' ? 'free space on the log\'s filesystem, or point --log elsewhere' : undefined,
          }),
          { partial: result },
        );
      }
      return result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Conntrack events from the kernel's multicast groups, as they happen. Overflow is never
   * silent: a { type: 'lost' } marker comes first. Ends when the loop breaks or the signal aborts.
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<ConntrackEvent> {
    return streamEvents(this.#native(), this.kernel, this.netns, options);
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
