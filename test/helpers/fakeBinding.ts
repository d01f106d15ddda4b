/**
 * A typed fake of the native binding, for unit tests of everything above it (validation,
 * planning, scheduling, close) without a kernel. Each call is recorded; purge() and count()
 * can be slowed down to test what happens while they run.
 */
import { AGE_SOURCES, RECORD_SIZE } from '../../src/entry.js';
import { DCCP_STATES, PROTOCOLS, SCTP_STATES, STATUS_BITS, TCP_STATES } from '../../src/protocols.js';
import type { NativeBinding, NativeCursor, NativeEntrySpec, NativeEventCursor, NativeExportCounts, NativeExportOptions, NativeFilter, NativeHandle, NativeLane, NativePurgeCounts, NativePurgeOptions, NativeStats, NativeSummary, NativeSummaryOptions } from '../../src/native.js';

export interface FakeCalls {
  purge: { method: 'flush' | 'dump'; lanes: readonly NativeLane[]; options: NativePurgeOptions }[];
  export: { lanes: readonly NativeLane[]; options: NativeExportOptions }[];
  count: (readonly NativeLane[])[];
  dump: NativeLane[];
  summary: { lanes: readonly NativeLane[]; options: NativeSummaryOptions }[];
  closed: number;
  /** get, create and delete calls. */
  single: number;
  /** Their specs, in order, with the call's name. */
  specs: { call: 'get' | 'create' | 'delete'; spec: NativeEntrySpec }[];
  /** events() calls. */
  events: { match: NativeFilter; groups: number; receiveBuffer: number; format: string | undefined }[];
  /** Handles opened. */
  opened: number;
  /** The most purges ever in flight at once. */
  maxConcurrent: number;
  /** Purges that ended with their cancel flag set. */
  cancelled: number;
}

export interface FakeOptions {
  count?: number;
  max?: number;
  /** How long purge() and count() take. */
  delayMs?: number;
  /** What a purge deletes (asked when it ends). */
  deleted?: number | (() => number);
  /** What summary() returns. */
  summary?: NativeSummary;
  /** A purge's audit-log write (or an export's write) fails with this code, after `deleted` went (or were written). */
  logCode?: string;
  /** A purge rejects half-way with this code (a kernel failure), with its counts so far, as the addon does. */
  purgeCode?: string;
}

/** A summary of an empty table, in the native layout. */
export function emptySummary(): NativeSummary {
  const talkers = { families: new Uint8Array(0), addrs: new Uint8Array(0), counts: new Float64Array(0) };
  return {
    total: 0, unreplied: 0, protocols: new Float64Array(256),
    states: { tcp: new Float64Array(32), sctp: new Float64Array(32), dccp: new Float64Array(32) },
    ipv4: 0, ipv6: 0, ageSources: new Float64Array(3), idle: new Float64Array(8), age: new Float64Array(8),
    candidates: new Float64Array(3), dports: new Float64Array(0), classes: new Float64Array(0), sources: talkers, destinations: talkers, exactAbove: 0,
  };
}

const after = <T>(ms: number, value: () => T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value()), ms));

export function fakeBinding(opts: FakeOptions = {}): { binding: NativeBinding; calls: FakeCalls } {
  const calls: FakeCalls = { purge: [], export: [], count: [], dump: [], summary: [], closed: 0, single: 0, specs: [], events: [], opened: 0, maxConcurrent: 0, cancelled: 0 };
  let active = 0;
  const delay = opts.delayMs ?? 0;
  const emptyCursor = <T>(): NativeCursor<T> => ({ next: async () => null, close: () => undefined });
  const handle: NativeHandle = {
    stats: async (): Promise<NativeStats> => ({ count: opts.count ?? 1000, max: opts.max ?? 262144, cpus: [] }),
    count: (lanes) => {
      calls.count.push(lanes);
      return after(delay, () => opts.count ?? 1000);
    },
    get: async (spec) => {
      calls.single++;
      calls.specs.push({ call: 'get', spec });
      return null;
    },
    create: async (spec) => {
      calls.single++;
      calls.specs.push({ call: 'create', spec });
    },
    delete: async (spec) => {
      calls.single++;
      calls.specs.push({ call: 'delete', spec });
      return true;
    },
    settings: async () => ({ timeouts: { tcp: {}, udp: { unreplied: 30, stream: 120 }, icmp: 30, icmpv6: 30, generic: 600, policies: 0 }, sysctl: {} }),
    dump: (lane: NativeLane): NativeCursor<never> => {
      calls.dump.push(lane);
      return emptyCursor<never>();
    },
    summary: (lanes, options) => {
      calls.summary.push({ lanes, options });
      return after(delay, () => opts.summary ?? emptySummary());
    },
    purge: (method, lanes, options) => {
      calls.purge.push({ method, lanes, options });
      calls.maxConcurrent = Math.max(calls.maxConcurrent, ++active);
      if (opts.purgeCode !== undefined) {
        const code = opts.purgeCode;
        const matched = typeof opts.deleted === 'function' ? opts.deleted() : (opts.deleted ?? 0);
        const partial: NativePurgeCounts = { scanned: 10, matched, deleted: matched, vanished: 0, batches: 1, method, cancelled: false, limitReached: false, lostReports: 0, logged: 0, graced: 0, fixedTimeout: 0, offloaded: 0, expiring: 0 };
        return new Promise<NativePurgeCounts>((_, reject) =>
          setTimeout(() => {
            active--;
            reject(Object.assign(new Error('delete: No buffer space available'), { code, errno: -105, syscall: 'recvmsg', operation: 'delete', partial }));
          }, delay),
        );
      }
      return after(delay, (): NativePurgeCounts => {
        active--;
        const cancelled = options.cancel !== undefined && Atomics.load(options.cancel, 0) === 1;
        if (cancelled) calls.cancelled++;
        const matched = typeof opts.deleted === 'function' ? opts.deleted() : (opts.deleted ?? 0);
        const failed = opts.logCode === undefined ? {} : { logCode: opts.logCode, logErrno: -28 };
        return { scanned: opts.count ?? 1000, matched, deleted: options.dryRun ? 0 : matched, vanished: 0, batches: 1, method, cancelled, limitReached: false, lostReports: 0, logged: matched, graced: 0, fixedTimeout: 0, offloaded: 0, expiring: 0, ...failed };
      });
    },
    export: (lanes, options) => {
      calls.export.push({ lanes, options });
      const written = typeof opts.deleted === 'function' ? opts.deleted() : (opts.deleted ?? 0);
      const failed = opts.logCode === undefined ? {} : { writeCode: opts.logCode, writeErrno: -28 };
      return after(delay, (): NativeExportCounts => ({ written, cancelled: options.cancel !== undefined && Atomics.load(options.cancel, 0) === 1, limitReached: false, ...failed }));
    },
    events: (match: NativeFilter, groups: number, receiveBuffer: number, format?: string): NativeEventCursor<never> => {
      calls.events.push({ match, groups, receiveBuffer, format });
      return { next: async () => null, close: () => undefined };
    },
    close: () => {
      calls.closed++;
    },
    inode: () => null,
  };
  const binding: NativeBinding = {
    open: async () => {
      calls.opened++;
      return handle;
    },
    estimateAge: () => null,
    formatRecords: () => '',
    recordSize: RECORD_SIZE,
    names: { protocols: { ...PROTOCOLS }, tcp: [...TCP_STATES], sctp: [...SCTP_STATES], dccp: [...DCCP_STATES], status: Object.keys(STATUS_BITS), ageSources: [...AGE_SOURCES] },
    lockFile: async () => -1,
    unlockFile: () => undefined,
    lockPidFile: () => -1,
  };
  return { binding, calls };
}

export const FAKE_KERNEL = { release: '6.18.0', statusFilter: true, zoneFilter: true, tupleDumpFilter: true, tupleFlushFilter: true, kernelFilters: true };
