// npm run demo: the seed scenario in a throwaway namespace, then ctpurge on it.
// Everything happens in namespaces made here and removed at the end, also on failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin/ctpurge.js');
const tag = `${process.pid}`.slice(-5);
const NS = `ctpurge-demo-${tag}`;
const PEER = `ctpurge-peer-${tag}`;
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

if (process.getuid?.() !== 0) {
  console.error('npm run demo needs root: it creates a throwaway network namespace (ip netns add).');
  process.exit(1);
}

// npm run demo -- incident: a table-full incident and its rescue (scripts/incident.mjs).
if (process.argv[2] === 'incident') {
  const { runIncident, SYNS } = await import('./incident.mjs');
  console.log(bold('ctpurge demo: a full conntrack table drops new connections; ctpurge brings them back'));
  try {
    const r = await runIncident({ log: (s) => console.log(`  ${s}`) });
    console.log(`\n${bold('In short:')} ${r.before.answered} of ${SYNS} new connections answered while full (kernel drop +${r.dropsBefore.drop}); relief ${(r.reliefMs / 1000).toFixed(2)} s after ctpurge started; then ${r.after.answered} of ${SYNS} (drop +${r.dropsAfter.drop}).`);
    process.exit(0);
  } catch (err) {
    console.error(`demo failed: ${err.stderr || err.message}`);
    process.exit(1);
  }
}

const run = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (ns, cmd, args, input) => run('ip', ['netns', 'exec', ns, cmd, ...args], input);
function cleanup() {
  for (const ns of [NS, PEER]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function step(title, args) {
  console.log(`\n${bold(`$ ctpurge ${args.join(' ')}`)}   # ${title}`);
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`ctpurge ${args.join(' ')} exited ${r.status}`);
}

try {
  console.log(bold('ctpurge demo: a conntrack table filling with stale [UNREPLIED] entries'));
  console.log(`Building it in a throwaway network namespace, ${NS}; your own table is never touched.\n`);
  run('ip', ['netns', 'add', NS]);
  run('ip', ['netns', 'add', PEER]);
  inNs(NS, 'ip', ['link', 'set', 'lo', 'up']);
  inNs(NS, 'ip', ['link', 'add', 'veth-demo', 'type', 'veth', 'peer', 'name', 'veth-peer']);
  inNs(NS, 'ip', ['link', 'set', 'veth-peer', 'netns', PEER]);
  inNs(NS, 'ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'veth-demo']);
  inNs(NS, 'ip', ['link', 'set', 'veth-demo', 'up']);
  inNs(PEER, 'ip', ['link', 'set', 'veth-peer', 'up']);
  inNs(NS, 'ip', ['neigh', 'add', '10.99.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'veth-demo', 'nud', 'permanent']);
  inNs(NS, 'nft', ['-f', '-'], 'table inet demo {\n chain out {\n type filter hook output priority 0;\n ct state new counter\n }\n}\n');

  // Old stale flows: ESTABLISHED, never replied, 2 h idle by their timeout (IPv4 and IPv6),
  // next to live replied flows that must survive.
  const lines = [];
  for (let i = 0; i < 3000; i++) {
    const v6 = i % 2 === 1;
    const src = v6 ? `fd00:1::${(i + 1).toString(16)}` : `10.1.${i >> 8}.${i & 255}`;
    const dst = v6 ? 'fd00:2::80' : '192.0.2.80';
    lines.push(`-I -p tcp -s ${src} -d ${dst} --sport ${20000 + i} --dport 80 --state ESTABLISHED -t 424800`);
  }
  for (let i = 0; i < 2000; i++) {
    const v6 = i % 2 === 1;
    const src = v6 ? `fd00:3::${(i + 1).toString(16)}` : `10.3.${i >> 8}.${i & 255}`;
    const dst = v6 ? 'fd00:2::443' : '192.0.2.43';
    lines.push(`-I -p tcp -s ${src} -d ${dst} --sport ${30000 + i} --dport 443 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-demo-'));
  writeFileSync(path.join(dir, 'seed'), `${lines.join('\n')}\n`);
  inNs(NS, 'conntrack', ['-R', path.join(dir, 'seed')]);
  rmSync(dir, { recursive: true, force: true });
  console.log('- 3,000 stale ESTABLISHED [UNREPLIED] flows (IPv4 + IPv6), idle for 2 hours');
  console.log('- 2,000 live replied flows ([ASSURED]) that must survive');

  // Real mid-stream pickups: ACKs to a peer that never answers (tcp_loose=1 makes each one
  // an ESTABLISHED [UNREPLIED] entry). They are seconds old: --older 3600 must keep them.
  spawnSync('ip', ['netns', 'exec', NS, 'hping3', '-q', '-A', '-p', '80', '-s', '40000', '-c', '500', '-i', 'u100', '10.99.0.2'], { stdio: 'ignore' });
  console.log('- about 500 real mid-stream ACK pickups from hping3, seconds old');

  step('size, breakdowns and top talkers', ['stats', '--netns', NS, '--top', '3']);
  step('what would go, without deleting', ['--unreplied', '--older', '3600', '--dry-run', '--netns', NS]);
  step('the purge', ['--unreplied', '--older', '3600', '--netns', NS]);
  step('what is left: the replied flows and the young pickups', ['list', '--netns', NS, '--unreplied', '--limit', '3']);
  step('the table afterwards', ['stats', '--netns', NS, '--top', '3']);

  console.log(`\n${bold('The same through the API:')}`);
  const { Conntrack } = await import(path.join(root, 'dist/index.js'));
  const ct = await Conntrack.open({ netns: NS });
  console.log(`  await ct.count({ unreplied: true })                   -> ${await ct.count({ unreplied: true })} (the young pickups)`);
  console.log(`  await ct.count({ unreplied: false })                  -> ${await ct.count({ unreplied: false })} (replied, untouched)`);
  for await (const e of ct.list({ unreplied: true, protocol: 'tcp', dport: 80 })) {
    console.log(`  first of ct.list({ unreplied: true, dport: 80 })      -> ${e.orig.src}:${e.orig.sport} -> ${e.orig.dst}:${e.orig.dport} ${e.state}, age ${e.age?.toFixed(0)} s (${e.ageSource})`);
    break;
  }
  await ct.close();
  console.log(`\nRemoving ${NS}. Done.`);
} catch (err) {
  console.error(`demo failed: ${err.stderr || err.message}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
