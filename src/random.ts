/** Random identifiers (a purge's run id, temporary file names). */
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * `bytes` random bytes from the kernel's generator, as hex. /dev/urandom is read directly:
 * loading node:crypto for these few bytes took 4 to 6 ms of every CLI run's start-up. Where
 * /dev/urandom cannot be read (a minimal chroot without /dev), node:crypto is loaded then.
 */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      for (let got = 0; got < bytes; ) {
        const n = readSync(fd, buf, got, bytes - got, null);
        if (n <= 0) throw new Error('/dev/urandom: short read');
        got += n;
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    const { randomBytes } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
    return randomBytes(bytes).toString('hex');
  }
  return buf.toString('hex');
}
