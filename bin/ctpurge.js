#!/usr/bin/env node
// logrotate's postrotate may send SIGHUP at any moment: a purge must not die of one while its
// modules load. The hangup is noted here, before anything is imported; main() decides (a
// purge ignores it, another command then takes the default action).
let hangup = false;
const early = () => {
  hangup = true;
};
process.on('SIGHUP', early);
// ctpurge holds at most half of libuv's pool (src/pool.ts): with the default 4 threads, top's
// event stream and its summary dump held both, and each refresh's counter waited for them.
// The CLI has no other use for the pool; an embedding process keeps its own setting.
process.env.UV_THREADPOOL_SIZE ??= '8';
const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2), { hangupSeen: () => hangup, releaseHangup: () => process.off('SIGHUP', early) }).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ctpurge: internal error: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
