/**
 * Output helpers for the CLI: the table's header and column layout (for an empty table: the
 * rows themselves are written by native/tableText.cc), counts, bars and percentages.
 */

export const TABLE_HEADER = ['PROTO', 'STATE', 'ORIGINAL', '', 'FLAGS', 'TIMEOUT', 'IDLE', 'AGE', 'AGE FROM', 'ZONE', 'MARK'];

/** Aligns columns; widths only grow, so a streamed table stays aligned chunk after chunk. */
export class TableWriter {
  #widths: number[];
  #header: string[] | null;
  constructor(header: string[]) {
    this.#widths = header.map((h) => h.length);
    this.#header = header;
  }
  /** Formats rows; the first call also prints the header, aligned to the first rows. */
  format(input: string[][]): string {
    const rows = this.#header ? [this.#header, ...input] : input;
    this.#header = null;
    for (const r of rows) r.forEach((c, i) => (this.#widths[i] = Math.max(this.#widths[i] ?? 0, c.length)));
    return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(this.#widths[i] ?? 0))).join('  ').trimEnd()).join('\n') + (rows.length ? '\n' : '');
  }
}

/**
 * 1048576 -> '1,048,576', as toLocaleString('en-US') writes it, without Intl for whole numbers:
 * its first use loads ICU's number data, which was 25 ms of a CLI run that prints one line.
 */
export function formatCount(n: number): string {
  if (!Number.isSafeInteger(n)) return n.toLocaleString('en-US');
  return String(n).replace(/\B(?=(\d{3})+$)/g, ',');
}

export function bar(fraction: number, width = 24): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return '█'.repeat(full) + '·'.repeat(width - full);
}

export function percent(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '0.0%';
}
