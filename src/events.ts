/** Conntrack events: the kernel's new/update/destroy multicast groups as an async iterable. */
import { captureStack, fromNative, throwIfAborted } from './errors.js';
import { decodeRecord, RECORD_SIZE, type Entry } from './entry.js';
import type { NativeEventCursor, NativeFilter, NativeHandle } from './native.js';
import { onPool } from './pool.js';
import { booleanField, fieldError, integerField, ownOptions, signalField, typeName } from './validate.js';
import { compileQuery, type Query } from './query.js';

export type EventType = 'new' | 'update' | 'destroy';

export type ConntrackEvent =
  | { type: EventType; entry: Entry }
  /** The kernel dropped events because the receive buffer overflowed (ENOBUFS). */
  | { type: 'lost'; count: number };

export interface EventsOptions {
  /** Default: all three. */
  types?: EventType[];
  /** Only events whose entry matches. */
  query?: Query;
  /** Receive buffer in bytes (default 8 MiB, forced with CAP_NET_ADMIN). */
  receiveBuffer?: number;
  /** Ends the stream (within about 200 ms), e.g. on SIGTERM. Already aborted: events() throws an AbortError. */
  signal?: AbortSignal;
}

const EVENT_TYPES: (EventType | undefined)[] = [undefined, 'new', 'update', 'destroy'];

export interface EventLinesOptions extends EventsOptions {
  /**
   * 'ndjson': `{"type":"new","entry":{...}}` per event, the entry in the listNdjson format;
   * 'conntrack': `[NEW] ` and a line like `conntrack -L` prints.
   */
  format: 'ndjson' | 'conntrack';
  /**
   * Each line starts with when the event was read: `"time":"2026-12-03T23:40:01.123Z"` after
   * "type" in NDJSON, `[1764805201.123456]\t` as `conntrack -E -o timestamp` prints it.
   */
  timestamps?: boolean;
}

/** A batch of event lines, and the overflows seen while reading it (lost events, never silent). */
export interface EventLines {
  text: Buffer;
  lost: number;
}

/** Validates the options and opens the native cursor, closed when the signal aborts. */
function openEvents<T>(given: object, keys: string[], open: (options: EventsOptions, groups: number, rcvbuf: number, match: NativeFilter) => NativeEventCursor<T>) {
  const options = ownOptions<EventsOptions>(given, 'events', keys);
  const types = options.types ?? ['new', 'update', 'destroy'];
  if (!Array.isArray(types) || types.length === 0) throw fieldError(TypeError, 'types', 'expected a non-empty list of new, update, destroy');
  let groups = 0;
  for (const t of types) {
    const i = EVENT_TYPES.indexOf(t);
    if (i < 1) throw fieldError(RangeError, 'types', `unknown event type ${typeName(t)} (new, update, destroy)`);
    groups |= 1 << (i - 1);
  }
  // Bytes, 4 KiB to 1 GiB.
  const rcvbuf = options.receiveBuffer === undefined ? 8 * 1024 * 1024 : integerField(options.receiveBuffer, 'receiveBuffer', 4096, 1 << 30);
  // Events are matched here only: the kernel filters no multicast group.
  const compiled = compileQuery(options.query ?? {});
  const signal = options.signal === undefined ? undefined : signalField(options.signal, 'signal');
  throwIfAborted(signal, 'events');
  const cursor = open(options, groups, rcvbuf, compiled.filter);
  const onAbort = () => cursor.close();
  signal?.addEventListener('abort', onAbort, { once: true });
  return { cursor, release: () => signal?.removeEventListener('abort', onAbort) };
}

/** The batches of a cursor until it ends; errors become ConntrackErrors, and the cursor is closed. */
async function* batches<T>(opened: { cursor: NativeEventCursor<T>; release(): void }, netns: string | null): AsyncGenerator<T> {
  const captured = captureStack();
  try {
    for (;;) {
      // One poll slice (200 ms at most) on a pool thread, within the library's share (pool.ts).
      const batch = await onPool(() => opened.cursor.next());
      if (!batch) return;
      yield batch;
    }
  } catch (err) {
    throw fromNative(err, captured, netns);
  } finally {
    opened.release();
    opened.cursor.close();
  }
}

const EVENT_KEYS = ['types', 'query', 'receiveBuffer', 'signal'];

export function streamEvents(handle: NativeHandle, netns: string | null, given: EventsOptions): AsyncIterableIterator<ConntrackEvent> {
  const opened = openEvents(given, EVENT_KEYS, (_, groups, rcvbuf, match) => handle.events(match, groups, rcvbuf));
  async function* iterate(): AsyncGenerator<ConntrackEvent> {
    for await (const batch of batches(opened, netns)) {
      if (batch.lost > 0) yield { type: 'lost', count: batch.lost };
      const bytes = new Uint8Array(batch.records);
      for (let off = 0; off + RECORD_SIZE <= batch.records.byteLength; off += RECORD_SIZE) {
        yield { type: EVENT_TYPES[bytes[off + 23] as number] ?? 'update', entry: decodeRecord(batch.records, off) };
      }
    }
  }
  return iterate();
}

/** Events counted by type per batch read, and the overflows seen while reading it. */
export interface EventCounts {
  new: number;
  update: number;
  destroy: number;
  /** Events the kernel dropped (ENOBUFS): the counts are short by that many. */
  lost: number;
}

/** The events' counts per batch: no entry is decoded into a JS object (a live view under a SYN flood). */
export function streamEventCounts(handle: NativeHandle, netns: string | null, given: EventsOptions): AsyncIterableIterator<EventCounts> {
  const opened = openEvents(given, EVENT_KEYS, (_, groups, rcvbuf, match) => handle.events(match, groups, rcvbuf));
  async function* iterate(): AsyncGenerator<EventCounts> {
    for await (const batch of batches(opened, netns)) {
      const c: EventCounts = { new: 0, update: 0, destroy: 0, lost: batch.lost };
      const bytes = new Uint8Array(batch.records);
      for (let off = 0; off + RECORD_SIZE <= batch.records.byteLength; off += RECORD_SIZE) c[EVENT_TYPES[bytes[off + 23] as number] ?? 'update']++;
      yield c;
    }
  }
  return iterate();
}

/** Events as text formatted in C++ (see EventLinesOptions): no JS object per event. */
export function streamEventLines(handle: NativeHandle, netns: string | null, given: EventLinesOptions): AsyncIterableIterator<EventLines> {
  const opened = openEvents(given, [...EVENT_KEYS, 'format', 'timestamps'], (options, groups, rcvbuf, match) => {
    const { format: f, timestamps } = options as EventLinesOptions;
    if (f !== 'ndjson' && f !== 'conntrack') throw fieldError(TypeError, 'format', `expected 'ndjson' or 'conntrack', got ${typeName(f)}`);
    return handle.events(match, groups, rcvbuf, f, timestamps === undefined ? false : booleanField(timestamps, 'timestamps'));
  });
  async function* iterate(): AsyncGenerator<EventLines> {
    for await (const batch of batches(opened, netns)) if (batch.lost > 0 || batch.text.length > 0) yield batch;
  }
  return iterate();
}
