/**
 * What a careless operator does to a one-shot CLI: pipes it into head, points its files at odd
 * places, fills the disk under its audit log (the daemon's share: 48-operator-daemon).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, ctpurge, startCtpurge, TEST_LOCK_DIR } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { logSources as sources, staleTcpLine } from '../helpers/seed.js';


const ENTRY = (i: number) => staleTcpLine(i, 4);

/** Runs `ctpurge ARGS | READER` in bash; returns ctpurge's own exit status and stderr. */
function piped(args: string[], reader: string): { status: number; stderr: string } {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} 2>"$ERRF" | ${reader}; echo "\${PIPESTATUS[0]}"; cat "$ERRF"; rm -f "$ERRF"`], {
    encoding: 'utf8',
    env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR, ERRF: `/tmp/ctpurge-piped-${process.pid}.err` },
    timeout: 60_000,
  });
  const [status, ...rest] = r.stdout.split('\n');
  return { status: Number(status), stderr: rest.join('\n').trim() };
}

describeKernel('a reader that goes away: ctpurge ... | head', () => {
  let ns: TestNetns;
  beforeAll(() => {
    ns = TestNetns.create();
    ns.load(Array.from({ length: 20000 }, (_, i) => ENTRY(i)));
  });
  afterAll(() => ns?.destroy());

  for (const format of [[], ['-o', 'conntrack'], ['--json'], ['--json', '--limit', '15000']]) {
    it(`list ${format.join(' ') || '(table)'} | head -1 exits 0, quietly`, () => {
      const r = piped(['list', ...format, '--netns', ns.name], 'head -1 >/dev/null');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('stats, a dry run with entries, and a usage error keep their exit codes with a closed pipe', () => {
    expect(piped(['stats', '--netns', ns.name], 'true').status).toBe(0);
    expect(piped(['--state', 'ESTABLISHED', '--dry-run', '--json', '--verbose', '--netns', ns.name], 'head -c 10 >/dev/null').status).toBe(0);
    expect(piped(['--bogus'], 'true').status).toBe(2);
    // A slow reader that reads everything gets everything.
    const r = spawnSync('bash', ['-c', `'${process.execPath}' '${BIN}' list --json --netns ${ns.name} | (sleep 1; wc -l)`], {
      encoding: 'utf8',
      env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR },
    });
    expect(Number(r.stdout.trim())).toBe(20000);
    expect(ns.conntrackCount()).toBe(20000);
  });
});

const ESTABLISHED = (n: number) => Array.from({ length: n }, (_, i) => ENTRY(i));

/** A small tmpfs, for a full disk; always unmounted. */
function smallTmpfs(kb: number): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir]);
  return {
    dir,
    remove: () => {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}


describeKernel('--log: no entry is deleted without its line', () => {
  let ns: TestNetns;
  let dir: string;
  freshNetnsAndDir('ctpurge-log-', (n, d) => {
    ns = n;
    dir = d;
    ns.load(ESTABLISHED(3000));
  });

  it('logs every deleted entry, in a private file', () => {
    const log = path.join(dir, 'audit.log');
    const r = ctpurge(['--state', 'ESTABLISHED', '--log', log, '--netns', ns.name, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 3000, logged: 3000 });
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(sources(lines).size).toBe(3000);
    expect(statSync(log).mode & 0o777).toBe(0o600);
  });

  it('on a full disk: stops before the next delete, every deleted entry has its line, the message names --log, the path and the counts', () => {
    const fs = smallTmpfs(64);
    try {
      const log = path.join(fs.dir, 'audit.log');
      const before = new Set(ns.conntrackList().map((l) => /src=(\S+)/.exec(l)?.[1]));
      const r = ctpurge(['--state', 'ESTABLISHED', '--log', log, '--netns', ns.name]);
      expect(r.status).toBe(1);
      const m = new RegExp(`^ctpurge: --log: cannot write ${log}: ENOSPC \\(no space left on device\\); stopped before the next delete: (\\d+) deleted, (\\d+) logged\\n$`).exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      const deleted = Number(m?.[1]);
      const logged = Number(m?.[2]);
      expect(deleted).toBeGreaterThan(0);
      expect(deleted).toBeLessThan(3000);
      expect(logged).toBe(deleted);
      // The log holds whole lines only, and the line of every entry that is gone.
      const text = readFileSync(log, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      const logSrc = sources(text.trim().split('\n'));
      expect(logSrc.size).toBe(logged);
      const after = new Set(ns.conntrackList().map((l) => /src=(\S+)/.exec(l)?.[1]));
      expect(after.size).toBe(3000 - deleted);
      for (const src of before) if (!after.has(src)) expect(logSrc.has(src as string)).toBe(true);
    } finally {
      fs.remove();
    }
  });

  it('the log is locked (flock) while a batch is written: a purge waits for another writer\'s lock, and writes nothing meanwhile', async () => {
    const log = path.join(dir, 'audit.log');
    writeFileSync(log, '', { mode: 0o600 });
    const holder = spawn('flock', ['-x', log, '-c', 'echo held; sleep 1.5'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout?.on('data', () => resolve()));
    const t0 = Date.now();
    const run = startCtpurge(['--state', 'ESTABLISHED', '--log', log, '--netns', ns.name, '--json']);
    await new Promise((r) => setTimeout(r, 800));
    // Waiting for the lock: no line written, and no entry deleted without its line.
    expect(statSync(log).size).toBe(0);
    expect(ns.conntrackCount()).toBe(3000);
    expect(await run.exited).toBe(0);
    expect(Date.now() - t0).toBeGreaterThan(1200);
    expect(JSON.parse(run.out())).toMatchObject({ deleted: 3000, logged: 3000 });
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(3000);
  });

  it('two writers on one log and a full disk: a failed write never removes the other writer\'s lines', async () => {
    for (let round = 0; round < 3; round++) {
      const fs = smallTmpfs(2000);
      const other = TestNetns.create();
      try {
        if (round > 0) ns.load(ESTABLISHED(3000));
        other.load(ESTABLISHED(3000));
        const log = path.join(fs.dir, 'audit.log');
        const runs = [ns, other].map((n) => startCtpurge(['--state', 'ESTABLISHED', '--log', log, '--netns', n.name, '--json']));
        const codes = await Promise.all(runs.map((r) => r.exited));
        // Each says how many lines it wrote: in its summary, or in its ENOSPC message.
        const logged = runs.map((r, i) => (codes[i] === 0 ? (JSON.parse(r.out()) as { logged: number }).logged : Number(/(\d+) logged\n$/.exec(r.err())?.[1])));
        expect(codes.filter((c) => c === 1).length, runs.map((r) => r.err()).join('')).toBeGreaterThan(0);
        const text = readFileSync(log, 'utf8');
        expect(text === '' || text.endsWith('\n')).toBe(true);
        const lines = text.split('\n').filter(Boolean);
        for (const l of lines) JSON.parse(l);
        expect(lines.length, `round ${round}: ${JSON.stringify(logged)}`).toBe(logged[0]! + logged[1]!);
        // And every entry that is gone has its line.
        expect(6000 - ns.conntrackCount() - other.conntrackCount()).toBe(lines.length);
      } finally {
        other.destroy();
        fs.remove();
        ns.exec('conntrack', ['-F']);
      }
    }
  });

  it('--log - writes the lines to standard output (the summary goes to stderr), and creates no file named -', () => {
    const r = spawnSync(process.execPath, [BIN, '--state', 'ESTABLISHED', '--log', '-', '--netns', ns.name], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR },
      maxBuffer: 1 << 26,
    });
    expect(r.status).toBe(0);
    expect(sources(r.stdout.trim().split('\n')).size).toBe(3000);
    expect(r.stderr).toMatch(/^purged 3,000 of 3,000 entries/);
    expect(existsSync(path.join(dir, '-'))).toBe(false);
  });

  it('refuses a FIFO, a symlink, a device, another user\'s file and a file others can write, with exit 2, before the table is touched', () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const target = path.join(dir, 'target');
    writeFileSync(target, '');
    const link = path.join(dir, 'link');
    symlinkSync(target, link);
    const shared = path.join(dir, 'shared');
    writeFileSync(shared, '');
    chmodSync(shared, 0o666);
    const theirs = path.join(dir, 'theirs');
    writeFileSync(theirs, '', { mode: 0o600 });
    chownSync(theirs, 65534, 65534);
    const cases: [string, RegExp][] = [
      [fifo, /is a FIFO/],
      [link, /is a symbolic link \(give the real path\)/],
      ['/dev/null', /is a device/],
      [shared, /is writable by others \(mode 0666\)/],
      [theirs, /belongs to uid 65534/],
    ];
    for (const [file, why] of cases) {
      const t0 = Date.now();
      const r = ctpurge(['--state', 'ESTABLISHED', '--log', file, '--netns', ns.name]);
      expect(r.status, file).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^ctpurge: --log: ${file} ${why.source}; refusing to write to it\\n$`));
      expect(Date.now() - t0).toBeLessThan(5000);
      const d = ctpurge(['--state', 'ESTABLISHED', '--every', '1h', '--log', file, '--netns', ns.name]);
      expect(d.status, `daemon, ${file}`).toBe(2);
    }
    expect(readFileSync(target, 'utf8')).toBe('');
    expect(ns.conntrackCount()).toBe(3000);
  });

  it('--metrics-file never replaces a device, FIFO or symlink', () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const link = path.join(dir, 'link');
    symlinkSync('/etc/hostname', link);
    for (const [file, why] of [['/dev/null', 'is a device'], [fifo, 'is a FIFO'], [link, 'is a symbolic link']] as const) {
      const r = ctpurge(['--state', 'ESTABLISHED', '--metrics-file', file, '--netns', ns.name]);
      expect(r.status, file).toBe(2);
      expect(r.stderr).toContain(`--metrics-file: ${file} ${why}`);
    }
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(ns.conntrackCount()).toBe(3000);
  });
});
