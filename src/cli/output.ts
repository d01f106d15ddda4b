/** Writing to stdout/stderr with backpressure; a closed pipe (| head) ends quietly. */
import { once } from 'node:events';

export class PipeClosed extends Error {}

export class Output {
  #broken = false;
  constructor(readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.#broken = true;
      else throw err;
    });
  }
  async write(text: string | Buffer): Promise<void> {
    if (this.#broken) throw new PipeClosed();
    if (text.length === 0) return;
    if (!this.stream.write(text)) await Promise.race([once(this.stream, 'drain'), once(this.stream, 'close')]);
    if (this.#broken) throw new PipeClosed();
  }
}

/** A progress line on stderr, only on a TTY and only once a run passes about a second. */
export class Progress {
  #started = Date.now();
  #shown = false;
  constructor(private readonly enabled: boolean) {}
  update(text: string): void {
    if (!this.enabled || Date.now() - this.#started < 1000) return;
    this.#shown = true;
    process.stderr.write(`\r\x1b[K${text}`);
  }
  clear(): void {
    if (this.#shown) process.stderr.write('\r\x1b[K');
    this.#shown = false;
  }
}
