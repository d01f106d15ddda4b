#!/usr/bin/env node
// logrotate's postrotate may send SIGHUP at any moment: a purge must not die of one while its
// modules load. The hangup is noted here, before anything is imported; main() decides (a
// purge ignores it, another command then takes the default action).
let hangup = false;
const early = () => {
  hangup = true;
};
process.on('SIGHUP', early);
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
