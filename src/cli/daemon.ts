/** `ctpurge [selectors] --every DUR`: the scheduled purge, metrics, and a clean stop. */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Conntrack, QueryPlan } from '../conntrack.js';
import { ConntrackError } from '../errors.js';
import { acquirePurgeLock } from '../lock.js';
import { PurgeMetrics } from '../metrics.js';
import { Purger, type PurgerRun } from '../purger.js';
import { formatDuration } from '../parse/duration.js';
import type { ParsedArgs } from './args.js';
import type { AuditLog } from './files.js';
import { graceOutcomeLine, logFailure, maxDeleteLine, purgeSummary, runLimit } from './purgeCommand.js';

/** How often the daemon reads the whole table for the by_state / by_idle gauges. */
const TABLE_METRICS_EVERY_MS = 60_000;

/**
 * Reads the whole table's shape into the metrics (one dump). It is a bonus: a failure is
 * reported on stderr and never fails the purge that ran. True when it was read.
 */
export async function recordTableShape(metrics: PurgeMetrics, ct: Conntrack): Promise<boolean> {
  try {
    metrics.recordTable(await ct.summary({}, { talkers: false }));
    return true;
  } catch (err) {
    process.stderr.write(`ctpurge: reading the table for metrics: ${(err as Error).message}\n`);
    return false;
  }
}

export function metricsLabels(ct: Conntrack): Record<string, string> {
  return ct.netns ? { netns: ct.netns } : {};
}

/**
 * Connections the metrics server keeps at most. A scrape needs one for a moment: past the cap
 * the least recently active connection that is not being answered is closed, so idle and
 * slow (slowloris) clients can never keep a scrape out, however many there are.
 */
export const METRICS_MAX_CONNECTIONS = 64;
/** A client has this long to send its request headers, and an idle keep-alive this long to send the next. */
export const METRICS_HEADERS_TIMEOUT_MS = 2_000;
export const METRICS_TIMEOUT_MS = 5_000;

async function listen(metrics: PurgeMetrics, host: string, port: number): Promise<Server> {
  const server = createServer(
    {
      requestTimeout: METRICS_TIMEOUT_MS,
      headersTimeout: METRICS_HEADERS_TIMEOUT_MS,
      keepAliveTimeout: METRICS_HEADERS_TIMEOUT_MS,
      // The header and request timeouts are checked this often (Node's default: every 30 s).
      connectionsCheckingInterval: 250,
    },
    (req, res) => {
      busy.add(req.socket);
      res.on('close', () => {
        busy.delete(req.socket);
        touch(req.socket);
      });
      if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(metrics.render());
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try /metrics\n');
      }
    },
  );
  // Every open connection in the order of its last activity (a Map keeps insertion order).
  const open = new Map<Socket, true>();
  const busy = new Set<Socket>();
  const touch = (socket: Socket) => {
    if (!open.has(socket)) return;
    open.delete(socket);
    open.set(socket, true);
  };
  server.on('connection', (socket: Socket) => {
    open.set(socket, true);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
    // Over the cap: close the least recently active connections that are not being answered.
    for (const old of open.keys()) {
      if (open.size <= METRICS_MAX_CONNECTIONS) break;
      if (old === socket || busy.has(old)) continue;
      open.delete(old);
      old.destroy();
    }
  });
  server.timeout = METRICS_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** Stops listening and drops every connection, idle or not: no client can delay the exit. */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}


/**
 * Runs until SIGTERM/SIGINT (signal), then finishes the batch in flight, writes metrics and
 * resolves. Rejects (exit 1) when it must not go on: the audit log cannot be written, or the
 * --netns namespace was deleted or replaced (a handle on a dead namespace would purge nothing,
 * forever; the service manager's Restart= brings ctpurge back on the new one).
 * SIGHUP reopens --log (logrotate) and rewrites --metrics-file at its path.
 */
export async function runDaemon(ct: Conntrack, args: ParsedArgs, plan: QueryPlan, signal: AbortSignal, log?: AuditLog): Promise<void> {
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
  // The table's shape (entries by state and idle time) costs a dump of the whole table: read
  // at most once a minute, after a run, and only when metrics go somewhere.
  let tableReadAt = -Infinity;
  const refreshTable = async (): Promise<boolean> => {
    if ((!args.metricsFile && !server) || Date.now() - tableReadAt < TABLE_METRICS_EVERY_MS) return false;
    tableReadAt = Date.now();
    return recordTableShape(metrics, ct);
  };
  let fatal: unknown;
  const done = new AbortController();
  const fail = (err: unknown) => {
    fatal ??= err;
    done.abort();
  };
  // Reopening while a run writes would close the descriptor under it: a SIGHUP during a run
  // is served when the run ends (its lines go to the rotated file, none is lost).
  let inRun = false;
  let reopenPending = false;
  const reopen = () => {
    reopenPending = false;
    try {
      log?.reopen();
    } catch (err) {
      process.stderr.write(`ctpurge: ${(err as Error).message}; still writing to the file opened before\n`);
    }
  };
  const onHangup = () => {
    reopenPending = true;
    if (!inRun) reopen();
    void writeMetrics();
  };
  process.on('SIGHUP', onHangup);
  const purger = new Purger(ct, {
    query: plan,
    every: args.every as number,
    adaptive: args.adaptive,
    whenAbove: args.whenAbove,
    limit: args.maxDelete ? (count: number) => runLimit(args, count).limit as number : args.limit,
    dryRun: args.dryRun,
    ...(args.grace === undefined ? {} : { grace: args.grace }),
    // The Purger checks before each run that --netns still names the namespace it opened.
    lock: (stopSignal) => acquirePurgeLock(ct.netns, args.lockWait, { signal: stopSignal }),
    logFd: log
      ? () => {
          if (reopenPending) reopen();
          inRun = true;
          return log.fd;
        }
      : undefined,
  });
  purger.on('run', (run: PurgerRun) => {
    inRun = false;
    if (reopenPending) reopen();
    metrics.recordRun(run.result, run);
    void writeMetrics();
    void refreshTable().then((read) => (read ? writeMetrics() : undefined));
    const limit = args.maxDelete ? runLimit(args, run.count) : null;
    if (run.result?.limitReached && limit?.byMaxDelete) {
      // Counted as a failed run (the alerts see it); the next run tries again.
      metrics.recordError();
      void writeMetrics();
      process.stderr.write(`ctpurge: ${maxDeleteLine(args, run.result, limit.limit ?? 0)}\n`);
    }
    if (args.quiet) return;
    const next = `next run in ${formatDuration(run.nextInSeconds)}`;
    // With --log - the audit lines own stdout: the run lines go to stderr, as the one-shot's summary does.
    const sink = log?.file === '-' ? process.stderr : process.stdout;
    // Each line says when (a daemon's output often goes to a file, not to the journal).
    const time = new Date().toISOString();
    if (args.json) sink.write(`${JSON.stringify({ time, ...run })}\n`);
    else if (run.skipped) sink.write(`${time} skipped: table ${(run.usage * 100).toFixed(1)}% full, not above ${((args.whenAbove ?? 0) * 100).toFixed(0)}%; ${next}\n`);
    else if (run.result) sink.write(`${time} ${purgeSummary(run.result)} (run ${run.result.run}); ${next}\n`);
  });
  // A grace's outcome is counted once it is over, without holding the lock or the next run. On
  // the way out the waits end: what has expired by then is counted, and in the last metrics.
  const settles = new Set<Promise<void>>();
  const endSettles = new AbortController();
  purger.on('run', (run: PurgerRun) => {
    const r = run.result;
    if (!r?.settle || r.graced === 0) return;
    const settling = r.settle({ signal: endSettles.signal }).then(
      (outcome) => {
        metrics.recordGrace(outcome);
        void writeMetrics();
        if (args.quiet) return;
        const sink = log?.file === '-' ? process.stderr : process.stdout;
        const time = new Date().toISOString();
        if (args.json) sink.write(`${JSON.stringify({ time, run: r.run, graceOutcome: outcome })}\n`);
        else sink.write(`${time} ${graceOutcomeLine(outcome)} (run ${r.run})\n`);
      },
      (err: unknown) => void process.stderr.write(`ctpurge: counting what the grace of run ${r.run} let expire: ${(err as Error).message}\n`),
    );
    settles.add(settling);
    void settling.finally(() => settles.delete(settling));
  });
  purger.on('error', (err: Error) => {
    inRun = false;
    metrics.recordError();
    void writeMetrics();
    if (err instanceof ConntrackError && err.operation === 'netns') {
      const what = err.code === 'ENOENT' ? 'is gone (deleted with ip netns del?)' : 'was replaced by a new namespace';
      fail(new Error(`--netns: ${args.netns ?? err.netns} ${what}; exiting so the service manager can start ctpurge on the current one`));
      return;
    }
    if (err instanceof ConntrackError && err.operation === 'log') {
      fail(logFailure(err, log));
      return;
    }
    if (reopenPending) reopen();
    process.stderr.write(`ctpurge: ${err.message}\n`);
  });
  // The purger's timers are unref'd (it must never hold a host process open); the daemon
  // itself is what keeps this process alive.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    done.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  purger.start();
  await stopped;
  await purger.stop();
  endSettles.abort();
  await Promise.all([...settles]);
  clearInterval(keepAlive);
  process.off('SIGHUP', onHangup);
  await writeMetrics();
  if (server) await closeServer(server);
  if (fatal !== undefined) throw fatal;
}
