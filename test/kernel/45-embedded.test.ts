/**
 * Embedded in a Node service: an event stream must never hold the process hostage
 * (process.exit, an uncaught exception, worker.terminate()), and leaving the loop closes it.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

const DIST = path.resolve(path.dirname(BIN), '../dist/index.js');

/** Runs a module in the namespace; resolves with its exit code, stderr and how long it took (null code: killed after 10 s). */
function runIn(ns: TestNetns, code: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return new Promise((resolve) =>
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stderr, ms: Date.now() - started });
    }),
  );
}

const STREAMING = `
import { Conntrack } from ${JSON.stringify(DIST)};
const ct = await Conntrack.open();
const events = ct.events();
const first = events.next();
`;

describeKernel('an event stream never holds the process hostage', () => {
  let ns: TestNetns;
  beforeAll(() => {
    ns = TestNetns.create();
  });
  afterAll(() => ns?.destroy());

  it('process.exit(3) while an event iterator waits: exits 3 at once', async () => {
    const r = await runIn(ns, `${STREAMING} setTimeout(() => process.exit(3), 300); await first;`);
    expect(r.code).toBe(3);
    expect(r.ms).toBeLessThan(3000);
  });

  it('an uncaught exception while an event iterator waits: exits 1 with the exception', async () => {
    const r = await runIn(ns, `${STREAMING} setTimeout(() => { throw new Error('boom from the service'); }, 300); await first;`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('boom from the service');
    expect(r.ms).toBeLessThan(3000);
  });

  it('worker.terminate() of a worker iterating events resolves promptly', async () => {
    const r = await runIn(
      ns,
      `import { Worker } from 'node:worker_threads';
       const w = new Worker(\`const { Conntrack } = await import(${JSON.stringify(DIST)});
         const { parentPort } = await import('node:worker_threads');
         const ct = await Conntrack.open();
         parentPort.postMessage('iterating');
         for await (const ev of ct.events()) {}\`, { eval: true });
       await new Promise((r) => w.once('message', r));
       await new Promise((r) => setTimeout(r, 300));
       const t0 = Date.now();
       await w.terminate();
       const ms = Date.now() - t0;
       if (ms > 1000) { console.error('terminate took ' + ms + ' ms'); process.exit(5); }
       process.exitCode = 0;`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('break out of the loop closes the event socket', async () => {
    const { Conntrack } = await import('../../src/index.js');
    const netlinkSockets = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
        } catch {
          return false;
        }
      }).length;
    const ct = await Conntrack.open({ netns: ns.name });
    try {
      const before = netlinkSockets();
      const seen: string[] = [];
      const loop = (async () => {
        for await (const ev of ct.events()) {
          seen.push(ev.type);
          break;
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      expect(netlinkSockets()).toBe(before + 1);
      ns.exec('conntrack', ['-I', '-p', 'udp', '-s', '10.5.0.1', '-d', '10.5.0.2', '--sport', '1', '--dport', '2', '-t', '60']);
      await loop;
      expect(seen).toEqual(['new']);
      await new Promise((r) => setTimeout(r, 400));
      expect(netlinkSockets()).toBe(before);
    } finally {
      await ct.close();
    }
  });
});
