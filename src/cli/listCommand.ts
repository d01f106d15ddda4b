/** ctpurge list: matching entries as a table, conntrack-style lines, or NDJSON. */
import type { Conntrack } from '../conntrack.js';
import { decodeRecords } from '../entry.js';
import type { ParsedArgs } from './args.js';
import { conntrackLine, jsonLine, TABLE_HEADER, TableWriter, tableRow } from './format.js';
import { ConntrackError } from '../errors.js';
import { PipeClosed, type Output } from './output.js';

export async function listCommand(ct: Conntrack, args: ParsedArgs, out: Output, signal?: AbortSignal): Promise<void> {
  let shown = 0;
  const limit = args.limit ?? Infinity;
  const table = new TableWriter(TABLE_HEADER);
  // The whole selection as NDJSON or conntrack lines, formatted and written by the dump
  // threads straight to the descriptor: no chunk crosses into JS (a Buffer per chunk kept tens
  // of MB of garbage alive between collections), and a reader that does not drain makes the
  // dump wait.
  const fd = (out.stream as { fd?: unknown }).fd;
  if (args.limit === undefined && (args.json || args.output === 'conntrack') && typeof fd === 'number') {
    let shownLines = 0;
    try {
      // SIGTERM/SIGINT stop it after the lines in flight.
      shownLines = await ct.exportTo(fd, args.query, { format: args.json ? 'ndjson' : 'conntrack', ...(signal ? { signal } : {}) });
    } catch (err) {
      if (err instanceof ConntrackError && err.code === 'EPIPE') throw new PipeClosed();
      throw err;
    }
    if (!args.json && !args.quiet) process.stderr.write(`ctpurge: ${shownLines} ${shownLines === 1 ? 'entry' : 'entries'} shown\n`);
    return;
  }
  if (args.json && args.limit === undefined) {
    for await (const text of ct.listNdjson(args.query)) await out.write(text);
    return;
  }
  for await (const chunk of ct.listChunks(args.query)) {
    const lines: string[] = [];
    const rows: string[][] = [];
    for (const e of decodeRecords(chunk)) {
      if (shown >= limit) break;
      shown++;
      if (args.json) lines.push(jsonLine(e));
      else if (args.output === 'conntrack') lines.push(conntrackLine(e));
      else rows.push(tableRow(e));
    }
    await out.write(rows.length ? table.format(rows) : lines.length ? `${lines.join('\n')}\n` : '');
    if (shown >= limit) break;
  }
  if (!args.json && args.output === 'table' && shown === 0) await out.write(table.format([]));
  if (!args.json && args.output !== 'table' && !args.quiet) {
    process.stderr.write(`ctpurge: ${shown} ${shown === 1 ? 'entry' : 'entries'} shown\n`);
  }
}
