/** Conntrack.purge: its options, its result, and the run of a planned purge. */
import { randomHex } from './random.js';
import { ConntrackError, throwIfAborted, type PartialResult } from './errors.js';
import { decodeRecords, type Entry } from './entry.js';
import type { KernelFeatures } from './kernel.js';
import { abortFlag, type HandleAccess } from './handleAccess.js';
import type { NativePurgeCounts } from './native.js';
import { isQueryPlan, refuseUnselective, toPlan, type QueryPlan } from './plan.js';
import { QUERY_FIELDS, UNSET_FILTER, type Query } from './query.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDuration } from './parse/duration.js';
import { bare, booleanField, fdField, fieldError, functionField, limitField, ownOptions, signalField, typeName } from './validate.js';

export interface PurgeOptions extends Query {
  /** A plan from ct.plan() or planQuery(), instead of the query fields (see docs/api.md). */
  plan?: QueryPlan;
  /** Count (and report through onDeleted) what would go; delete nothing. */
  dryRun?: boolean;
  /** At most this many delete requests. */
  limit?: number;
  /** Called for every deleted entry (in a dry run: every entry that would go). */
  onDeleted?: (entry: Entry) => void;
  /** Called about every 200 ms with the counts so far. */
  onProgress?: (progress: PurgeProgress) => void;
  /**
   * Stops the purge: aborted before it starts, purge() rejects with an AbortError and touches
   * nothing; during a run, no batch is sent after the abort (cancelled: true), and what was
   * already deleted is counted.
   */
  signal?: AbortSignal;
  /**
   * A write-ahead audit log: an open file descriptor that gets each entry's NDJSON line (the
   * `list --json` format, plus `time`: when the line was written, just before its delete;
   * `run`: the result's `run`; `netns`: the handle's namespace or null) before the batch
   * holding it is deleted; in a dry run, each match.
   * No entry is deleted without its line. A failed or short write stops the purge before the
   * next delete: purge() then rejects with a ConntrackError (operation 'log', the write's
   * code) whose `partial` is `{ kind: 'purge', result }`, the result so far. Never used with a flush.
   */
  logFd?: number;
  /**
   * The careful path: instead of deleting, give each match this long to show a packet
   * (seconds, or '60s', '5m'; 1 s to 5 minutes, see MAX_GRACE). The kernel sets the entry's timeout to it; a live
   * flow's next packet restores its policy timeout, a silent one expires. Entries with a fixed
   * timeout (the kernel refuses), offloaded ones (the kernel's gc rewrites their timeout) and
   * ones due to expire within the grace anyway are counted and left as they are. A flow whose
   * dead peer still gets one-way traffic (stale NAT) refreshes itself forever: delete those.
   */
  grace?: number | string;
  /** A name for this purge in its audit-log lines (`"rule": NAME`): which rule of a rules file took each entry. */
  rule?: string;
}

/** What became of the entries a grace was given (PurgeResult.settle). */
export interface GraceOutcome {
  /** Gone: no packet came within the grace. */
  expired: number;
  /** Still there, with their id: a packet restored the policy timeout (with complete false: or the grace is not over yet). */
  alive: number;
  /** False when the wait was cut short (the signal): then `alive` are only "not expired yet". */
  complete: boolean;
}

export interface PurgeProgress {
  scanned: number;
  matched: number;
  deleted: number;
  vanished: number;
}

export interface PurgeResult {
  /** This purge's id (12 hex digits), also in each of its audit-log lines: which run deleted what. */
  run: string;
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
  /** The grace given, in seconds; null for a delete. */
  grace: number | null;
  /** Entries given the grace (a timeout update the kernel accepted); 0 for a delete. */
  graced: number;
  /** With grace: matches left as they are: a fixed timeout, offloaded, or due to expire within the grace anyway. */
  fixedTimeout: number;
  offloaded: number;
  expiring: number;
  /**
   * With grace (not a dry run): waits until the grace has passed since the run ended (plus a
   * second), then counts which of the entries given it expired and which proved alive. Each is
   * found by its id, so a new flow on the same tuple is not counted. An aborted signal ends the
   * wait early: the count is then of what has expired so far (complete: false). Null for a
   * delete. (Not in JSON.)
   */
  settle: ((options?: { signal?: AbortSignal }) => Promise<GraceOutcome>) | null;
}

const PURGE_KEYS = ['plan', 'dryRun', 'limit', 'onDeleted', 'onProgress', 'signal', 'logFd', 'grace', 'rule'] as const;

/** The options of one purge, validated, with its plan. */
export interface PurgeRequest {
  plan: QueryPlan;
  dryRun: boolean;
  limit?: number;
  onDeleted?: (entry: Entry) => void;
  onProgress?: (progress: PurgeProgress) => void;
  signal?: AbortSignal;
  logFd?: number;
  /** Seconds. */
  grace?: number;
  rule?: string;
}

/** Whether a purge with these options may flush: a flush deletes what no one has seen (and a grace deletes nothing). */
export function allowFlushFor(o: { dryRun?: boolean; limit?: unknown; onDeleted?: unknown; logFd?: unknown; grace?: unknown }): boolean {
  return o.dryRun !== true && o.limit === undefined && o.onDeleted === undefined && o.logFd === undefined && o.grace === undefined;
}

/**
 * The longest grace: 5 minutes. A graced entry's age and idle time are read from the timeout
 * it has left; up to the shortest timeout of its state (300 s, TCP's unacknowledged-data one)
 * the estimate stays short, but a TCP entry with 10 minutes left reads as idle for 5 days, and
 * a delete rule (`--idle 1d`) would take the entries a grace was giving a chance.
 */
export const MAX_GRACE = 300;

/** A rule's name: what a rules file allows (it becomes a metrics label and a log member). */
export const RULE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function ruleField(value: unknown, field: string): string {
  if (typeof value !== 'string' || !RULE_NAME.test(value)) throw fieldError(TypeError, field, `expected lowercase letters, digits, - and _ (at most 63), got ${typeName(value)}`);
  return value;
}

/** A grace: a duration of 1 s to 5 minutes (MAX_GRACE), whole seconds. */
export function graceField(value: unknown, field: string): number {
  const seconds = parseDuration(value, field);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_GRACE) throw fieldError(RangeError, field, `expected 1s to 5m in whole seconds, got ${typeName(value)}`);
  return seconds;
}

/**
 * Validates purge options (own fields only, one snapshot) and plans the query for this kernel
 * and lane count; a given plan is used as it is when it was made for them. Refuses a query that
 * selects every entry of its kind (see refuseUnselective).
 */
export function purgeRequest(options: PurgeOptions, kernel: KernelFeatures, lanes: number): PurgeRequest {
  const own = ownOptions<Record<string, unknown>>(options, 'purge', [...PURGE_KEYS, ...QUERY_FIELDS]);
  const dryRun = own.dryRun === undefined ? false : booleanField(own.dryRun, 'dryRun');
  // No prototype: runPurge reads these fields, and a polluted Object.prototype must not fill the absent ones.
  const r: Omit<PurgeRequest, 'plan'> = bare({ dryRun });
  if (own.grace !== undefined) r.grace = graceField(own.grace, 'grace');
  if (own.rule !== undefined) r.rule = ruleField(own.rule, 'rule');
  if (own.limit !== undefined) r.limit = limitField(own.limit, 'limit');
  if (own.onDeleted !== undefined) r.onDeleted = functionField(own.onDeleted, 'onDeleted') as PurgeRequest['onDeleted'];
  if (own.onProgress !== undefined) r.onProgress = functionField(own.onProgress, 'onProgress') as PurgeRequest['onProgress'];
  if (own.signal !== undefined) r.signal = signalField(own.signal, 'signal');
  if (own.logFd !== undefined) r.logFd = fdField(own.logFd, 'logFd');
  const query: Record<string, unknown> = {};
  for (const k of QUERY_FIELDS) if (k in own) query[k] = own[k];
  if (own.plan !== undefined) {
    if (!isQueryPlan(own.plan)) throw fieldError(TypeError, 'plan', 'expected a plan from ct.plan() or planQuery()');
    if (Object.keys(query).length > 0) throw fieldError(TypeError, 'plan', 'give a plan or query fields, not both');
  }
  const plan = toPlan(own.plan ?? (query as Query), kernel, { lanes, allowFlush: allowFlushFor(r) });
  refuseUnselective(plan, 'purge');
  return bare({ plan, ...r });
}

/** Runs a validated purge on the handle: the plan's method, its lanes, the options. */
export async function runPurge(access: HandleAccess, request: PurgeRequest): Promise<PurgeResult> {
  const { plan, dryRun, limit, onDeleted, onProgress, signal, logFd, grace, rule } = request;
  throwIfAborted(signal, 'purge');
  const handle = access.native();
  const cancel = abortFlag(signal);
  let callbackError: unknown;
  const started = performance.now();
  const run = randomHex(6);
  // Each audit line ends with these members (after "time", which the addon writes).
  const named = access.netnsName === null || access.netnsName === access.netns ? '' : `,"netnsName":${JSON.stringify(access.netnsName)}`;
  const logTag = logFd === undefined ? undefined : `,"run":"${run}","netns":${JSON.stringify(access.netns)}${named}${rule === undefined ? '' : `,"rule":"${rule}"`}${grace === undefined ? '' : `,"grace":${grace}`}`;
  try {
    const tableSize = (await access.call((h) => h.stats(), handle)).count;
    const resultOf = (counts: NativePurgeCounts): PurgeResult => ({
      run,
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
      grace: grace ?? null,
      graced: counts.graced,
      fixedTimeout: counts.fixedTimeout,
      offloaded: counts.offloaded,
      expiring: counts.expiring,
      settle: null,
    });
    const counts: NativePurgeCounts = await access.call(
      () =>
        handle
          .purge(plan.method, plan.lanes, { dryRun, limit, wantEntries: onDeleted !== undefined, grace, collectGraced: grace !== undefined && !dryRun, logFd, logTag, cancel: cancel.flag }, (progress, records) => {
            try {
              if (records && onDeleted) for (const e of decodeRecords(records)) onDeleted(e);
              onProgress?.({ scanned: progress.scanned, matched: progress.matched, deleted: progress.deleted, vanished: progress.vanished });
            } catch (err) {
              callbackError ??= err;
            }
          })
          .catch((err: unknown) => {
            // A purge that fails half-way (ENOBUFS, EPERM, ...): the addon says how far it got;
            // what was deleted stays deleted, and the error says so (ConntrackError.partial).
            const counts = (err as { partial?: NativePurgeCounts } | null)?.partial;
            if (err instanceof Error && counts && typeof counts === 'object') {
              const partial: PartialResult = { kind: 'purge', result: resultOf(counts) };
              Object.assign(err, { partial });
            }
            throw err;
          }),
      handle,
    );
    if (callbackError !== undefined) throw callbackError;
    const result = resultOf(counts);
    if (counts.logCode !== undefined) {
      throw new ConntrackError(`cannot write the audit log: ${counts.logCode}; stopped before the next delete (${counts.deleted} deleted, ${counts.logged} logged)`, {
        code: counts.logCode,
        errno: counts.logErrno,
        syscall: 'write',
        operation: 'log',
        netns: access.netns,
        hint: counts.logCode === 'ENOSPC' || counts.logCode === 'EDQUOT' ? "free space on the log's filesystem, or point --log elsewhere" : undefined,
        partial: { kind: 'purge', result },
      });
    }
    const ids = counts.gracedIds;
    if (grace !== undefined && ids) {
      const due = Date.now() + (grace + 1) * 1000;
      result.settle = (options = {}) => settleGrace(access, ids, due, ownOptions<{ signal?: AbortSignal }>(options, 'settle', ['signal']).signal);
    }
    return result;
  } finally {
    cancel.release();
  }
}

/**
 * Waits until a grace is over (due: ms since the epoch), then counts the entries given it that
 * are still in the table: each kept its id, so a flow that reused a tuple since is not counted.
 * A dump never shows an expired entry, reaped or not.
 */
async function settleGrace(access: HandleAccess, given: Uint32Array, due: number, signal: AbortSignal | undefined): Promise<GraceOutcome> {
  if (signal !== undefined) signalField(signal, 'signal');
  // A dump can send an entry twice while the table changes: each id is counted once.
  const ids = unique(given);
  if (ids.length === 0) return { expired: 0, alive: 0, complete: true };
  let complete = true;
  await sleep(Math.max(0, due - Date.now()), undefined, { signal }).catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
    complete = Date.now() >= due;
  });
  const lane = bare({ kernel: bare({ family: 0 }), match: bare({ ...UNSET_FILTER, ids }) });
  const alive = await access.call((h) => h.count([lane]));
  return { expired: ids.length - alive, alive, complete };
}

/** The ids sorted, each once. */
function unique(ids: Uint32Array): Uint32Array {
  const sorted = Uint32Array.from(ids).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i] as number;
  return sorted.subarray(0, n);
}
