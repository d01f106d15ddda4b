/** `ctpurge [selectors] --every DUR`: the scheduled purge, metrics, and a clean stop. */
import { createServer, type Server } from 'node:http';
import type { Conntrack } from '../conntrack.js';
import { acquirePurgeLock } from '../lock.js';
import { PurgeMetrics } from '../metrics.js';
import { Purger, type PurgerRun } from '../purger.js';
import { formatDuration } from '../parse/duration.js';
import type { ParsedArgs } from './args.js';
import { purgeSummary } from './purgeCommand.js';

export function metricsLabels(ct: Conntrack): Record<string, string> {
  return ct.netns ? { netns: ct.netns } : {};
}

async function listen(metrics: PurgeMetrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(metrics.render());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** Runs until SIGTERM/SIGINT (signal), then finishes the batch in flight, writes metrics and resolves. */
export async function runDaemon(ct: Conntrack, args: ParsedArgs, signal: AbortSignal): Promise<void> {
  const metrics = new PurgeMetrics(metricsLabels(ct));
  const server = args.metricsListen ? await listen(metrics, args.metricsListen.host, args.metricsListen.port) : null;
  const writeMetrics = async () => {
    if (!args.metricsFile) return;
    try {
      await metrics.writeFile(args.metricsFile);
    } catch (err) {
      process.stderr.write(`ctpurge: --metrics-file: ${(err as Error).message}\n`);
    }
  };
  const purger = new Purger(ct, {
    query: args.query,
    every: args.every as number,
    adaptive: args.adaptive,
    whenAbove: args.whenAbove,
    limit: args.limit,
    dryRun: args.dryRun,
    lock: () => acquirePurgeLock(ct.netns, args.lockWait),
  });
  purger.on('run', (run: PurgerRun) => {
    metrics.recordRun(run.result, run);
    void writeMetrics();
    if (args.quiet) return;
    const next = `next run in ${formatDuration(run.nextInSeconds)}`;
    if (args.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...run })}\n`);
    else if (run.skipped) process.stdout.write(`skipped: table ${(run.usage * 100).toFixed(1)}% full, not above ${((args.whenAbove ?? 0) * 100).toFixed(0)}%; ${next}\n`);
    else if (run.result) process.stdout.write(`${purgeSummary(run.result)}; ${next}\n`);
  });
  purger.on('error', (err: Error) => {
    metrics.recordError();
    void writeMetrics();
    process.stderr.write(`ctpurge: ${err.message}\n`);
  });
  // The purger's timers are unref'd (it must never hold a host process open); the daemon
  // itself is what keeps this process alive.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  purger.start();
  await stopped;
  await purger.stop();
  clearInterval(keepAlive);
  await writeMetrics();
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
}
