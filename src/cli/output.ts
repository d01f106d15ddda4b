/** Writing to stdout/stderr with backpressure; a closed pipe (| head) ends quietly. */
export class PipeClosed extends Error {}

export class Output {
  #broken = false;
  #failure: Error | undefined;
  #waiter: (() => void) | undefined;
  constructor(readonly stream: NodeJS.WritableStream = process.stdout) {
    // One set of listeners for the stream's life, not one per write (no listener leak on long outputs).
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.#broken = true;
      else this.#failure ??= err;
      this.#wake();
    });
    stream.on('drain', () => this.#wake());
    stream.on('close', () => {
      this.#broken = true;
      this.#wake();
    });
  }
  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#broken) throw new PipeClosed();
  }
  /** The descriptor under the stream, for output the native threads write (list). */
  get fd(): number {
    const fd = (this.stream as { fd?: unknown }).fd;
    if (typeof fd !== 'number') throw new Error('this output stream has no file descriptor');
    return fd;
  }
  async write(text: string | Buffer): Promise<void> {
    this.#check();
    if (text.length === 0) return;
    if (!this.stream.write(text)) await new Promise<void>((resolve) => (this.#waiter = resolve));
    this.#check();
  }
}

/** A progress line on stderr, only on a TTY and only once a run passes about a second. */
export class Progress {
  #started = Date.now();
  #shown = false;
  constructor(private readonly enabled: boolean) {}
  /** text is only made when the line is shown. */
  update(text: () => string): void {
    if (!this.enabled || Date.now() - this.#started < 1000) return;
    this.#shown = true;
    process.stderr.write(`\r\x1b[K${text()}`);
  }
  clear(): void {
    if (this.#shown) process.stderr.write('\r\x1b[K');
    this.#shown = false;
  }
}
