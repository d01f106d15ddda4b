/** ctpurge list: matching entries as a table, conntrack-style lines, or NDJSON. */
import type { Conntrack, QueryPlan } from '../conntrack.js';
import type { ParsedArgs } from './args.js';
import { TABLE_HEADER, TableWriter } from './format.js';
import { ConntrackError } from '../errors.js';
import { PipeClosed, type Output } from './output.js';

export async function listCommand(ct: Conntrack, args: ParsedArgs, plan: QueryPlan, out: Output, signal?: AbortSignal): Promise<void> {
  // Every format is formatted and written by the dump threads straight to stdout: no chunk
  // crosses into JS (a Buffer per chunk kept tens of MB of garbage alive between collections,
  // a JS object per entry more), and a reader that does not drain makes the dump wait.
  const format = args.json ? 'ndjson' : args.output;
  let shown = 0;
  try {
    // SIGTERM/SIGINT stop it after the lines in flight.
    shown = await ct.exportTo(out.fd, plan, { format, ...(args.limit === undefined ? {} : { limit: args.limit }), ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof ConntrackError && err.code === 'EPIPE') throw new PipeClosed();
    throw err;
  }
  if (format === 'table' && shown === 0) await out.write(new TableWriter(TABLE_HEADER).format([]));
  if (format === 'conntrack' && !args.quiet) process.stderr.write(`ctpurge: ${shown} ${shown === 1 ? 'entry' : 'entries'} shown\n`);
}
