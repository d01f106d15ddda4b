/**
 * The real programs operators point at ctpurge (Prometheus, node_exporter, promtool, dockerd,
 * systemd-analyze), run as child processes of the test on loopback: started here, stopped in
 * afterAll/finally, and killed again at process exit if a test died first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { describe } from 'vitest';
import { kernelUnavailable } from '../helpers/kernel.js';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * describe() for tests that need root, network namespaces and the given programs. Outside CI
 * they skip with the reason; under CI=true they fail, as kernel tests do.
 */
export function describeClients(name: string, commands: string[], fn: () => void): void {
  const missing = commands.filter((c) => !hasCommand(c));
  const reason = kernelUnavailable ?? (missing.length ? `${missing.join(', ')} not installed (npm run bootstrap installs them as root)` : null);
  if (reason === null) describe(name, fn);
  else if (process.env.CI === 'true' || process.env.CI === '1') {
    describe(name, () => {
      throw new Error(`cannot run here: ${reason}. CI requires this test.`);
    });
  } else describe.skip(`${name} (skipped: ${reason})`, fn);
}

/** A TCP port free on loopback right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(probe: () => T | Promise<T>, ms: number, what: string, every = 200): Promise<NonNullable<T>> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export interface Running {
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

export function start(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Running {
  const child = spawn(cmd, args, { env: { ...process.env, ...options.env }, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
    child.on('error', (e) => {
      err += `spawn ${cmd}: ${e.message}\n`;
      live.delete(child);
      resolve(-1);
    });
  });
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

type RunOptions = { input?: string; env?: NodeJS.ProcessEnv; timeout?: number };
type RunResult = { status: number | null; stdout: string; stderr: string };

/**
 * run(), without blocking the test worker: for steps that can take minutes (an image build).
 * A worker blocked in spawnSync for over a minute misses vitest's own RPC deadline and the
 * run ends with "Timeout calling onTaskUpdate", every test passed or not.
 */
export function runAsync(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...options.env }, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    if (options.input !== undefined) child.stdin?.end(options.input);
    const timer = setTimeout(() => {
      stderr += `\n${cmd}: killed after ${options.timeout ?? 120_000} ms`;
      child.kill('SIGKILL');
    }, options.timeout ?? 120_000);
    child.on('error', (err) => (stderr += `\n${err.message}`));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code, stdout, stderr });
    });
  });
}

/** Runs a program to completion; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], options: RunOptions = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: options.input, env: { ...process.env, ...options.env }, timeout: options.timeout ?? 120_000, maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? `\n${r.error.message}` : '') };
}

/** `cmd --version`'s version number, for the record in test names. */
export function versionOf(cmd: string, args = ['--version']): string {
  if (!hasCommand(cmd)) return `${cmd} missing`;
  const r = run(cmd, args);
  const m = /(\d+\.\d+(?:\.\d+)?[^\s,)]*)/.exec(`${r.stdout}${r.stderr}`);
  return `${path.basename(cmd)} ${m?.[1] ?? '?'}`;
}

/** Unreplied ESTABLISHED entries 2 h idle by their timeout: what `--unreplied --older 1h` purges. */
export const staleLine = (i: number, dport = 80): string =>
  `-I -p tcp -s 10.9.${i >> 8}.${i & 255} -d 192.0.2.80 --sport ${20000 + (i % 40000)} --dport ${dport} --state ESTABLISHED -t 424800`;
/** Replied and assured, silent for 8.9 h (400,000 s left of 432,000): a peer that vanished. */
export const vanishedLine = (i: number): string =>
  `-I -p tcp -s 10.7.${i >> 8}.${i & 255} -d 192.0.2.82 --sport ${20000 + (i % 40000)} --dport 443 --state ESTABLISHED -t 400000 -u SEEN_REPLY,ASSURED`;
/** Replied and assured: never matched by --unreplied. */
export const liveLine = (i: number): string =>
  `-I -p tcp -s 10.8.${i >> 8}.${i & 255} -d 192.0.2.81 --sport ${20000 + (i % 40000)} --dport 443 --state ESTABLISHED -t 424800 -u SEEN_REPLY,ASSURED`;
