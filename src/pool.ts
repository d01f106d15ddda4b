/**
 * libuv's thread pool is shared by the whole process: fs, dns.lookup, crypto and zlib queue on
 * it beside ctpurge's native calls, each of which holds one pool thread while it runs (a purge,
 * a count, a summary, one chunk of a dump, one 200 ms poll slice of an event stream). Left
 * alone, 70 concurrent operations of an embedding service made an fs.readFile wait 3 s. So
 * the library holds at most half the pool (at least one thread) at once, across every handle of
 * the thread; further native calls wait here, in order, on the event loop. Left out: an export
 * (its reader paces it, and a stalled reader must not hold up every other call) and the stats
 * request, which has one slot of its own (SHORT_SLOTS: a live view's counter must not wait
 * behind a dump, and a hundred handles' counters still take one thread at a time).
 */

/** The pool's size as libuv reads it at its first use: UV_THREADPOOL_SIZE (0 is 1, at most 1024), default 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  if (!Number.isInteger(n)) return 4;
  // libuv reads it as unsigned: a negative value is a huge one, capped at 1024.
  return n < 0 ? 1024 : Math.min(Math.max(n, 1), 1024);
}

/** A FIFO counting semaphore: run(fn) starts fn when fewer than `size` runs are in flight. */
export class Slots {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  #size: number | undefined;

  /** size, or a function asked at the first run (the environment as it is then). */
  constructor(readonly sizeOf: number | (() => number)) {}

  get size(): number {
    this.#size ??= typeof this.sizeOf === 'function' ? this.sizeOf() : this.sizeOf;
    return this.#size;
  }

  /** Runs in flight now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.size) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    try {
      return await fn();
    } finally {
      // The slot passes to the next caller directly (active stays), or is given back.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

/**
 * The slots every native call that runs on the pool takes, for the whole thread (each worker
 * thread has its own event loop, and its own share). Sized at the first call, as libuv sizes
 * the pool at its first use, so a UV_THREADPOOL_SIZE set after the imports counts.
 */
export const POOL_SLOTS = new Slots(() => Math.max(1, Math.floor(threadPoolSize() / 2)));

/** The one slot of the short requests (stats: the counter and per-CPU statistics, about a millisecond). */
export const SHORT_SLOTS = new Slots(1);

/** Runs one native call that holds a pool thread, when the library's share of the pool has room. */
export function onPool<T>(fn: () => Promise<T>): Promise<T> {
  return POOL_SLOTS.run(fn);
}
