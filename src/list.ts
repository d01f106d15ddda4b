/** Conntrack.list, listChunks, listNdjson and exportTo: the entries of a plan, streamed or written. */
import { captureStack, ConntrackError, fromNative, throwIfAborted } from './errors.js';
import { decodeRecords, type Entry } from './entry.js';
import { abortFlag, type HandleAccess } from './handleAccess.js';
import type { NativeCursor, NativeHandle, NativeLane } from './native.js';
import type { QueryPlan } from './plan.js';
import { TimeSlice } from './timeSlice.js';
import { onPool } from './pool.js';
import { bare, fdField, fieldError, integerField, limitField, ownOptions, signalField, typeName } from './validate.js';

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

/** Decoded entries from record chunks, sliced per entry: the consumer's own work between two entries counts too. */
export async function* entriesOf(chunks: AsyncIterable<ArrayBuffer>): AsyncGenerator<Entry> {
  const slice = new TimeSlice();
  for await (const chunk of chunks) {
    for (const entry of decodeRecords(chunk)) {
      yield entry;
      if (slice.due()) await slice.pause();
    }
  }
}

/**
 * The chunks of one cursor per lane, each on its own worker thread, in the order they are
 * ready. Options are validated now (it throws before any kernel I/O); the dump starts at the
 * first iteration.
 */
export function streamLanes<T>(
  access: HandleAccess,
  plan: QueryPlan,
  options: ListOptions,
  open: (h: NativeHandle, lane: NativeLane, chunkSize: number) => NativeCursor<T>,
): AsyncIterableIterator<T> {
  const { chunkSize: given } = ownOptions<ListOptions>(options, 'list options', ['chunkSize']);
  const chunkSize = given === undefined ? 4096 : integerField(given, 'chunkSize', 1, 1 << 20);
  const handle = access.native();
  async function* chunks(): AsyncGenerator<T> {
    const cursors = plan.lanes.map((lane) => open(handle, lane, chunkSize));
    const captured = captureStack();
    const pending = new Map<number, Promise<{ lane: number; chunk: T | null }>>();
    // Each cursor reads its next chunk on a worker thread while the consumer handles this one.
    // Each read holds a pool thread: it waits for the library's share of the pool (pool.ts).
    const arm = (lane: number) => pending.set(lane, onPool(() => (cursors[lane] as NativeCursor<T>).next()).then((chunk) => ({ lane, chunk })));
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
      throw fromNative(err, captured, access.netns);
    } finally {
      for (const p of pending.values()) p.catch(() => undefined);
      for (const c of cursors) c.close();
    }
  }
  return chunks();
}

/** The options of exportTo, validated (own fields only). */
export function exportOptions(fd: unknown, options: ExportOptions): { fd: number; format: 'ndjson' | 'conntrack' | 'table'; limit?: number; signal?: AbortSignal } {
  const fdNumber = fdField(fd, 'fd');
  const own = ownOptions<{ format?: unknown; signal?: unknown; limit?: unknown }>(options, 'export options', ['format', 'signal', 'limit']);
  const format = own.format ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'conntrack' && format !== 'table') throw fieldError(TypeError, 'format', `expected 'ndjson', 'conntrack' or 'table', got ${typeName(format)}`);
  return bare({
    fd: fdNumber,
    format,
    ...(own.limit === undefined ? {} : { limit: limitField(own.limit, 'limit') }),
    ...(own.signal === undefined ? {} : { signal: signalField(own.signal, 'signal') }),
  });
}

/**
 * Writes the plan's entries to fd on the dump threads (the addon's export: it matches,
 * formats and writes, and never deletes or flushes). Resolves with the lines written.
 */
export async function exportPlan(access: HandleAccess, plan: QueryPlan, o: ReturnType<typeof exportOptions>): Promise<number> {
  throwIfAborted(o.signal, 'exportTo');
  // An abort stops the export after the lines in flight (the lanes look between dump reads).
  const cancel = abortFlag(o.signal);
  const counts = await access
    // Paced by its reader (a pipe that is not drained makes it wait): outside the pool share,
    // so a stalled reader cannot hold up the process's other calls (a reader that awaits ct.get
    // per line would otherwise wait for the slot its own export holds).
    .call((h) => h.export(plan.lanes, { fd: o.fd, format: o.format, cancel: cancel.flag, ...(o.limit === undefined ? {} : { limit: o.limit }) }), undefined, true)
    .finally(cancel.release);
  // A writer waiting on a full pipe gives up with EAGAIN when the export is aborted: that is the abort, not a failure.
  if (counts.writeCode !== undefined && !(cancel.aborted() && counts.writeCode === 'EAGAIN')) {
    throw new ConntrackError(`cannot write the entries: ${counts.writeCode} (${counts.written} written)`, {
      code: counts.writeCode,
      errno: counts.writeErrno,
      syscall: 'write',
      operation: 'write',
      netns: access.netns,
      partial: { kind: 'export', written: counts.written },
    });
  }
  return counts.written;
}
