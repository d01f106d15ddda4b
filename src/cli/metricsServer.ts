/** The daemon's /metrics server: answers scrapes however many idle or slow clients hold connections. */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Connections the metrics server keeps at most. A scrape needs one for a moment: past the cap
 * the least recently active connection that is not being answered is closed, so idle and
 * slow (slowloris) clients can never keep a scrape out, however many there are.
 */
export const METRICS_MAX_CONNECTIONS = 64;
/** A client has this long to send its request headers, and an idle keep-alive this long to send the next. */
export const METRICS_HEADERS_TIMEOUT_MS = 2_000;
export const METRICS_TIMEOUT_MS = 5_000;

export async function listen(render: () => string, host: string, port: number): Promise<Server> {
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
        res.end(render());
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
  // A connection is not closed before its first read has had a chance: libuv reads a socket
  // accepted in one loop iteration in the next one's poll phase, so a scrape accepted in the
  // same burst as 64 reconnecting idle clients would otherwise be closed before its request
  // (seen on CI as "socket hang up"). Trimming runs in the check phase (setImmediate), after
  // the poll phase's reads; what was accepted since the last trim waits for the next.
  let generation = 0;
  let trimQueued = false;
  const acceptedIn = new WeakMap<Socket, number>();
  const trim = () => {
    trimQueued = false;
    // Over the cap: close the least recently active connections that are not being answered.
    for (const old of open.keys()) {
      if (open.size <= METRICS_MAX_CONNECTIONS) break;
      if (busy.has(old) || acceptedIn.get(old) === generation) continue;
      open.delete(old);
      old.destroy();
    }
    generation++;
    if (open.size > METRICS_MAX_CONNECTIONS) queueTrim();
  };
  const queueTrim = () => {
    if (trimQueued) return;
    trimQueued = true;
    setImmediate(trim);
  };
  server.on('connection', (socket: Socket) => {
    open.set(socket, true);
    acceptedIn.set(socket, generation);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
    if (open.size > METRICS_MAX_CONNECTIONS) queueTrim();
  });
  server.timeout = METRICS_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, host, port)));
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** A failure to listen, naming the option and the address, with the system's code kept. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const at = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const hint: Record<string, string> = {
    EADDRINUSE: 'something already listens there (see: ss -ltnp); pick another port',
    EADDRNOTAVAIL: 'no interface of this host (or of the namespace it runs in) has that address',
    EACCES: 'ports below 1024 need CAP_NET_BIND_SERVICE; pick a higher one',
    ENOTFOUND: 'the host name does not resolve; give an address',
    EAI_AGAIN: 'the host name could not be resolved now; give an address',
  };
  const why = err.code && hint[err.code] ? `${err.code}: ${hint[err.code]}` : err.message;
  return Object.assign(new Error(`--metrics-listen ${at}: cannot listen (${why})`), { code: err.code, errno: err.errno, syscall: err.syscall, cause: err });
}

/** Stops listening and drops every connection, idle or not: no client can delay the exit. */
export function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
