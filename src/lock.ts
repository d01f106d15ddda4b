/**
 * One purge per namespace at a time: an flock(2) lock file under /run/ctpurge, named by the
 * namespace's inode so a name and a /proc path of the same namespace share it. The kernel
 * releases it when the holder exits, however it exits.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConntrackError } from './errors.js';
import { loadNative, type NativeBinding } from './native.js';

export const DEFAULT_LOCK_DIR = '/run/ctpurge';

export interface PurgeLock {
  readonly file: string;
  release(): void;
}

export async function acquirePurgeLock(
  netns: string | null,
  waitSeconds: number,
  options: { dir?: string; binding?: NativeBinding } = {},
): Promise<PurgeLock> {
  const binding = options.binding ?? loadNative();
  const dir = options.dir ?? process.env.CTPURGE_LOCK_DIR ?? DEFAULT_LOCK_DIR;
  const nsFile = netns ?? '/proc/self/ns/net';
  const { ino } = await stat(nsFile);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `netns-${ino}.lock`);
  try {
    const fd = await binding.lockFile(file, waitSeconds * 1000);
    let held = true;
    return {
      file,
      release() {
        if (held) binding.unlockFile(fd);
        held = false;
      },
    };
  } catch (err) {
    const e = err as Error & { code?: string; holderPid?: number; errno?: number; syscall?: string };
    if (e.code === 'ELOCKED') {
      const who = e.holderPid && e.holderPid > 0 ? ` (pid ${e.holderPid})` : '';
      throw new ConntrackError(`another ctpurge is purging ${netns ?? 'this namespace'}${who}`, {
        code: 'ELOCKED',
        operation: 'lock',
        netns,
        hint: `waited ${waitSeconds} s for ${file}; raise --lock-wait to wait longer`,
      });
    }
    throw new ConntrackError(`cannot take the purge lock ${file}: ${e.message}`, {
      code: e.code ?? 'EIO',
      errno: e.errno,
      syscall: e.syscall,
      operation: 'lock',
      netns,
      hint: 'set CTPURGE_LOCK_DIR to a writable directory (systemd: RuntimeDirectory=ctpurge)',
    });
  }
}
