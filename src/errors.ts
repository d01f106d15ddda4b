/** ConntrackError: Node's SystemError shape (code, errno, syscall) plus a hint. */
import type { PurgeResult } from './purge.js';

/** What an operation had done when it failed part-way (see ConntrackError.partial). */
export type PartialResult =
  /** A purge whose audit log failed (operation 'log'): the result so far. */
  | { kind: 'purge'; result: PurgeResult }
  /** An export whose write failed (operation 'write'): the lines written before it. */
  | { kind: 'export'; written: number };

export interface ConntrackErrorInit {
  code: string;
  errno?: number;
  syscall?: string;
  operation?: string;
  netns?: string | null;
  hint?: string;
  partial?: PartialResult;
}

export class ConntrackError extends Error {
  readonly code: string;
  /** Negative, like Node's: -1 for EPERM. */
  readonly errno: number | undefined;
  readonly syscall: string | undefined;
  /** What ctpurge was doing: open, dump, delete, flush, ... */
  readonly operation: string | undefined;
  readonly netns: string | null;
  readonly hint: string | undefined;
  /**
   * Set when the operation failed part-way and what it had done is known: `kind` says which
   * (a purge stopped by its audit log, an export stopped by its write).
   */
  readonly partial: PartialResult | undefined;

  constructor(message: string, init: ConntrackErrorInit) {
    super(message);
    this.name = 'ConntrackError';
    this.code = init.code;
    this.errno = init.errno;
    this.syscall = init.syscall;
    this.operation = init.operation;
    this.netns = init.netns ?? null;
    this.hint = init.hint;
    this.partial = init.partial;
  }
}

/**
 * Node's AbortError (name 'AbortError', code 'ABORT_ERR', the signal's reason as its cause):
 * what an operation given an already aborted signal rejects with, having touched nothing.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** Throws an AbortError when the signal is already aborted: the operation does not start. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortError(`${what}: the signal was aborted before it started; nothing was done`, { cause: signal.reason });
}

interface NativeErrorShape {
  message?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  operation?: string;
}

export function hintFor(code: string, syscall: string | undefined, operation: string | undefined, netns: string | null): string | undefined {
  switch (code) {
    case 'EPERM':
    case 'EACCES':
      if (syscall === 'setns') {
        return 'entering another network namespace needs CAP_SYS_ADMIN; run as root, or run ctpurge inside the namespace (ip netns exec NAME ctpurge ...)';
      }
      return 'ctnetlink needs CAP_NET_ADMIN: run as root, or grant only that capability (setpriv --inh-caps=+net_admin --ambient-caps=+net_admin, or AmbientCapabilities=CAP_NET_ADMIN in a systemd unit)';
    case 'ENOENT':
      if (operation === 'open' && netns) return `no network namespace at ${netns}; list them with: ip netns list`;
      return undefined;
    case 'EINVAL':
      if (operation === 'open' && netns) return `${netns} is not a network namespace file (use a name from ip netns list, or /proc/PID/ns/net)`;
      return 'the kernel rejected the request; an older kernel may not support this filter';
    case 'EPROTONOSUPPORT':
    case 'EAFNOSUPPORT':
      return 'conntrack netlink support is missing: modprobe nf_conntrack_netlink';
    case 'EOPNOTSUPP':
      return 'the kernel was built without this conntrack feature (zones, marks or labels)';
    case 'ENOBUFS':
      return 'the socket buffer overflowed and the kernel dropped messages; retry';
    case 'EBUSY':
      return 'the kernel refused to change a status bit it does not allow to change (only SEEN_REPLY and ASSURED can be set)';
    case 'EEXIST':
      return 'an entry with this tuple already exists in this zone';
    default:
      return undefined;
  }
}

/**
 * Turns the native error into a ConntrackError. `captured` is an Error made before the
 * call, so the stack points at the caller's code, not at the event loop.
 */
export function fromNative(err: unknown, captured: Error, netns: string | null): Error {
  if (!(err instanceof Error)) return err as Error;
  const e = err as Error & NativeErrorShape;
  if (typeof e.code !== 'string') return err;
  const hint = hintFor(e.code, e.syscall, e.operation, netns);
  const where = e.operation ? `${e.operation}: ` : '';
  const out = new ConntrackError(`${where}${e.message}${hint ? ` (${hint})` : ''}`, {
    code: e.code,
    errno: e.errno,
    syscall: e.syscall,
    operation: e.operation,
    netns,
    hint,
    partial: partialOf((err as { partial?: unknown }).partial),
  });
  if (captured.stack) out.stack = `${out.name}: ${out.message}\n${captured.stack.split('\n').slice(1).join('\n')}`;
  return out;
}

/** A partial result the operation attached to the native error (see runPurge), when it is one. */
function partialOf(p: unknown): PartialResult | undefined {
  if (p === null || typeof p !== 'object') return undefined;
  const kind = (p as { kind?: unknown }).kind;
  return kind === 'purge' || kind === 'export' ? (p as PartialResult) : undefined;
}

/** An Error holding the caller's stack, made before an async native call (see fromNative). */
export function captureStack(): Error {
  const e = new Error();
  Error.captureStackTrace(e, captureStack);
  return e;
}
