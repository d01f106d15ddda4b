// `ctpurge stats --all-netns` on a container host's shape: NAMESPACES namespaces of ENTRIES
// entries each (200 x 5,000 by default), against the shell loops people write today, in the
// same run, alternated: `ip netns exec NS conntrack -C` (a count only) and
// `ip netns exec NS conntrack -L | wc -l` (a dump each).
//
// "Every namespace" must never include the machine's own: everything runs inside a private
// world (new PID, mount and network namespaces, /run a private tmpfs), as the tests do.
// Runs from bench/run.mjs, or alone (as root): node bench/allNetns.mjs
import './environment.mjs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/ctpurge.js');

export async function allNetnsBench({ namespaces = 200, entries = 5000, runs = 3, log = console.error } = {}) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-allnetns-bench-'));
  const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', '--mount', '--net', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=64m ctpurge-world /run && mkdir -p /run/netns && touch /run/.world-ready && exec sleep infinity'], { stdio: 'ignore' });
  try {
    let init = '';
    for (let i = 0; i < 500 && !init; i++) {
      const pid = readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim();
      if (pid && existsSync(`/proc/${pid}/root/run/.world-ready`)) init = pid;
      else execFileSync('sleep', ['0.02']);
    }
    if (!init) throw new Error('the private world did not start');
    const inWorld = (script) => execFileSync('nsenter', [`--target=${init}`, '--pid', '--mount', '--net', '--', 'bash', '-c', script], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const lines = [];
    for (let i = 0; i < entries; i++) lines.push(`-I -p tcp -s 10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.80 --sport ${1024 + (i % 60000)} --dport 80 --state ESTABLISHED -t ${i % 4 === 0 ? 424800 : 259200}${i % 4 === 0 ? '' : ' -u SEEN_REPLY,ASSURED'}`);
    writeFileSync(path.join(tmp, 'table'), `${lines.join('\n')}\n`);
    log(`all-netns: loading ${namespaces} namespaces of ${entries.toLocaleString('en-US')} entries`);
    inWorld(`for i in $(seq -w 1 ${namespaces}); do ip netns add ns$i && ip netns exec ns$i conntrack -R ${path.join(tmp, 'table')} 2>/dev/null; done`);
    const timed = (script) => {
      const t0 = process.hrtime.bigint();
      const out = inWorld(script);
      return { wall: Number(process.hrtime.bigint() - t0) / 1e9, out };
    };
    const ours = `${process.execPath} ${BIN} stats --all-netns --json`;
    const countLoop = 'for ns in $(ip netns list | cut -d" " -f1); do ip netns exec $ns conntrack -C; done';
    const listLoop = 'for ns in $(ip netns list | cut -d" " -f1); do ip netns exec $ns conntrack -L 2>/dev/null | wc -l; done';
    const r = { ctpurge: [], countLoop: [], listLoop: [], detailed: 0 };
    for (let i = 0; i < runs; i++) {
      // Alternated: the one that goes first changes.
      const order = [['ctpurge', ours], ['countLoop', countLoop], ['listLoop', listLoop]];
      for (const [name, script] of i % 2 === 0 ? order : order.reverse()) {
        const t = timed(script);
        if (name === 'ctpurge') {
          const s = JSON.parse(t.out);
          if (s.total.entries !== namespaces * entries || s.namespaces.length !== namespaces) throw new Error(`stats --all-netns counted ${s.total.entries} in ${s.namespaces.length} namespaces`);
          r.detailed = s.detail.namespaces;
        } else if (t.out.trim().split('\n').map(Number).reduce((a, b) => a + b, 0) !== namespaces * entries) {
          throw new Error(`${name} counted otherwise`);
        }
        r[name].push(t.wall);
      }
      log(`  all-netns run ${i + 1}: stats --all-netns ${r.ctpurge.at(-1).toFixed(2)} s; conntrack -C loop ${r.countLoop.at(-1).toFixed(2)} s; conntrack -L | wc -l loop ${r.listLoop.at(-1).toFixed(2)} s`);
    }
    return { namespaces, entries, ...r };
  } finally {
    unshare.kill('SIGKILL');
    spawnSync('sleep', ['0.2']);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await allNetnsBench({ namespaces: Number(process.env.NAMESPACES ?? 200), entries: Number(process.env.ENTRIES ?? 5000), runs: Number(process.env.BENCH_RUNS ?? 3) });
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`stats --all-netns ${med(r.ctpurge).toFixed(2)} s (counts for all ${r.namespaces}, detail for the ${r.detailed} largest); ${(med(r.ctpurge) / med(r.listLoop)).toFixed(2)}x the conntrack -L loop (${med(r.listLoop).toFixed(2)} s), ${(med(r.ctpurge) / med(r.countLoop)).toFixed(2)}x the conntrack -C loop (${med(r.countLoop).toFixed(2)} s)`);
}
