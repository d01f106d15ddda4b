/**
 * Throwaway network namespaces for kernel tests. Every namespace is created here, removed
 * in afterAll, and removed again at process exit if a test died first. Nothing here ever
 * touches the initial namespace's table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';

const live = new Set<string>();
process.on('exit', () => {
  for (const name of live) spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
});

function probe(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (kernel tests create network namespaces)';
  const name = `ctp-probe-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${(r.stderr || r.error?.message || '').trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  for (const tool of ['conntrack', 'nft', 'hping3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (npm run bootstrap)`;
  }
  return null;
}

export const kernelUnavailable = probe();

/**
 * describe() for kernel tests. Outside CI they skip with the reason when there is no
 * root or no netns; under CI=true a kernel test that cannot run fails.
 */
export function describeKernel(name: string, fn: () => void): void {
  if (kernelUnavailable === null) {
    describe(name, fn);
  } else if (process.env.CI === 'true' || process.env.CI === '1') {
    describe(name, () => {
      throw new Error(`kernel tests cannot run here: ${kernelUnavailable}. CI requires them (run as root on Linux).`);
    });
  } else {
    describe.skip(`${name} (skipped: ${kernelUnavailable})`, fn);
  }
}

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 30 });
}

export class TestNetns {
  readonly path: string;
  private constructor(readonly name: string) {
    this.path = `/var/run/netns/${name}`;
  }

  static create(prefix = 'ctp-test'): TestNetns {
    const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
    sh('ip', ['netns', 'add', name]);
    live.add(name);
    const ns = new TestNetns(name);
    ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A new namespace under a name used before (its old one deleted): the same name, a new table. */
  static recreate(name: string): TestNetns {
    sh('ip', ['netns', 'add', name]);
    live.add(name);
    const ns = new TestNetns(name);
    ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(cmd: string, args: string[], input?: string): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  sysctl(key: string, value: string | number): void {
    this.exec('sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /** Loads `conntrack -I` argument lines with `conntrack -R` (about 100k a second). */
  load(lines: string[]): void {
    if (lines.length === 0) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-load-'));
    try {
      const file = path.join(dir, 'entries');
      writeFileSync(file, `${lines.join('\n')}\n`);
      this.exec('conntrack', ['-R', file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The table size as conntrack itself counts it. */
  conntrackCount(): number {
    return Number(this.exec('conntrack', ['-C']).trim());
  }

  /** `conntrack -L` lines, the independent view of the table. */
  conntrackList(args: string[] = []): string[] {
    const r = spawnSync('ip', ['netns', 'exec', this.name, 'conntrack', '-L', ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  destroy(): void {
    spawnSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    live.delete(this.name);
  }
}

/** Raises nf_conntrack_max (global) for a run; returns the function that puts it back. */
export function raiseConntrackMax(atLeast: number): () => void {
  const file = '/proc/sys/net/netfilter/nf_conntrack_max';
  const before = Number(sh('cat', [file]).trim());
  if (before >= atLeast) return () => undefined;
  writeFileSync(file, String(atLeast));
  return () => writeFileSync(file, String(before));
}

/**
 * A fresh namespace and a fresh temporary directory (named from prefix) for every test of
 * the suite (scope 'each'), or one pair for the whole suite ('all'), removed after it; set()
 * receives them before.
 */
export function freshNetnsAndDir(prefix: string, set: (ns: TestNetns, dir: string) => void, scope: 'each' | 'all' = 'each'): void {
  let ns: TestNetns | undefined;
  let dir: string | undefined;
  (scope === 'each' ? beforeEach : beforeAll)(() => {
    ns = TestNetns.create();
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    set(ns, dir);
  });
  (scope === 'each' ? afterEach : afterAll)(() => {
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}
