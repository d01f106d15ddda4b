// The benches run every command (ctpurge and its peers alike) in the environment a systemd unit,
// a cron job or a Kubernetes container gives it, not the benching shell's: variables that change
// how Node starts are removed. A shell may set NODE_EXTRA_CA_CERTS, for one: Node then reads and
// parses that certificate bundle at each start-up (40 ms on the bench VM, a tenth of a small
// purge), although ctpurge opens no TLS connection. Imported first, before any command runs.
export const removedVariables = Object.keys(process.env).filter((k) => k.startsWith('NODE_')).sort();
for (const k of removedVariables) delete process.env[k];
if (removedVariables.length > 0) console.error(`bench: commands run without ${removedVariables.join(', ')} (as from a systemd unit or cron)`);
