/**
 * A daemon's waits for its graces' outcomes (--grace with --every): each is waited for beside
 * the runs (neither a run nor the next one waits for it), then recorded and said in a line. On
 * the way out (end) the waits are cut short: what has expired by then is counted.
 */
import type { GraceOutcome } from '../purge.js';
import type { PendingGrace } from './oneShot.js';
import { graceOutcomeLine } from './purgeCommand.js';

export class GraceWaits {
  readonly #settles = new Set<Promise<void>>();
  readonly #end = new AbortController();

  /** quiet: no lines; json: JSON lines; sink: where the lines go. */
  constructor(private readonly out: { quiet: boolean; json: boolean; sink: () => NodeJS.WritableStream }) {}

  /**
   * Waits for a grace's outcome, then record(outcome) and its line: `named` starts the text
   * line, `jsonHead` holds the JSON line's members before its rule and run. A failure to count
   * is said on stderr. The promise never rejects.
   */
  wait(grace: PendingGrace, named: string, jsonHead: Record<string, unknown>, record: (outcome: GraceOutcome) => void): Promise<void> {
    const settling = grace.settle({ signal: this.#end.signal }).then(
      (outcome) => {
        record(outcome);
        if (this.out.quiet) return;
        const time = new Date().toISOString();
        if (this.out.json) this.out.sink().write(`${JSON.stringify({ time, ...jsonHead, ...(grace.rule === null ? {} : { rule: grace.rule }), run: grace.run, graceOutcome: outcome })}\n`);
        else this.out.sink().write(`${time} ${named}${graceOutcomeLine(outcome)} (run ${grace.run})\n`);
      },
      (err: unknown) => void process.stderr.write(`ctpurge: ${named}counting what the grace of run ${grace.run} let expire: ${(err as Error).message}\n`),
    );
    this.#settles.add(settling);
    const done = () => void this.#settles.delete(settling);
    settling.then(done, done);
    return settling;
  }

  /** Cuts every wait short and waits for their outcomes to be recorded. */
  async end(): Promise<void> {
    this.#end.abort();
    await Promise.all([...this.#settles]);
  }
}
