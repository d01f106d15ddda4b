/** Polling for a condition in tests, with a deadline that names what was awaited. */

/** Resolves with the milliseconds it took once check() is true; rejects after timeoutMs. */
export async function waitFor(what: string, check: () => boolean, timeoutMs: number, stepMs = 25): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
