/**
 * The files the CLI writes (--log, --metrics-file): what it agrees to open. A path in a shared
 * directory may hold something planted there, so an existing symlink, FIFO, device, socket,
 * directory, another user's file or a file others can write is refused (exit 2) before the
 * table is touched, and the open itself never follows a symlink and never blocks.
 */
import { accessSync, closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, rmSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { loadNative } from '../addon.js';
import type { NativeBinding } from '../native.js';
import { UsageError } from './args.js';

function kind(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link (give the real path)';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Why ctpurge will not write to this existing file, or undefined when it may. */
function refusal(st: Stats): string | undefined {
  if (!st.isFile()) return `is ${kind(st)}`;
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid && st.uid !== 0) return `belongs to uid ${st.uid}`;
  if ((st.mode & 0o022) !== 0) return `is writable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`;
  return undefined;
}

/** A file that does not exist yet: its directory must, and be one the process can create files in. */
function checkDirectory(option: string, file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${option}: directory ${dir} does not exist` : `${option}: cannot use directory ${dir}: ${code ?? (err as Error).message}`);
  }
  if (!st.isDirectory()) throw new UsageError(`${option}: ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${option}: cannot create files in ${dir}: ${code === 'EROFS' ? 'read-only filesystem' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message)}`);
  }
}

/**
 * Throws UsageError naming the option when a file at path must not be written (or cannot be
 * made). `replaced`: the file is written as a new file beside it, then renamed (the metrics),
 * so its directory must take new files even when the file exists.
 */
export function checkOutputFile(option: string, file: string, replaced = false): void {
  let st: Stats;
  try {
    st = lstatSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') {
      checkDirectory(option, file);
      return;
    }
    throw new UsageError(`${option}: cannot use ${file}: ${e.code ?? e.message}`);
  }
  const why = refusal(st);
  if (why) throw new UsageError(`${option}: ${file} ${why}; refusing to write to it`);
  if (replaced) checkDirectory(option, file);
}

/** An append-only audit log: NDJSON lines, written ahead of each delete (see PurgeOptions.logFd). */
export class AuditLog {
  #fd: number;
  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  get fd(): number {
    return this.#fd;
  }

  /** `-` is standard output. Throws UsageError (exit 2) for anything refused. */
  static open(file: string): AuditLog {
    return new AuditLog(file, file === '-' ? 1 : openLogFile(file));
  }

  /** After logrotate moved the file away: a new file at the same path; the old descriptor is closed. */
  reopen(): void {
    if (this.file === '-') return;
    const fd = openLogFile(this.file);
    const old = this.#fd;
    this.#fd = fd;
    closeSync(old);
  }

  close(): void {
    if (this.file !== '-' && this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

function openLogFile(file: string): number {
  checkOutputFile('--log', file);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO swapped in after the check cannot hang us (ENXIO with no reader).
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP') throw new UsageError(`--log: ${file} is a symbolic link (give the real path); refusing to write to it`);
    if (e.code === 'ENXIO') throw new UsageError(`--log: ${file} is a FIFO; refusing to write to it`);
    throw new UsageError(`--log: cannot open ${file}: ${e.code ?? e.message}`);
  }
  // What was opened, not what was checked: the path may have changed in between.
  const why = refusal(fstatSync(fd));
  if (why) {
    closeSync(fd);
    throw new UsageError(`--log: ${file} ${why}; refusing to write to it`);
  }
  return fd;
}

/**
 * The daemon's pid file (--pid-file), for logrotate's postrotate: this user's regular file
 * (anything else at the path, a hard link included, is replaced, never written through),
 * flock'd while the daemon lives, removed at exit when it still holds this pid.
 */
export class PidFile {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    private readonly binding: NativeBinding,
  ) {}

  /**
   * Writes the pid and holds an flock on the file for the daemon's life: a second daemon given
   * the same file is refused instead of taking it over, and a reader (logrotate's postrotate:
   * `flock -n -s FILE`) can tell a live daemon's file from a stale one, whose pid may now be
   * another process's. Throws UsageError (exit 2) for a path that must not be written.
   */
  static write(file: string, binding: NativeBinding = loadNative()): PidFile {
    checkOutputFile('--pid-file', file);
    try {
      return new PidFile(file, binding.lockPidFile(file), binding);
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { holderPid?: number };
      if (e.code === 'ELOCKED') {
        throw Object.assign(new Error(`--pid-file: ${file} belongs to a running ctpurge daemon${e.holderPid ? ` (pid ${e.holderPid})` : ''}; give each daemon its own pid file`), { code: 'ELOCKED' });
      }
      throw new UsageError(`--pid-file: cannot write ${file}: ${e.message}`);
    }
  }

  remove(): void {
    try {
      // Removed while still locked, so no reader takes a half-gone file for a live one.
      if (readFileSync(this.file, 'utf8').trim() === String(process.pid)) rmSync(this.file, { force: true });
    } catch {
      // gone already
    }
    this.binding.unlockFile(this.fd);
  }

  /** Runs a daemon with its pid in file (none without one), removed when it returns or throws. */
  static async around<T>(file: string | undefined, run: () => Promise<T>): Promise<T> {
    const pid = file ? PidFile.write(file) : undefined;
    try {
      return await run();
    } finally {
      pid?.remove();
    }
  }
}
