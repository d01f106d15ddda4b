import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Output, PipeClosed } from '../../src/cli/output.js';

/** A reader that takes a chunk every few milliseconds: every write meets backpressure. */
function slowReader(): Writable {
  return new Writable({
    highWaterMark: 16,
    write(_chunk, _enc, cb) {
      setTimeout(cb, 1);
    },
  });
}

describe('Output', () => {
  it('waits for drain without adding listeners per write (no MaxListenersExceededWarning)', async () => {
    const stream = slowReader();
    const out = new Output(stream);
    const before = ['drain', 'close', 'error'].map((e) => stream.listenerCount(e));
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 200; i++) await out.write(`line ${i} ${'x'.repeat(40)}\n`);
    } finally {
      process.off('warning', onWarning);
    }
    expect(['drain', 'close', 'error'].map((e) => stream.listenerCount(e))).toEqual(before);
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  });

  it('a reader that goes away (EPIPE) ends the output with PipeClosed, also while waiting for drain', async () => {
    const stream = slowReader();
    const out = new Output(stream);
    const pending = out.write('x'.repeat(1000));
    stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    await expect(pending).rejects.toBeInstanceOf(PipeClosed);
    await expect(out.write('more')).rejects.toBeInstanceOf(PipeClosed);
  });

  it('any other write error is reported as it is', async () => {
    const stream = slowReader();
    const out = new Output(stream);
    const pending = out.write('x'.repeat(1000));
    stream.emit('error', Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    await expect(pending).rejects.toMatchObject({ code: 'ENOSPC' });
  });
});
