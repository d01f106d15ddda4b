/**
 * libuv's thread pool is shared by the whole process: fs, dns.lookup, crypto and zlib queue on
 * it beside ctpurge's native calls, each of which holds one pool thread while it runs (a purge,
 * a count, a summary, one chunk of a dump, one 200 ms poll slice of an event stream). Left
 * alone, 70 concurrent operations of an embedding service made an fs.readFile wait 3 s. So
 * the library holds at most half the pool (at least one thread) at once, process-wide, across
 * every handle; further native calls wait here, in order, on the event loop.
 */

/** The pool's size as libuv reads it at its first use: UV_THREADPOOL_SIZE (1-1024), default 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/** A FIFO counting semaphore: run(fn) starts fn when fewer than `size` runs are in flight. */
export class Slots {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

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

/** The slots every native call that runs on the pool takes, for the whole process. */
export const POOL_SLOTS = new Slots(Math.max(1, Math.floor(threadPoolSize() / 2)));

/** Runs one native call that holds a pool thread, when the library's share of the pool has room. */
export function onPool<T>(fn: () => Promise<T>): Promise<T> {
  return POOL_SLOTS.run(fn);
}
