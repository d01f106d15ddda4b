// `ctpurge top` against iptstate, the top-like conntrack viewer Debian packages, on the same
// table: SIZE entries (1M by default) in a throwaway namespace, with a SYN flood of RATE new
// flows a second from hping3 over a veth pair (SYN_SENT lasts 10 s there, so the table stays
// near SIZE + 10 x RATE). Each viewer runs on a real terminal (tmux) for SECONDS, refreshing every
// second; the bench reads its CPU time and peak RSS from /proc, and compares the entries top
// shows with `conntrack -C` every few seconds.
//
// Runs from bench/run.mjs (which raised nf_conntrack_max and hashsize), or alone:
//   node bench/top.mjs   (as root; it raises the two knobs for the run and puts them back)
import './environment.mjs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin/ctpurge.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system, all threads) and peak RSS (MB) of a process so far. */
function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { cpu: ticks / 100, rssMB: hwm / 1024 };
}

export async function topBench({ size = 1048576, rate = 10000, seconds = 60, log = console.error } = {}) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-top-bench-'));
  const id = `${process.pid}`;
  const ns = `ctp-top-${id}`;
  const peer = `ctp-topp-${id}`;
  const sock = `ctp-top-bench-${id}`;
  const tmux = (...a) => spawnSync('tmux', ['-L', sock, ...a], { encoding: 'utf8' });
  const inNs = (...a) => execFileSync('ip', ['netns', 'exec', ns, ...a], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
  let floods = [];
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'add', peer]);
    inNs('ip', 'link', 'add', 'vt0', 'type', 'veth', 'peer', 'name', 'vt1');
    inNs('ip', 'link', 'set', 'vt1', 'netns', peer);
    inNs('ip', 'addr', 'add', '10.98.0.1/24', 'dev', 'vt0');
    inNs('ip', 'link', 'set', 'vt0', 'up');
    execFileSync('ip', ['netns', 'exec', peer, 'ip', 'link', 'set', 'vt1', 'up']);
    inNs('ip', 'neigh', 'add', '10.98.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'vt0', 'nud', 'permanent');
    inNs('sysctl', '-qw', 'net.netfilter.nf_conntrack_tcp_timeout_syn_sent=10');
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: 'table inet t {\n chain o {\n type filter hook output priority 0;\n ct state new counter\n }\n}\n' });
    const lines = [];
    for (let i = 0; i < size; i++) lines.push(`-I -p tcp -s 10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.80 --sport ${1024 + (i % 60000)} --dport 80 --state ESTABLISHED -t 424800${i % 3 === 0 ? '' : ' -u SEEN_REPLY,ASSURED'}`);
    writeFileSync(path.join(tmp, 'table'), `${lines.join('\n')}\n`);
    log(`top: loading ${size.toLocaleString('en-US')} entries`);
    execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-R', path.join(tmp, 'table')], { stdio: 'ignore' });
    // Two senders: one hping3 tops out near 6,000 packets a second here.
    floods = [80, 81].map((dport) => spawn('ip', ['netns', 'exec', ns, 'hping3', '-q', '-S', '-p', String(dport), '-i', `u${Math.round(2e6 / rate)}`, '10.98.0.2'], { stdio: 'ignore' }));
    await sleep(12_000);
    const count = () => Number(inNs('conntrack', '-C').trim());
    const measure = async (name, argv, entriesOnScreen) => {
      tmux('kill-server');
      tmux('new-session', '-d', '-s', 'v', '-x', '160', '-y', '50', argv.join(' '));
      await sleep(3000);
      const pid = Number(tmux('list-panes', '-t', 'v', '-F', '#{pane_pid}').stdout.trim());
      const start = usage(pid);
      const errors = [];
      const t0 = Date.now();
      while (Date.now() - t0 < seconds * 1000) {
        await sleep(5000);
        if (!entriesOnScreen) continue;
        // Compared as soon as the screen changes: the count shown is the kernel's when read, and
        // the table moves by the flood's rate (and the gc's bursts) within the second after.
        const before = tmux('capture-pane', '-t', 'v', '-p').stdout;
        let screen = before;
        for (let i = 0; i < 100 && screen === before; i++) {
          await sleep(10);
          screen = tmux('capture-pane', '-t', 'v', '-p').stdout;
        }
        const kernel = count();
        const shown = entriesOnScreen(screen);
        if (Number.isFinite(shown)) errors.push(Math.abs(shown - kernel) / kernel);
      }
      const end = usage(pid);
      tmux('kill-server');
      const r = { name, cpuShare: (end.cpu - start.cpu) / ((Date.now() - t0) / 1000), rssMB: end.rssMB, ...(entriesOnScreen ? { maxCountError: Math.max(...errors), samples: errors.length } : {}) };
      log(`  ${name}: ${(r.cpuShare * 100).toFixed(1)}% of a core, peak RSS ${r.rssMB.toFixed(1)} MB${r.samples ? `, entries within ${(r.maxCountError * 100).toFixed(2)}% of conntrack -C (${r.samples} samples)` : ''}`);
      return r;
    };
    const table = count();
    // SYN_SENT lasts 10 s: the table holds 10 s of the flood.
    const measuredRate = Math.round((table - size) / 10);
    log(`top: ${table.toLocaleString('en-US')} entries, about ${measuredRate.toLocaleString('en-US')} new flows a second`);
    const top = await measure('ctpurge top', ['ip', 'netns', 'exec', ns, process.execPath, BIN, 'top', '--interval', '1s'], (screen) => Number(/^table .*?([\d,]+) of [\d,]+ entries/m.exec(screen)?.[1]?.replaceAll(',', '') ?? NaN));
    const iptstate = spawnSync('sh', ['-c', 'command -v iptstate']).status === 0 ? await measure('iptstate', ['ip', 'netns', 'exec', ns, 'iptstate', '-R', '1']) : null;
    return { size, rate, measuredRate, seconds, table, top, iptstate };
  } finally {
    for (const f of floods) f.kill('SIGKILL');
    tmux('kill-server');
    spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['netns', 'del', peer]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const knobs = [['/proc/sys/net/netfilter/nf_conntrack_max', 2 * 1048576], ['/sys/module/nf_conntrack/parameters/hashsize', 262144]];
  const saved = knobs.map(([f]) => readFileSync(f, 'utf8').trim());
  try {
    for (const [f, v] of knobs) if (Number(readFileSync(f, 'utf8')) < v) writeFileSync(f, String(v));
    const r = await topBench({ size: Number(process.env.SIZE ?? 1048576), rate: Number(process.env.RATE ?? 10000), seconds: Number(process.env.SECONDS ?? 60) });
    console.log(JSON.stringify(r));
  } finally {
    knobs.forEach(([f], i) => writeFileSync(f, saved[i]));
  }
}
