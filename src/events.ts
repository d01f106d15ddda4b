/** Conntrack events: the kernel's new/update/destroy multicast groups as an async iterable. */
import { captureStack, fromNative } from './errors.js';
import { decodeRecord, RECORD_SIZE, type Entry } from './entry.js';
import type { NativeHandle } from './native.js';
import { fieldError, integerField, ownOptions, signalField, typeName } from './validate.js';
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
  /** Ends the stream (within about 200 ms), e.g. on SIGTERM. */
  signal?: AbortSignal;
}

const EVENT_TYPES: (EventType | undefined)[] = [undefined, 'new', 'update', 'destroy'];

export function streamEvents(handle: NativeHandle, netns: string | null, given: EventsOptions): AsyncIterableIterator<ConntrackEvent> {
  const options = ownOptions<EventsOptions>(given, 'events', ['types', 'query', 'receiveBuffer', 'signal']);
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
  if (options.signal !== undefined) signalField(options.signal, 'signal');
  const cursor = handle.events(compiled.filter, groups, rcvbuf);
  const signal = options.signal;
  const onAbort = () => cursor.close();
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  async function* iterate(): AsyncGenerator<ConntrackEvent> {
    const captured = captureStack();
    try {
      for (;;) {
        const batch = await cursor.next();
        if (!batch) return;
        if (batch.lost > 0) yield { type: 'lost', count: batch.lost };
        const bytes = new Uint8Array(batch.records);
        for (let off = 0; off + RECORD_SIZE <= batch.records.byteLength; off += RECORD_SIZE) {
          yield { type: EVENT_TYPES[bytes[off + 23] as number] ?? 'update', entry: decodeRecord(batch.records, off) };
        }
      }
    } catch (err) {
      throw fromNative(err, captured, netns);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      cursor.close();
    }
  }
  return iterate();
}
