/**
 * What the operations in their own modules (purge, export, streams) need from a Conntrack
 * handle, and nothing else: its native handle, and native calls tracked so close() waits for
 * them, their errors made ConntrackErrors.
 */
import type { NativeHandle } from './native.js';

export interface HandleAccess {
  /** The namespace file, for errors; null for the caller's own namespace. */
  readonly netns: string | null;
  /** The operator's name for it (Conntrack.netnsName), for audit lines; null for the caller's own. */
  readonly netnsName: string | null;
  /** The native handle; throws once close() was called. */
  native(): NativeHandle;
  /**
   * Runs one native call (on h, default: native()), tracked so close() lets it finish, within
   * the library's share of the thread pool (pool.ts) unless `paced`: a call its consumer paces
   * (an export waits for its reader), which must not hold up every other call while it waits.
   */
  call<T>(fn: (h: NativeHandle) => Promise<T>, h?: NativeHandle, paced?: boolean): Promise<T>;
}

/**
 * An AbortSignal as the flag the native lanes read between kernel reads (1 once aborted).
 * release() detaches it from the signal.
 */
export function abortFlag(signal: AbortSignal | undefined): { flag: Int32Array; aborted(): boolean; release(): void } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const onAbort = () => Atomics.store(flag, 0, 1);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  return { flag, aborted: () => Atomics.load(flag, 0) === 1, release: () => signal?.removeEventListener('abort', onAbort) };
}
