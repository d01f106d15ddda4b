/**
 * --all-netns, inside a private world (test/helpers/world.ts): its own PID, mount and network
 * namespaces, /run a private tmpfs. "Every namespace" there is the world's: its init's (the
 * world's "host"), 50 named ones, 20 held only by a process (6 of them in cgroups named like
 * Docker's and Kubernetes' containers), 5 empty ones. The real host's table is never in
 * reach: the test checks that no namespace ctpurge names is the host's.
 */
import { readFileSync, statSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { describeKernel } from '../helpers/kernel.js';
import { FakeContainerCgroups, hostPidOf, PrivateWorld } from '../helpers/world.js';
import { staleTcpLine, repliedTcpLine } from '../helpers/seed.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait.js';

const NAMED = 50;
const HELD = 20;
const EMPTY = 5;
/** Entries of each namespace: stale (--unreplied --older 1h takes them) and replied ones. */
const staleOf = (i: number) => 2 + (i % 7);
const liveOf = (i: number) => 3 + (i % 5);
/** Replied ASSURED ESTABLISHED entries idle for two days (432000 - 2 d left): doctor's "peers that vanished". */
const idleLine = (i: number, net: number) => `-I -p tcp -s 10.${net}.${(i >> 8) & 255}.${i & 255} -d 192.0.2.9 --sport ${2000 + i} --dport 443 --state ESTABLISHED -t 259200 -u SEEN_REPLY,ASSURED`;

interface Row { name: string; path: string; inode: number; pid?: number; entries: number; unreplied: number; idleOverDay: number; container?: { id: string; name?: string; runtime: string } }
interface StatsJson { max: number; namespaces: Row[]; empty: number; detail: { namespaces: number; share: number }; total: { entries: number; unreplied: number; idleOverDay: number }; skipped: unknown[]; failed: unknown[] }

describeKernel('--all-netns: every namespace of a host, in a private world', () => {
  let world: PrivateWorld;
  let cgroups: FakeContainerCgroups;
  let dir: string;
  /** name -> [stale, live, idle] as loaded */
  const expected = new Map<string, [number, number, number]>();
  const heldPids: number[] = [];
  const env = { CTPURGE_DOCKER_ROOT: '/run/fake-docker', CTPURGE_KUBELET_ROOT: '/run/fake-kubelet', CTPURGE_LOCK_DIR: '/run/ctpurge-test' };
  const ctp = (args: string[], timeout = 120_000) => world.run([process.execPath, BIN, ...args], { env, timeout });
  const linesFor = (i: number, net: number, idle = 0) => [...Array.from({ length: staleOf(i) }, (_, k) => staleTcpLine(k, net)), ...Array.from({ length: liveOf(i) }, (_, k) => repliedTcpLine(k, net + 100)), ...Array.from({ length: idle }, (_, k) => idleLine(k, net + 50))];
  const count = (nsPath: string) => Number(world.sh(`nsenter --net=${nsPath} conntrack -C`).trim());
  const load = (nsPath: string, lines: string[], file: string) => {
    writeFileSync(path.join(dir, file), `${lines.join('\n')}\n`);
    world.sh(`nsenter --net=${nsPath} conntrack -R ${path.join(dir, file)}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-allnetns-'));
    world = await PrivateWorld.start();
    cgroups = new FakeContainerCgroups();
    // The world's own ("host") namespace.
    load('/proc/1/ns/net', linesFor(99, 1), 'host');
    expected.set('host', [staleOf(99), liveOf(99), 0]);
    for (let i = 0; i < NAMED; i++) {
      const name = `n${String(i).padStart(2, '0')}`;
      world.sh(`ip netns add ${name}`);
      load(`/run/netns/${name}`, linesFor(i, 2 + (i % 40)), name);
      expected.set(name, [staleOf(i), liveOf(i), 0]);
    }
    for (let i = 0; i < EMPTY; i++) world.sh(`ip netns add empty${i}`);
    // Held only by a process: `unshare --net` execs sleep in place (its pid is the holder's).
    for (let i = 0; i < HELD; i++) {
      const idle = i === 3 ? 400 : 0;
      writeFileSync(path.join(dir, `held${i}`), `${linesFor(i, 42 + i, idle).join('\n')}\n`);
      const pid = Number(world.sh(`unshare --net sh -c 'conntrack -R ${path.join(dir, `held${i}`)} && exec sleep 3600' >${path.join(dir, `held${i}.out`)} 2>&1 & echo $!`).trim());
      heldPids.push(pid);
      expected.set(`pid ${pid}`, [staleOf(i), liveOf(i), idle]);
    }
    await waitFor('the held namespaces to be loaded', () => heldPids.every((p, i) => {
      const [s, l, d] = expected.get(`pid ${p}`) as number[];
      return count(`/proc/${p}/ns/net`) === (s as number) + (l as number) + (d as number) && i >= 0;
    }), 20_000);
    // Three look like Docker containers (one named by Docker's config), three like pods.
    mkdirSync(world.hostPath('/run/fake-docker/containers'), { recursive: true });
    for (let i = 0; i < 6; i++) {
      const pid = heldPids[i] as number;
      const hostPid = hostPidOf(world, pid);
      const uid = `0f1e2d3c-4b5a-6978-8a9b-${String(i).padStart(12, '0')}`;
      const id = cgroups.adopt(hostPid, i < 3 ? 'docker' : 'pod', uid);
      const name = i < 3 ? `web-${i}` : `api-7f9c-${i}`;
      if (i < 3) {
        mkdirSync(world.hostPath(`/run/fake-docker/containers/${id}`), { recursive: true });
        writeFileSync(world.hostPath(`/run/fake-docker/containers/${id}/config.v2.json`), JSON.stringify({ ID: id, Name: `/${name}` }));
      } else {
        mkdirSync(world.hostPath(`/run/fake-kubelet/pods/${uid}`), { recursive: true });
        writeFileSync(world.hostPath(`/run/fake-kubelet/pods/${uid}/etc-hosts`), `# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.244.1.${i}\t${name}\n`);
      }
      expected.set(`ctr ${name}`, expected.get(`pid ${pid}`) as [number, number, number]);
      expected.delete(`pid ${pid}`);
    }
  }, 180_000);

  afterAll(() => {
    world?.stop();
    cgroups?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const stats = (): StatsJson => {
    const r = ctp(['stats', '--all-netns', '--json']);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as StatsJson;
  };

  it('stats: a row per namespace with entries, named as an operator knows it, the host first; the total is the sum; never the real host', () => {
    const s = stats();
    // This process runs in the machine's own namespace (where its connections live).
    const realHost = statSync('/proc/self/ns/net').ino;
    expect(s.namespaces.every((n) => n.inode !== realHost)).toBe(true);
    expect(s.namespaces[0]?.name).toBe('host');
    expect(new Set(s.namespaces.map((n) => n.name))).toEqual(new Set(expected.keys()));
    for (const n of s.namespaces) {
      const [stale, live, idle] = expected.get(n.name) as number[];
      expect(n.entries, n.name).toBe((stale as number) + (live as number) + (idle as number));
      // The kernel's own count, through conntrack -C, as the peer.
      expect(n.entries, n.name).toBe(count(n.path));
      expect(n.unreplied, n.name).toBe(stale);
      expect(n.idleOverDay, n.name).toBe(idle);
    }
    const rest = s.namespaces.slice(1).map((n) => n.entries);
    expect(rest).toEqual([...rest].sort((a, b) => b - a));
    expect(s.total.entries).toBe(s.namespaces.reduce((a, n) => a + n.entries, 0));
    expect(s.empty).toBe(EMPTY);
    expect(s.failed).toEqual([]);
    // A table this small fits the dump budget: every namespace is read in detail.
    expect(s.detail).toEqual({ namespaces: s.namespaces.length, share: 1 });
    // Containers: their ids from the cgroups, the pid that holds them.
    const web = s.namespaces.find((n) => n.name === 'ctr web-1');
    expect(web?.container).toMatchObject({ runtime: 'docker', name: 'web-1' });
    expect(web?.path).toBe(`/proc/${web?.pid}/ns/net`);
    expect(s.namespaces.find((n) => n.name === 'ctr api-7f9c-4')?.container).toMatchObject({ runtime: 'containerd', podUid: '0f1e2d3c-4b5a-6978-8a9b-000000000004' });
    // The table: the same rows, and the total line.
    const text = ctp(['stats', '--all-netns']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^total\\s+${s.total.entries.toLocaleString('en-US')}\\b`, 'm'));
    expect(text.stdout).toMatch(/^ctr web-1 \(pid \d+\)\s+\d+/m);
    expect(text.stdout).toContain(`(${EMPTY} with an empty table)`);
  });

  it('top --all-netns: a row per namespace, each the kernel\'s count, the reading their sum; the text view names them', () => {
    const r = ctp(['top', '--all-netns', '--once', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const snap = JSON.parse(r.stdout) as { entries: number; namespaces: { name: string; count: number; max: number; change: number | null; drops: number | null }[] };
    // Containers carry their holder's pid in the row's name, as in stats' text view.
    const rows = new Map(snap.namespaces.map((n) => [n.name.replace(/ \(pid \d+\)$/, ''), n]));
    for (const [name, [stale, live, idle]] of expected) {
      expect(rows.get(name)?.count, name).toBe(stale + live + idle);
    }
    for (let i = 0; i < EMPTY; i++) expect(rows.get(`empty${i}`)?.count, `empty${i}`).toBe(0);
    // Nothing but the world's namespaces: the expected ones and the empty ones.
    expect([...rows.keys()].filter((k) => !expected.has(k) && !/^empty\d$/.test(k))).toEqual([]);
    expect(snap.entries).toBe(snap.namespaces.reduce((a, n) => a + n.count, 0));
    // The snapshot's rates come from two readings an interval apart: nothing changes in this
    // world meanwhile, so every row's change and drops are 0; each row has its table's limit.
    expect(snap.namespaces.filter((n) => !(n.change === 0 && n.drops === 0 && n.max > 0))).toEqual([]);
    const text = ctp(['top', '--all-netns', '--once']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^total\\s+${snap.entries.toLocaleString('en-US')}$`, 'm'));
    expect(text.stdout).toMatch(/^ctr web-1 \(pid \d+\)\s+\d+/m);
    expect(text.stdout).toMatch(new RegExp(`entries in ${snap.namespaces.length} namespaces`));
  });

  it('doctor names the namespaces that matter, with the command that would help there', () => {
    const r = ctp(['doctor', '--all-netns']);
    expect(r.status, r.stderr).toBe(0);
    // ctr web-3... is pid-held number 3: its 400 idle ASSURED entries are most of its table.
    const held3 = heldPids[3] as number;
    expect(r.stdout).toMatch(new RegExp(`^ctr api-7f9c-3 \\(pid ${held3}\\): \\d+\\.\\d% of all entries .*ASSURED ESTABLISHED idle over 6 h`, 'm'));
    expect(r.stdout).toContain(`$ ctpurge --state ESTABLISHED --idle 6h --dry-run --netns /proc/${held3}/ns/net`);
    const j = JSON.parse(ctp(['doctor', '--all-netns', '--json']).stdout) as { namespaces: { name: string; share: number; report: { count: number } }[]; total: number };
    expect(j.namespaces[0]?.name).toBe(`ctr api-7f9c-3 (pid ${held3})`);
    expect(j.total).toBe(j.namespaces.reduce((a, n) => a + n.report.count, 0));
  });

  it('a dry run counts the stale entries of each namespace and changes nothing; the purge deletes exactly them, each namespace under its own lock and named in its lines', () => {
    const before = stats();
    const dry = ctp(['--all-netns', '--unreplied', '--older', '1h', '--dry-run', '--json']);
    expect(dry.status, dry.stderr).toBe(0);
    const dryLines = dry.stdout.trim().split('\n').map((l) => JSON.parse(l) as { netns: string; netnsName?: string; matched: number; allNetns?: boolean });
    for (const n of before.namespaces) {
      const line = dryLines.find((l) => l.netns === n.path);
      expect(line?.matched, n.name).toBe(expected.get(n.name)?.[0]);
    }
    expect(stats().total.entries).toBe(before.total.entries);
    const log = path.join(dir, 'audit.log');
    const r = ctp(['--all-netns', '--unreplied', '--older', '1h', '--log', log]);
    expect(r.status, r.stderr).toBe(0);
    // A summary line each, starting with the namespace's name.
    expect(r.stdout).toMatch(/^n07: purged \d+ of \d+ entries/m);
    expect(r.stdout).toMatch(/^ctr web-0 \(pid \d+\): purged /m);
    const after = stats();
    for (const n of after.namespaces) {
      const [, live, idle] = expected.get(n.name) as number[];
      expect(n.entries, n.name).toBe((live as number) + (idle as number));
      expect(n.unreplied, n.name).toBe(0);
    }
    const audit = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { netns: string; netnsName?: string; unreplied: boolean });
    expect(audit).toHaveLength(before.total.unreplied);
    expect(audit.every((a) => a.unreplied)).toBe(true);
    expect(new Set(audit.map((a) => a.netnsName ?? 'host'))).toEqual(new Set(before.namespaces.map((n) => n.name)));
  });

  const named = () => [...expected.keys()].filter((n) => /^n\d\d$/.test(n));
  const reloadStale = (tag: string) => {
    for (const [i, name] of named().entries()) load(`/run/netns/${name}`, Array.from({ length: staleOf(i) }, (_, k) => staleTcpLine(k, 2 + (i % 40))), `${tag}-${name}`);
  };

  it('--every: each run finds the namespaces again; metrics name them, the busiest 20 on their own, the rest as "other"', async () => {
    reloadStale('again');
    const prom = path.join(dir, 'all.prom');
    const d = world.spawn([process.execPath, BIN, '--all-netns', '--unreplied', '--older', '1h', '--every', '1s', '--metrics-file', prom, '--pid-file', '/run/ctpurge-all.pid'], env);
    let out = '';
    d.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const deletedTotal = () => {
        try {
          const text = readFileSync(prom, 'utf8');
          return [...text.matchAll(/^ctpurge_entries_deleted_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
        } catch {
          return -1;
        }
      };
      const want = named().reduce((a, _n, i) => a + staleOf(i), 0);
      await waitFor('the reloaded stale entries to be deleted and counted', () => deletedTotal() === want, 30_000);
      // A namespace made now is found by the next run.
      world.sh('ip netns add late');
      load('/run/netns/late', [staleTcpLine(1, 9)], 'late');
      await waitFor('the new namespace to be purged', () => count('/run/netns/late') === 0, 10_000);
      const text = readFileSync(prom, 'utf8');
      parsePrometheus(text);
      const labels = new Set([...text.matchAll(/^ctpurge_runs_total\{netns="([^"]+)"\}/gm)].map((m) => m[1]));
      expect(labels.size).toBeLessThanOrEqual(21);
      expect(labels.has('other')).toBe(true);
      expect(labels.has('host')).toBe(true);
      expect(out).toMatch(/all namespaces: \d+ deleted/);
    } finally {
      world.sh('kill -TERM $(cat /run/ctpurge-all.pid)');
      await new Promise((r) => d.on('exit', r));
    }
  }, 60_000);

  it('--grace: each namespace\'s grace is waited out beside the others\' purges, not in turn; each says what expired', () => {
    reloadStale('grace');
    const started = Date.now();
    const r = ctp(['--all-netns', '--unreplied', '--older', '1h', '--grace', '3s', '--json']);
    const took = (Date.now() - started) / 1000;
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { netnsName?: string; graced?: number; graceOutcome?: { expired: number; alive: number; complete: boolean } });
    for (const [i, name] of named().entries()) {
      const line = lines.find((l) => l.netnsName === name);
      expect(line, name).toMatchObject({ graced: staleOf(i), graceOutcome: { expired: staleOf(i), alive: 0, complete: true } });
    }
    // 50 namespaces two at a time, each waiting 3 s in its slot, took 75 s or more; the waits
    // now overlap (the purges themselves take a few seconds here).
    expect(took).toBeLessThan(40);
  }, 120_000);

  it('--grace in the daemon: the outcome of each namespace\'s grace is counted once it is over, in its series', async () => {
    reloadStale('daemon-grace');
    // n49's purge lock is held for 4 s: the first run lasts that long, and the other
    // namespaces' 1 s graces end while it goes on, before it has ranked them.
    world.sh(`mkdir -p ${env.CTPURGE_LOCK_DIR}; f=${env.CTPURGE_LOCK_DIR}/netns-$(stat -L -c %i /run/netns/n49).lock; [ -e $f ] || install -m 600 /dev/null $f; flock $f sleep 4 >/dev/null 2>&1 &`);
    const prom = path.join(dir, 'grace.prom');
    const d = world.spawn([process.execPath, BIN, '--all-netns', '--unreplied', '--older', '1h', '--grace', '1s', '--every', '1h', '--json', '--metrics-file', prom, '--pid-file', '/run/ctpurge-grace.pid'], env);
    let out = '';
    d.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const outcomes = () => out.split('\n').flatMap((l) => (l.includes('"graceOutcome"') ? [JSON.parse(l) as { netnsName?: string; run: string; graceOutcome: { expired: number; alive: number } }] : []));
    try {
      await waitFor('every named namespace\'s grace outcome', () => named().every((n) => outcomes().some((o) => o.netnsName === n)), 60_000);
      for (const [i, name] of named().entries()) {
        expect(outcomes().find((o) => o.netnsName === name)?.graceOutcome, name).toMatchObject({ expired: staleOf(i), alive: 0 });
      }
      // The metrics count them: the sum over the series (the busiest own, the rest "other").
      const want = named().reduce((a, _n, i) => a + staleOf(i), 0);
      const expiredTotal = () => {
        try {
          return [...readFileSync(prom, 'utf8').matchAll(/^ctpurge_grace_expired_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
        } catch {
          return -1;
        }
      };
      await waitFor('the metrics to count what expired', () => expiredTotal() === want, 10_000);
      const text = readFileSync(prom, 'utf8');
      parsePrometheus(text);
      // Each outcome is in the series of the namespace it was graced in: every series (a
      // namespace's own, or "other") counts as expired what it counts as graced. (Outcomes that
      // came before the first run had ranked the namespaces once went to "other".)
      const bySeries = (name: string) => new Map([...text.matchAll(new RegExp(`^${name}(\\{[^}]*\\}) (\\d+)$`, 'gm'))].map((m) => [m[1] as string, Number(m[2])]));
      const graced = bySeries('ctpurge_entries_graced_total');
      const expired = bySeries('ctpurge_grace_expired_total');
      expect(graced.size).toBeGreaterThan(1);
      expect(Object.fromEntries(expired)).toEqual(Object.fromEntries(graced));
    } finally {
      world.sh('kill -TERM $(cat /run/ctpurge-grace.pid)');
      await new Promise((r) => d.on('exit', r));
    }
  }, 90_000);

  it('--grace in the daemon, stopped while the graces are pending: each wait is cut short and counted, and it exits 0', async () => {
    reloadStale('stop-grace');
    const d = world.spawn([process.execPath, BIN, '--all-netns', '--unreplied', '--older', '1h', '--grace', '60s', '--every', '1h', '--json', '--pid-file', '/run/ctpurge-stop.pid'], env);
    let out = '';
    d.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => d.on('exit', (code) => r(code)));
    await waitFor('the first run to end', () => out.includes('"allNetns":true'), 60_000);
    const stopped = Date.now();
    world.sh('kill -TERM $(cat /run/ctpurge-stop.pid)');
    expect(await exited).toBe(0);
    // Long before the 60 s grace is over.
    expect(Date.now() - stopped).toBeLessThan(30_000);
    const outcomes = out.split('\n').flatMap((l) => (l.includes('"graceOutcome"') ? [JSON.parse(l) as { netnsName?: string; graceOutcome: { expired: number; alive: number; complete: boolean } }] : []));
    for (const [i, name] of named().entries()) {
      // Cut short: none has expired yet, every one is still there.
      expect(outcomes.find((o) => o.netnsName === name)?.graceOutcome, name).toEqual({ expired: 0, alive: staleOf(i), complete: false });
    }
    // The graced entries are still there (60 s): the tests after this one count without them.
    const flush = ctp(['--all-netns', '--unreplied', '-q']);
    expect(flush.status, flush.stderr).toBe(0);
    for (const name of named()) expect(count(`/run/netns/${name}`), name).toBe(liveOf(named().indexOf(name)));
  }, 90_000);

  it('a namespace deleted (or replaced) after it was found is reported and skipped, never opened in its stead', () => {
    const script = `
      import { Conntrack } from ${JSON.stringify(path.join(path.dirname(BIN), '../dist/index.js'))};
      import { eachNamespace } from ${JSON.stringify(path.join(path.dirname(BIN), '../dist/cli/allNetns.js'))};
      import { execFileSync } from 'node:child_process';
      const found = [];
      for await (const ns of Conntrack.namespaces()) found.push(ns);
      execFileSync('ip', ['netns', 'del', 'n10']);
      execFileSync('ip', ['netns', 'del', 'n11']);
      execFileSync('ip', ['netns', 'add', 'n11']);
      const visits = await eachNamespace(found.filter((n) => ['n10', 'n11', 'n12'].includes(n.name)), async (ct) => (await ct.stats()).count);
      console.log(JSON.stringify(visits.map((v) => ({ name: v.info.name, value: v.value, gone: v.gone, error: v.error?.message }))));
    `;
    const r = world.run([process.execPath, '--input-type=module', '-e', script], { env });
    expect(r.status, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { name: string; value?: number; gone?: string; error?: string }[];
    expect(v.find((x) => x.name === 'n10')?.gone).toMatch(/ENOENT|no such|cannot open/i);
    expect(v.find((x) => x.name === 'n11')?.gone).toMatch(/now names another namespace/);
    expect(v.find((x) => x.name === 'n12')?.value).toBe(liveOf(12));
    expect(v.every((x) => x.error === undefined)).toBe(true);
    // The CLI, with namespaces going away while it runs: never a failure.
    const del = world.spawn(['sh', '-c', 'for i in 20 21 22 23 24 25 26 27; do ip netns del n$i; done']);
    const s = ctp(['stats', '--all-netns', '--json']);
    expect(s.status, s.stderr).toBe(0);
    return new Promise((resolve) => del.on('exit', resolve));
  });
});
