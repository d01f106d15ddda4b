/**
 * ctpurge top: the real program on a real terminal (tmux), against a throwaway namespace with
 * real hping3 traffic over a veth pair. The screen is read with capture-pane; keys go in with
 * send-keys. The terminal must come back as it was after q, after SIGTERM; kill -9 leaves
 * nothing behind. The non-terminal snapshot (--once, --json) is held to conntrack -C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, ctpurge } from '../helpers/cli.js';
import { describeKernel } from '../helpers/kernel.js';
import { trafficPair } from '../helpers/traffic.js';
import { waitFor } from '../helpers/wait.js';
import { repliedTcpLine } from '../helpers/seed.js';

// tmux, hping3 and pgrep run without a sanitizer runtime preloaded (npm run test:asan): tmux
// and pgrep hang with it. The ctpurge typed into the pane gets it back, with the sanitizer build it needs.
const plainEnv = () => {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
};
const SANITIZER = ['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'CTPURGE_ADDON']
  .filter((k) => process.env[k])
  .map((k) => `${k}='${process.env[k] as string}' `)
  .join('');
const tmux = (...args: string[]) => spawnSync('tmux', ['-L', `ctp-top-${process.pid}`, ...args], { encoding: 'utf8', env: plainEnv() });

describeKernel('ctpurge top, on a terminal (tmux) with real traffic', () => {
  let pair: ReturnType<typeof trafficPair>;
  let lockDir: string;
  const session = 'top';
  const screen = () => tmux('capture-pane', '-t', session, '-p').stdout;
  /** The screen with the lines the terminal wrapped joined again (a long command line). */
  const joinedScreen = () => tmux('capture-pane', '-t', session, '-p', '-J').stdout;
  const typed = (text: string) => tmux('send-keys', '-t', session, '-l', '--', text);
  const key = (k: string) => tmux('send-keys', '-t', session, k);
  /** The shell's terminal settings (stty -g), written to the pane and read back. */
  const sttyNow = async (): Promise<string> => {
    const mark = `STTY-${Math.random().toString(36).slice(2)}`;
    typed(`echo ${mark}=$(stty -g)`);
    key('Enter');
    let found = '';
    await waitFor('stty in the pane', () => {
      found = new RegExp(`^${mark}=(\\S+)$`, 'm').exec(screen())?.[1] ?? '';
      return found !== '';
    }, 5000);
    return found;
  };
  const flood = (): ChildProcess => spawn('ip', ['netns', 'exec', pair.client.name, 'hping3', '-q', '-S', '-p', '80', '-i', 'u1000', pair.peerIp], { stdio: 'ignore', env: plainEnv() });
  const topPid = () => {
    const pid = Number(spawnSync('pgrep', ['-f', `top --netns ${pair.client.name}`], { encoding: 'utf8', env: plainEnv() }).stdout.trim().split('\n')[0]);
    // Never 0 or NaN: process.kill(0) would signal this whole process group.
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no ctpurge top process found (pgrep gave ${pid})`);
    return pid;
  };
  const startTop = async () => {
    typed(`${SANITIZER}CTPURGE_LOCK_DIR=${lockDir} ${process.execPath} ${BIN} top --netns ${pair.client.name} --interval 500ms`);
    key('Enter');
    await waitFor('the top screen', () => /^table .* entries/m.test(screen()), 10_000);
  };

  beforeAll(() => {
    pair = trafficPair();
    lockDir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-top-'));
    // Two states to sort: replied ESTABLISHED entries beside the SYN_SENT ones the flood makes.
    pair.client.load(Array.from({ length: 300 }, (_, i) => repliedTcpLine(i)));
    tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '50', 'bash --norc --noprofile');
  });

  afterAll(() => {
    tmux('kill-server');
    pair?.client.destroy();
    pair?.peer.destroy();
    if (lockDir) rmSync(lockDir, { recursive: true, force: true });
  });

  it('shows the fill level and the rates, and they change when the traffic does; keys pause, sort and filter; q puts the terminal back', async () => {
    const before = await sttyNow();
    await startTop();
    try {
      await shows(before);
    } finally {
      // A failed step leaves top running: q, so the next test gets the shell.
      if (/^table /m.test(screen())) key('q');
    }
  }, 90_000);

  async function shows(before: string): Promise<void> {
    const entries = () => Number(/^table .*?([\d,]+) of [\d,]+ entries/m.exec(screen())?.[1]?.replaceAll(',', '') ?? NaN);
    const newRate = () => Number(/new ([\d,]+)\/s/.exec(screen())?.[1]?.replaceAll(',', '') ?? NaN);
    expect(entries()).toBe(300);
    const hping = flood();
    try {
      await waitFor('new flows per second on the screen', () => newRate() >= 300, 10_000);
      await waitFor('the entries to grow', () => entries() >= 1000, 10_000);
      expect(screen()).toMatch(/^table [█·]+ \d+\.\d%/m);
      // The table's shape, read again, shows the new state.
      key('r');
      await waitFor('SYN_SENT among the states', () => /^ {2}SYN_SENT\s+[\d,]+/m.test(screen()), 10_000);
    } finally {
      hping.kill('SIGINT');
    }
    await waitFor('the rate to fall back once the traffic stops', () => newRate() === 0, 10_000);
    // Sort: by count SYN_SENT (more) comes first; by name ESTABLISHED does.
    const order = () => [...screen().matchAll(/^ {2}(ESTABLISHED|SYN_SENT)\s/gm)].map((m) => m[1]);
    const synSent = () => Number(/^ {2}SYN_SENT\s+([\d,]+)/m.exec(screen())?.[1]?.replaceAll(',', '') ?? 0);
    key('r');
    await waitFor('the table read after the flood', () => synSent() >= 500, 10_000);
    expect(order()).toEqual(['SYN_SENT', 'ESTABLISHED']);
    key('s');
    await waitFor('sorted by name', () => order()[0] === 'ESTABLISHED', 5000);
    // Pause: the header says so and the screen stops changing.
    key('p');
    await waitFor('PAUSED', () => /PAUSED/.test(screen()), 5000);
    key('p');
    await waitFor('running again', () => !/PAUSED/.test(screen()), 5000);
    // A resize redraws at the new size: the key line is the last row again.
    tmux('resize-window', '-t', session, '-x', '110', '-y', '36');
    await waitFor('the redraw at 36 rows', () => screen().split('\n').length >= 36 && /q quit/.test(screen().split('\n')[35] ?? ''), 5000);
    tmux('resize-window', '-t', session, '-x', '150', '-y', '50');
    // Filter: selectors, validated as the command line's; a bad one is said, not applied.
    key('f');
    typed('--bogus');
    key('Enter');
    await waitFor('the bad filter refused', () => /filter: unknown option --bogus/.test(screen()), 5000);
    key('f');
    typed('--state ESTABLISHED');
    key('Enter');
    await waitFor('the filter applied', () => /states \(read .*; state ESTABLISHED\)/.test(screen()), 10_000);
    expect(order()).toEqual(['ESTABLISHED']);
    key('q');
    await waitFor('the shell back', () => !/^table /m.test(screen()), 5000);
    expect(await sttyNow()).toBe(before);
    // The main screen is back: what was typed before top is there again.
    expect(joinedScreen()).toContain('top --netns');
  }

  it('SIGTERM puts the terminal back; kill -9 leaves nothing behind', async () => {
    const before = await sttyNow();
    await startTop();
    process.kill(topPid(), 'SIGTERM');
    await waitFor('the shell back after SIGTERM', () => !/^table /m.test(screen()), 5000);
    expect(await sttyNow()).toBe(before);
    await startTop();
    const pid = topPid();
    process.kill(pid, 'SIGKILL');
    const gone = () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    await waitFor('the process gone', gone, 5000);
    // No file, lock or process of its own; the next run works. (The terminal a kill -9 leaves
    // in raw mode is the terminal's to reset: no process can act after SIGKILL.)
    expect(readdirSync(lockDir)).toEqual([]);
    tmux('send-keys', '-t', session, 'reset', 'Enter');
    const r = ctpurge(['top', '--netns', pair.client.name, '--once', '--interval', '200ms'], { CTPURGE_LOCK_DIR: lockDir });
    expect(r.status, r.stderr).toBe(0);
  }, 60_000);

  it('not on a terminal: one snapshot, text or --json, its count the kernel\'s', () => {
    const r = ctpurge(['top', '--netns', pair.client.name, '--once', '--json', '--interval', '300ms']);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { entries: number; max: number; rates: { new: number; entries: number }; summary: { total: number } };
    const now = Number(pair.client.exec('conntrack', ['-C']).trim());
    // Entries expire on their own (SYN_SENT after 120 s): the snapshot and conntrack -C a moment apart.
    expect(Math.abs(s.entries - now)).toBeLessThanOrEqual(Math.ceil(now * 0.01));
    expect(s.summary.total).toBeGreaterThanOrEqual(300);
    expect(s.rates).toMatchObject({ new: 0 });
    const text = ctpurge(['top', '--netns', pair.client.name, '--interval', '200ms']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^table [█·]+ \d+\.\d% {2}[\d,]+ of [\d,]+ entries/m);
    expect(text.stdout).toMatch(/^what would free space$/m);
    expect(text.stdout).not.toContain('\x1b[');
  });
});
