/**
 * One purge per namespace at a time: an flock(2) lock file under /run/ctpurge, named by the
 * namespace's inode so a name and a /proc path of the same namespace share it. The kernel
 * releases it when the holder exits, however it exits.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError, ConntrackError, throwIfAborted } from './errors.js';
import { loadNative } from './addon.js';
import type { NativeBinding } from './native.js';

export const DEFAULT_LOCK_DIR = '/run/ctpurge';

export interface PurgeLock {
  readonly file: string;
  release(): void;
}

/** How often a wait for the lock tries again: each try is one non-blocking flock(2). */
const RETRY_MS = 50;

/**
 * Takes the namespace's purge lock, waiting up to waitSeconds for another holder. The wait
 * holds no thread: each try is a non-blocking flock on a pool thread, and the waits between
 * tries are timers, so an embedding service's thread pool stays free. An abort of `signal`
 * ends the wait at once with an AbortError (nothing was purged).
 *
 * `target` is an open Conntrack handle (the lock is named by the namespace it has open, even if
 * its path now names another) or a namespace path (null: the caller's own namespace).
 */
export async function acquirePurgeLock(
  target: string | null | { readonly netns: string | null; readonly netnsInode: number | null },
  waitSeconds: number,
  options: { dir?: string; binding?: NativeBinding; signal?: AbortSignal } = {},
): Promise<PurgeLock> {
  const binding = options.binding ?? loadNative();
  const dir = options.dir ?? process.env.CTPURGE_LOCK_DIR ?? DEFAULT_LOCK_DIR;
  const netns = typeof target === 'object' && target !== null ? target.netns : target;
  throwIfAborted(options.signal, 'purge lock');
  const ino = typeof target === 'object' && target !== null && target.netnsInode !== null ? target.netnsInode : await namespaceInode(netns);
  await makeLockDir(dir, netns);
  const file = path.join(dir, `netns-${ino}.lock`);
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    let fd: number;
    try {
      fd = await binding.lockFile(file, 0);
    } catch (err) {
      const e = err as Error & { code?: string; holderPid?: number; errno?: number; syscall?: string };
      if (e.code === 'ELOCKED' && Date.now() < deadline) {
        try {
          await sleep(Math.min(RETRY_MS, Math.max(1, deadline - Date.now())), undefined, { signal: options.signal });
        } catch {
          throw new AbortError(`purge lock: aborted while waiting for ${file}; nothing was purged`, { cause: options.signal?.reason });
        }
        continue;
      }
      throw lockError(e, netns, file, waitSeconds);
    }
    let held = true;
    // Aborted while the last try ran: give the lock back, the purge does not start.
    if (options.signal?.aborted) {
      binding.unlockFile(fd);
      throwIfAborted(options.signal, 'purge lock');
    }
    return {
      file,
      release() {
        if (held) binding.unlockFile(fd);
        held = false;
      },
    };
  }
}

/**
 * The lock directory, made if missing (only its last component: a mistyped path must not
 * create a tree). It must be absolute: two runs from different directories share a lock only
 * through the same directory.
 */
async function makeLockDir(dir: string, netns: string | null): Promise<void> {
  const fail = (code: string, message: string, hint: string, cause?: NodeJS.ErrnoException) =>
    new ConntrackError(message, { code, errno: cause?.errno, syscall: cause?.syscall ?? 'mkdir', operation: 'lock', netns, hint });
  if (!path.isAbsolute(dir)) {
    throw fail('EINVAL', `the purge lock directory ${JSON.stringify(dir)} (CTPURGE_LOCK_DIR, or the dir option) is not an absolute path`, 'give an absolute path, e.g. /run/ctpurge, or unset CTPURGE_LOCK_DIR');
  }
  try {
    await mkdir(dir, { mode: 0o755 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') return;
    const why = e.code === 'ENOENT' ? `its parent directory ${path.dirname(dir)} does not exist` : e.message;
    throw fail(e.code ?? 'EIO', `cannot make the purge lock directory ${dir} (CTPURGE_LOCK_DIR): ${why}`, 'set CTPURGE_LOCK_DIR to a writable directory (systemd: RuntimeDirectory=ctpurge)', e);
  }
}

/** The inode that names a namespace's lock, read from its path; a gone namespace is ENOENT. */
async function namespaceInode(netns: string | null): Promise<number> {
  try {
    return (await stat(netns ?? '/proc/self/ns/net')).ino;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConntrackError(`cannot take the purge lock of ${netns}: ${e.message}`, {
      code: e.code ?? 'EIO',
      errno: e.errno,
      syscall: 'stat',
      operation: 'lock',
      netns,
      hint: e.code === 'ENOENT' ? 'the namespace is gone (deleted, or its process exited)' : 'check the namespace path',
    });
  }
}

function lockError(e: Error & { code?: string; holderPid?: number; errno?: number; syscall?: string }, netns: string | null, file: string, waitSeconds: number): ConntrackError {
  if (e.code === 'ELOCKED') {
    const who = e.holderPid && e.holderPid > 0 ? ` (pid ${e.holderPid})` : '';
    return new ConntrackError(`another ctpurge is purging ${netns ?? 'this namespace'}${who}`, {
      code: 'ELOCKED',
      operation: 'lock',
      netns,
      hint: `waited ${waitSeconds} s for ${file}; raise --lock-wait to wait longer`,
    });
  }
  return new ConntrackError(`cannot take the purge lock ${file}: ${e.message}`, {
    code: e.code ?? 'EIO',
    errno: e.errno,
    syscall: e.syscall,
    operation: 'lock',
    netns,
    hint: /belongs to uid/.test(e.message)
      ? "a lock directory holds one user's locks: give this user its own with CTPURGE_LOCK_DIR; see 'The purge lock and users' in docs/operations.md"
      : 'set CTPURGE_LOCK_DIR to a writable directory (systemd: RuntimeDirectory=ctpurge)',
  });
}
