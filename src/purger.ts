/**
 * A purge on a schedule: the first run at start, then one every interval, never two at
 * once. Optional adaptive interval and a pressure gate. For services that embed ctpurge.
 */
import { EventEmitter } from 'node:events';
import type { KernelFeatures } from './kernel.js';
import { parseDuration } from './parse/duration.js';
import { statSync } from 'node:fs';
import { AbortError, ConntrackError } from './errors.js';
import { booleanField, fieldError, functionField, integerField, ownOptions, signalField, typeName } from './validate.js';
import type { Query } from './query.js';
import { refuseUnselective, toPlan, type QueryPlan } from './plan.js';
import { allowFlushFor, graceField, ruleField, type PurgeOptions, type PurgeResult } from './purge.js';

/** What a Purger needs from a handle: a Conntrack, or a stand-in with these members. */
export interface PurgeTarget {
  readonly kernel: KernelFeatures;
  readonly lanes: number;
  /**
   * The namespace file the target works in (Conntrack.netns), or null. A Purger checks
   * before every run that it still names the namespace it named at the start: one deleted
   * (`ip netns del`) or replaced would be purged of nothing, forever.
   */
  readonly netns?: string | null;
  usage(): Promise<{ count: number; max: number; usage: number }>;
  purge(options: PurgeOptions): Promise<PurgeResult>;
}

export interface PurgerOptions {
  /** What to purge (a query, or a plan from ct.plan()); a query that selects every entry of its kind is refused. */
  query: Query | QueryPlan;
  /** Interval between the end of one run and the start of the next: seconds or '5m'. */
  every: number | string;
  /**
   * Shorten the interval under pressure, lengthen it when runs find little (see
   * nextInterval). true uses bounds every/8 .. every*8.
   */
  adaptive?: boolean | { min?: number | string; max?: number | string };
  /** Only purge when count/max is above this share (0-1); otherwise the run is skipped. */
  whenAbove?: number;
  /** Stops the purger (the run in flight finishes its batch first). */
  signal?: AbortSignal;
  /** Forwarded to each purge; a function gets the table's size when the run starts (e.g. a share of it). */
  limit?: number | ((count: number) => number);
  dryRun?: boolean;
  /** Forwarded to each purge (see PurgeOptions.grace): a short timeout instead of a delete. Each run's result.settle tells what became of them. */
  grace?: number | string;
  /** Forwarded to each purge: the rule's name in its audit-log lines (PurgeOptions.rule). */
  rule?: string;
  /**
   * Taken before each run and released after it, e.g. acquirePurgeLock (the CLI's lock). It
   * gets the purger's signal, aborted by stop(): a wait for the lock should end with it.
   */
  lock?: (signal: AbortSignal) => Promise<{ release(): void }>;
  /** A write-ahead audit log (see PurgeOptions.logFd); a function is asked before each run (log reopening). */
  logFd?: number | (() => number);
}

export interface PurgerRun {
  result: PurgeResult | null;
  /** Set when whenAbove kept the run from purging. */
  skipped: boolean;
  /** count/max when the run started. */
  usage: number;
  count: number;
  max: number;
  /** Seconds until the next run. */
  nextInSeconds: number;
}

export interface AdaptiveState {
  interval: number;
  min: number;
  max: number;
}

/** An interval between runs (seconds or '5m'): at least 100 ms. The CLI's --every reads it too. */
export function parseInterval(value: unknown, field: string): number {
  const every = parseDuration(value, field);
  if (every < 0.1) throw fieldError(RangeError, field, 'must be at least 100ms');
  return every;
}

/** The fraction of the table a run must delete to count as "a large share". */
export const LARGE_SHARE = 0.1;
/** Below this fraction a run "found little". */
export const SMALL_SHARE = 0.01;
/** count/max above which the table counts as under pressure. */
export const PRESSURE = 0.8;

/**
 * The adaptive rule, the idea behind Cilium's conntrack GC interval and the kernel's own
 * gc worker: purge more often while purges find a lot or the table is near full, less
 * often while they find little.
 * - deleted >= 10% of the table, or count/max >= 0.8: halve the interval (not below min);
 * - deleted < 1% of the table and count/max < 0.8: grow it by half (not above max);
 * - otherwise keep it.
 */
export function nextInterval(state: AdaptiveState, deleted: number, tableSize: number, usage: number): number {
  const share = tableSize > 0 ? deleted / tableSize : 0;
  if (share >= LARGE_SHARE || usage >= PRESSURE) return Math.max(state.min, state.interval / 2);
  if (share < SMALL_SHARE) return Math.min(state.max, state.interval * 1.5);
  return state.interval;
}

export class Purger extends EventEmitter {
  readonly #ct: PurgeTarget;
  /** Planned once, for every run. */
  readonly #plan: QueryPlan;
  readonly #every: number;
  readonly #whenAbove: number | undefined;
  readonly #adaptive: AdaptiveState | null;
  readonly #limit: PurgerOptions['limit'];
  readonly #dryRun: boolean;
  readonly #grace: number | undefined;
  readonly #rule: string | undefined;
  readonly #lock: PurgerOptions['lock'];
  readonly #logFd: PurgerOptions['logFd'];
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #started = false;
  #stopped = false;
  #interval: number;
  /** The namespace's identity at construction (see PurgeTarget.netns). */
  readonly #netnsId: string | null;
  /** Failures already warned about (no 'error' listener): each message once. */
  readonly #warned = new Set<string>();

  constructor(ct: PurgeTarget, given: PurgerOptions) {
    super();
    const options = ownOptions<PurgerOptions>(given, 'Purger', ['query', 'every', 'adaptive', 'whenAbove', 'signal', 'limit', 'dryRun', 'grace', 'rule', 'lock', 'logFd']);
    // Everything a run would check is checked now, with the CLI's messages: a schedule that
    // cannot run fails when it is made, not an interval later.
    if (typeof options.limit === 'function') functionField(options.limit, 'limit');
    else if (options.limit !== undefined) integerField(options.limit, 'limit', 0, Number.MAX_SAFE_INTEGER);
    if (options.dryRun !== undefined) booleanField(options.dryRun, 'dryRun');
    this.#grace = options.grace === undefined ? undefined : graceField(options.grace, 'grace');
    this.#rule = options.rule === undefined ? undefined : ruleField(options.rule, 'rule');
    const plan = toPlan(options.query ?? {}, ct.kernel, { lanes: ct.lanes, allowFlush: allowFlushFor(options) });
    refuseUnselective(plan, 'schedule a purge');
    const every = parseInterval(options.every, 'every');
    if (options.whenAbove !== undefined && (typeof options.whenAbove !== 'number' || !(options.whenAbove >= 0 && options.whenAbove < 1))) {
      throw fieldError(RangeError, 'whenAbove', `expected a share of the table between 0 and 1, got ${typeName(options.whenAbove)}`);
    }
    if (options.signal !== undefined) signalField(options.signal, 'signal');
    this.#ct = ct;
    this.#netnsId = typeof ct.netns === 'string' ? namespaceId(ct.netns) : null;
    this.#plan = plan;
    this.#every = every;
    this.#interval = every;
    this.#whenAbove = options.whenAbove;
    this.#limit = options.limit;
    this.#dryRun = options.dryRun ?? false;
    if (options.lock !== undefined) functionField(options.lock, 'lock');
    this.#lock = options.lock;
    if (options.logFd !== undefined && typeof options.logFd !== 'function' && typeof options.logFd !== 'number') {
      throw fieldError(TypeError, 'logFd', `expected a file descriptor or a function returning one, got ${typeName(options.logFd)}`);
    }
    this.#logFd = options.logFd;
    const a = typeof options.adaptive === 'object' && options.adaptive !== null ? ownOptions<{ min?: number | string; max?: number | string }>(options.adaptive, 'adaptive', ['min', 'max'], true) : options.adaptive;
    if (a !== undefined && typeof a !== 'object' && typeof a !== 'boolean') throw fieldError(TypeError, 'adaptive', `expected true, false or { min, max }, got ${typeName(a)}`);
    if (a) {
      const min = typeof a === 'object' && a.min !== undefined ? parseDuration(a.min, 'adaptive.min') : every / 8;
      const max = typeof a === 'object' && a.max !== undefined ? parseDuration(a.max, 'adaptive.max') : every * 8;
      if (!(min > 0 && min <= every && every <= max)) throw fieldError(RangeError, 'adaptive', 'need 0 < min <= every <= max');
      this.#adaptive = { interval: every, min, max };
    } else {
      this.#adaptive = null;
    }
    options.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    if (options.signal?.aborted) this.#stopped = true;
  }

  /** 'run' (PurgerRun) after every run, 'error' (Error) when one fails, 'stop' once stopped. */
  override on(event: 'run', listener: (run: PurgerRun) => void): this;
  override on(event: 'error', listener: (err: Error) => void): this;
  override on(event: 'stop', listener: () => void): this;
  override on(event: string, listener: (...args: never[]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  /** Seconds between runs right now (changes in adaptive mode). */
  get interval(): number {
    return this.#interval;
  }

  /** True while a run is in flight (from start() until the first run ends, and during each later one). */
  get running(): boolean {
    return this.#running !== null;
  }

  /** True from start() until stop() (or the signal, or a fatal error) ends the schedule. */
  get active(): boolean {
    return this.#started && !this.#stopped;
  }

  /**
   * Starts: the first run begins now, then one runs every interval after the previous one
   * ended. The first run holds the process open until it ends (a script that starts a purger
   * and awaits nothing else still sees it run; `firstRun` resolves when it has); later runs
   * wait on unref'd timers, so a purger never keeps a process alive on its own. Returns this.
   */
  start(): this {
    if (this.#started || this.#stopped) return this;
    this.#started = true;
    this.#first = this.runNow().then(() => this.#schedule(this.#interval));
    return this;
  }

  #first: Promise<void> | null = null;

  /** The first run after start(): resolves when it has ended (failed runs included; see 'error'). */
  get firstRun(): Promise<void> {
    return this.#first ?? Promise.resolve();
  }

  /** Stops scheduling; a run in flight stops after its current batch. Resolves when it has. */
  async stop(): Promise<void> {
    if (this.#stopped) {
      await this.#running;
      return;
    }
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort.abort();
    await this.#running;
    this.emit('stop');
  }

  /** Runs once now unless a run is already going (then waits for that one). */
  async runNow(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = this.#run().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  #schedule(seconds: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.runNow().then(() => this.#schedule(this.#interval));
    }, seconds * 1000);
    // A purger must never keep its host process alive on its own.
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    try {
      this.#checkNamespace();
      const stats = await this.#ct.usage();
      const usage = stats.usage;
      let result: PurgeResult | null = null;
      const skipped = this.#whenAbove !== undefined && usage <= this.#whenAbove;
      if (!skipped) {
        const lock = this.#lock ? await this.#lock(this.#abort.signal) : null;
        try {
          const logFd = typeof this.#logFd === 'function' ? this.#logFd() : this.#logFd;
          const limit = typeof this.#limit === 'function' ? this.#limit(stats.count) : this.#limit;
          result = await this.#ct.purge({ plan: this.#plan, signal: this.#abort.signal, limit, dryRun: this.#dryRun, logFd, ...(this.#grace === undefined ? {} : { grace: this.#grace }), ...(this.#rule === undefined ? {} : { rule: this.#rule }) });
        } finally {
          lock?.release();
        }
      }
      if (this.#adaptive) {
        // A skipped run is a cheap check (one stats read): it stays at the base interval, so the
        // first purge after the table crosses whenAbove is at most one interval late (quiet
        // skips grew it to every x 8: 40 minutes with every 5m).
        this.#adaptive.interval = skipped ? this.#every : nextInterval(this.#adaptive, result?.deleted ?? 0, result?.tableSize ?? stats.count, usage);
        this.#interval = this.#adaptive.interval;
      }
      this.emit('run', { result, skipped, usage, count: stats.count, max: stats.max, nextInSeconds: this.#interval } satisfies PurgerRun);
    } catch (err) {
      // stop() during the lock wait, or before the purge started: nothing was done, and that is no failure.
      // (ours, a DOMException from signal.throwIfAborted(), or the lock function's own).
      if (this.#stopped && (err instanceof AbortError || (err as Error | undefined)?.name === 'AbortError')) return;
      const fatal = err instanceof ConntrackError && err.operation === 'netns';
      if (fatal) {
        // Nothing left to purge: the schedule ends (the 'stop' event follows the error).
        this.#stopped = true;
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = null;
        queueMicrotask(() => this.emit('stop'));
      }
      this.#report(err as Error);
    }
  }

  /**
   * A failed run goes to the 'error' listeners. With none, an EventEmitter would throw from a
   * timer and bring the service down; a purger warns once per distinct message instead
   * (process.emitWarning, code CTPURGE_PURGER_ERROR), and is never silent.
   */
  #report(err: Error): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (this.#warned.has(message) || this.#warned.size >= 32) return;
    this.#warned.add(message);
    process.emitWarning(`a scheduled purge failed and the Purger has no 'error' listener: ${message}`, { code: 'CTPURGE_PURGER_ERROR', detail: 'Add purger.on("error", ...) to handle failures.' });
  }

  /** Throws a ConntrackError (operation 'netns') when the target's namespace is gone or replaced. */
  #checkNamespace(): void {
    const file = this.#ct.netns;
    if (typeof file !== 'string' || this.#netnsId === null) return;
    const now = namespaceId(file);
    if (now === this.#netnsId) return;
    const gone = now === null;
    throw new ConntrackError(`${file} ${gone ? 'is gone (deleted with ip netns del?)' : 'was replaced by a new namespace'}; the purger stopped`, {
      code: gone ? 'ENOENT' : 'ESTALE',
      operation: 'netns',
      netns: file,
      hint: 'open a new handle on the current namespace and schedule again',
    });
  }
}

/** A namespace file's identity (device and inode); null once it is gone. */
export function namespaceId(file: string): string | null {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}
