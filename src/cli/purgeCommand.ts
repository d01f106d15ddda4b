/** The default command: purge matching entries. */
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import type { Conntrack, PurgeResult } from '../conntrack.js';
import type { Entry } from '../entry.js';
import type { ParsedArgs } from './args.js';
import { UsageError } from './args.js';
import { formatCount, jsonLine } from './format.js';
import { Progress } from './output.js';

/** Opens --log before anything is deleted: a log that cannot be written must stop the purge, not follow it. */
export function openLog(file: string): number {
  try {
    const fd = openSync(file, 'a', 0o600);
    if (!fstatSync(fd).isFile() && !fstatSync(fd).isFIFO()) {
      closeSync(fd);
      throw new UsageError(`--log: ${file} is not a regular file`);
    }
    return fd;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`--log: cannot open ${file}: ${e.code ?? e.message}`);
  }
}

export async function purgeCommand(ct: Conntrack, args: ParsedArgs, description: string, signal: AbortSignal): Promise<PurgeResult> {
  const logFd = args.log ? openLog(args.log) : undefined;
  const wantEntries = logFd !== undefined || (args.json && args.dryRun && args.verbose);
  const progress = new Progress(process.stderr.isTTY === true && !args.quiet);
  let pending: string[] = [];
  const flush = () => {
    if (logFd !== undefined && pending.length) writeSync(logFd, pending.join(''));
    pending = [];
  };
  try {
    const result = await ct.purge({
      ...args.query,
      dryRun: args.dryRun,
      limit: args.limit,
      signal,
      onDeleted: wantEntries
        ? (e: Entry) => {
            pending.push(`${jsonLine(e)}\n`);
            if (pending.length >= 1024) flush();
          }
        : undefined,
      onProgress: (p) => {
        flush();
        progress.update(`${args.dryRun ? 'matched' : 'purged'} ${formatCount(args.dryRun ? p.matched : p.deleted)}, scanned ${formatCount(p.scanned)}`);
      },
    });
    flush();
    progress.clear();
    if (args.verbose && !args.json) {
      process.stderr.write(`query: ${description}; method: ${result.method}; ${result.scanned} scanned${ct.netns ? `; netns ${ct.netns}` : ''}\n`);
    }
    return result;
  } finally {
    progress.clear();
    if (logFd !== undefined) closeSync(logFd);
  }
}

export function purgeSummary(r: PurgeResult): string {
  const secs = (r.durationMs / 1000).toFixed(r.durationMs < 10000 ? 2 : 1);
  const tail = [r.cancelled ? 'stopped early' : '', r.limitReached ? 'limit reached' : '', r.lostReports ? `${r.lostReports} batch reports lost` : '']
    .filter(Boolean)
    .join(', ');
  const head = r.dryRun
    ? `would purge ${formatCount(r.matched)} of ${formatCount(r.tableSize)} entries (dry run)`
    : `purged ${formatCount(r.deleted)} of ${formatCount(r.tableSize)} entries (${formatCount(r.matched)} matched, ${formatCount(r.vanished)} vanished)`;
  return `${head} in ${secs} s${tail ? `; ${tail}` : ''}`;
}
