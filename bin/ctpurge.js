#!/usr/bin/env node
// logrotate's postrotate may send SIGHUP at any moment: a purge must not die of one while its
// modules load. The hangup is noted here, before anything is imported; main() decides (a
// purge ignores it, another command then takes the default action). A SIGTERM or SIGINT this
// early is noted too, and main() stops the command with it as soon as it has its own handlers
// (a purge then deletes nothing and says so), instead of Node's default end by the signal.
let hangup = false;
let stop = null;
const early = () => {
  hangup = true;
};
const earlyStop = (signal) => {
  stop ??= signal;
};
process.on('SIGHUP', early);
process.on('SIGTERM', earlyStop);
process.on('SIGINT', earlyStop);
const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2), {
  hangupSeen: () => hangup,
  releaseHangup: () => process.off('SIGHUP', early),
  stopSeen: () => stop,
  releaseStop: () => {
    process.off('SIGTERM', earlyStop);
    process.off('SIGINT', earlyStop);
  },
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ctpurge: internal error: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
