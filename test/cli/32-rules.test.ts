/**
 * Rules in a file: check-rules, a one-shot run of several rules (each with its summary line,
 * its audit-log lines and its metrics label), and a daemon that reloads the file on SIGHUP,
 * keeping the old rules when the new file does not validate.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRules } from '../../src/cli/rules.js';
import { BIN, ctpurge, startCtpurge, TEST_LOCK_DIR } from '../helpers/cli.js';
import { describeKernel, freshNetnsAndDir, TestNetns } from '../helpers/kernel.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait.js';

const RULES = `# two policies, as the issue wrote them
rules:
  stale-unreplied:
    unreplied: true
    older: 1h
  vanished-peers:
    state: ESTABLISHED
    idle: 1d
    grace: 60s
    except:
      - { dst: 10.1.2.3, dport: 5432 }
`;

describe('parseRules', () => {
  it('reads each rule as the same options on the command line', () => {
    const set = parseRules(RULES, 'r.yaml');
    expect(set.rules.map((r) => [r.name, r.line])).toEqual([['stale-unreplied', 3], ['vanished-peers', 6]]);
    expect(set.rules[0]?.args.query).toEqual({ unreplied: true, olderThan: '1h' });
    expect(set.rules[1]?.args).toMatchObject({ grace: 60, query: { state: ['ESTABLISHED'], idleFor: '1d', except: [{ dst: ['10.1.2.3'], dport: '5432' }] } });
    // Lists, max-delete and limit.
    const more = parseRules('rules:\n  a:\n    state: [SYN_SENT, SYN_RECV]\n    src: [10.0.0.0/8, 192.168.0.0/16]\n    max-delete: 10%\n    limit: 5\n', 'x');
    expect(more.rules[0]?.args).toMatchObject({ limit: 5, maxDelete: { share: 0.1 }, query: { state: ['SYN_SENT', 'SYN_RECV'], src: ['10.0.0.0/8', '192.168.0.0/16'] } });
  });

  it.each([
    ['rules:\n  a:\n    unreplied: true\n    idle: 1x\n', /^x\.yaml:4: a: --idle: "1x" is not a duration/],
    ['rules:\n  a:\n    unreplied: true\n    every: 1m\n', /^x\.yaml:4: a: unknown key "every" \(it is not a selector or a per-rule option; give it on the command line\)/],
    ['rules:\n  a:\n    unreplied: true\n    idel: 1h\n', /^x\.yaml:4: a: unknown key "idel" \(did you mean idle\?\)/],
    ['rules:\n  a:\n    unreplied: false\n', /^x\.yaml:3: a: unreplied: expected true \(or leave the key out\)/],
    ['rules:\n  a:\n    dport: [80, 443]\n', /^x\.yaml:3: a: dport: takes one value, not a list/],
    ['rules:\n  Bad Name:\n    unreplied: true\n', /^x\.yaml:2: rule name "Bad Name": use lowercase letters/],
    ['rules:\n  a: {}\n', /^x\.yaml:2: a: expected the rule's options/],
    ['rules: {}\n', /^x\.yaml:1: rules: expected a mapping of rule names/],
    ['rule:\n  a:\n    unreplied: true\n', /^x\.yaml:1: unknown key "rule" \(the file has one key: rules\)/],
    ['rules:\n  a:\n    unreplied: true\n  a:\n    assured: true\n', /^x\.yaml:4: not valid YAML: Map keys must be unique/],
    ['rules:\n  a:\n    unreplied: true\n    except:\n      - { every: 1m }\n', /^x\.yaml:5: a: except: "every" is not a selector/],
    ['rules:\n  a: [\n', /^x\.yaml:\d+: not valid YAML/],
  ])('%j is refused naming the file, line and key', (text, message) => {
    expect(() => parseRules(text, 'x.yaml')).toThrow(message);
  });
});

describeKernel('--rules on a real table, and check-rules', () => {
  let ns: TestNetns;
  let dir: string;
  let file: string;

  freshNetnsAndDir('ctpurge-rules-', (n, d) => {
    ns = n;
    dir = d;
    file = path.join(dir, 'rules.yaml');
  }, 'all');

  /** 30 unreplied UDP flows (to .53), 20 replied TCP flows (to .80), 10 replied TCP flows to 10.1.2.3:5432. */
  function load(): void {
    ns.exec('conntrack', ['-F']);
    const lines: string[] = [];
    for (let i = 0; i < 30; i++) lines.push(`-I -p udp -s 10.5.0.${i + 1} -d 10.6.0.1 --sport 5000 --dport 53 -t 600`);
    for (let i = 0; i < 20; i++) lines.push(`-I -p tcp -s 10.5.1.${i + 1} -d 10.6.0.2 --sport 5000 --dport 80 --state ESTABLISHED -t 1000 -u SEEN_REPLY,ASSURED`);
    for (let i = 0; i < 10; i++) lines.push(`-I -p tcp -s 10.5.2.${i + 1} -d 10.1.2.3 --sport 5000 --dport 5432 --state ESTABLISHED -t 1000 -u SEEN_REPLY,ASSURED`);
    ns.load(lines);
  }

  it('check-rules lists each rule and what it selects, touching no table; a bad file exits 2 with one line', () => {
    writeFileSync(file, RULES);
    const r = ctpurge(['check-rules', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${file}: 2 rules\n  stale-unreplied: unreplied, older than 1h\n  vanished-peers: state ESTABLISHED, idle for 1d, except (dst 10.1.2.3, dport 5432); grace 60 s\n`);
    writeFileSync(path.join(dir, 'bad.yaml'), 'rules:\n  a:\n    proto: tcp\n');
    const bad = ctpurge(['check-rules', path.join(dir, 'bad.yaml')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^ctpurge: .*bad\.yaml:2: a: refusing to purge: no selector narrows the table/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(ctpurge(['check-rules']).stderr).toMatch(/^ctpurge: check-rules: give the rules file/);
    expect(ctpurge(['--rules', file, '--idle', '1h']).stderr).toMatch(/^ctpurge: --rules: --idle goes in the rules file, in each rule/);
  });

  it('a rules path that is a FIFO, a device or a directory exits 2 at once, reading nothing (no wait for a writer, no endless read)', () => {
    const fifo = path.join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    for (const [target, what] of [[fifo, 'a FIFO'], ['/dev/zero', 'a device'], [dir, 'a directory']] as const) {
      for (const argv of [['check-rules', target], ['--netns', ns.name, '--rules', target]]) {
        const t0 = Date.now();
        const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL', env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR } });
        expect(r.signal, `${argv.join(' ')} hung`).toBeNull();
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(r.status).toBe(2);
        expect(r.stderr).toBe(`ctpurge: --rules: ${target} is ${what}, not a file; refusing\n`);
      }
    }
  });

  it('a one-shot run: each rule purges its own, with its summary line, audit lines and metrics label', () => {
    load();
    writeFileSync(file, 'rules:\n  dns:\n    proto: udp\n    dport: 53\n  web:\n    state: ESTABLISHED\n    dport: 80\n    grace: 1s\n');
    const log = path.join(dir, 'audit.log');
    const prom = path.join(dir, 'm.prom');
    const r = ctpurge(['--netns', ns.name, '--rules', file, '--log', log, '--metrics-file', prom]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^dns: purged 30 of 60 entries \(30 matched, 0 vanished\)/);
    expect(lines[1]).toMatch(/^web: gave 20 of 30 entries 1 s to show a packet/);
    expect(lines[2]).toBe('web: after the grace: 20 expired, 0 proved alive');
    expect(ns.conntrackCount()).toBe(10);
    const audit = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { rule: string; grace?: number; protocol: string });
    expect(audit.filter((a) => a.rule === 'dns' && a.protocol === 'udp' && a.grace === undefined)).toHaveLength(30);
    expect(audit.filter((a) => a.rule === 'web' && a.protocol === 'tcp' && a.grace === 1)).toHaveLength(20);
    const text = readFileSync(prom, 'utf8');
    parsePrometheus(text);
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const label = `netns="${ns.name}"`;
    expect(value(`ctpurge_entries_deleted_total{${label},rule="dns"}`)).toBe(30);
    expect(value(`ctpurge_entries_deleted_total{${label},rule="web"}`)).toBe(0);
    expect(value(`ctpurge_entries_graced_total{${label},rule="web"}`)).toBe(20);
    expect(value(`ctpurge_grace_expired_total{${label},rule="web"}`)).toBe(20);
    // The table's shape is the table's: no rule label.
    expect(value(`ctpurge_table_entries_unreplied{${label}}`)).toBe(0);
    // One HELP per family, every rule's series under it.
    expect(text.match(/^# HELP ctpurge_runs_total /gm)).toHaveLength(1);
    expect(text.match(/^ctpurge_runs_total\{/gm)).toHaveLength(2);
  });

  it('a one-shot run waits for its graces after releasing the lock; --no-wait applies to the rules', async () => {
    load();
    writeFileSync(file, 'rules:\n  web:\n    state: ESTABLISHED\n    dport: 80\n    grace: 3s\n');
    const first = startCtpurge(['--netns', ns.name, '--rules', file]);
    await waitFor('the grace to be given', () => /^web: gave 20 of /.test(first.out()), 10_000);
    // While it waits, another purge of the namespace gets the lock at once.
    const other = ctpurge(['--netns', ns.name, '--proto', 'udp', '--dport', '53', '--dry-run', '--lock-wait', '0', '--json']);
    expect(other.stderr).toBe('');
    expect(JSON.parse(other.stdout)).toMatchObject({ matched: 30 });
    expect(await first.exited).toBe(0);
    expect(first.out()).toMatch(/\nweb: after the grace: 20 expired, 0 proved alive\n$/);
    load();
    const quick = ctpurge(['--netns', ns.name, '--rules', file, '--no-wait']);
    expect(quick.status).toBe(0);
    expect(quick.stdout).toMatch(/^web: gave 20 of [\d,]+ entries 3 s to show a packet [^\n]*\n$/);
  }, 30_000);

  it('a rule stopped by its max-delete exits 3; the other rules still run', () => {
    load();
    writeFileSync(file, 'rules:\n  dns:\n    proto: udp\n    dport: 53\n    max-delete: 5\n  web:\n    state: ESTABLISHED\n    dport: 80\n');
    const r = ctpurge(['--netns', ns.name, '--rules', file, '--json']);
    expect(r.status).toBe(3);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rule: string; deleted: number; maxDeleteReached?: boolean });
    expect(out.map((o) => [o.rule, o.deleted, o.maxDeleteReached])).toEqual([['dns', 5, true], ['web', 20, undefined]]);
    expect(r.stderr).toMatch(/^ctpurge: dns: stopped at --max-delete 5/);
  });

  it('the daemon reloads the file on SIGHUP; a bad file keeps the rules it runs, and says why', async () => {
    load();
    writeFileSync(file, 'rules:\n  dns:\n    proto: udp\n    dport: 53\n');
    // --lock-wait 0: the rules' runs take the lock in turn within the process, never at once
    // (flock would make one of them fail at once).
    const d = startCtpurge(['--netns', ns.name, '--rules', file, '--every', '300ms', '--lock-wait', '0']);
    try {
      await waitFor('the dns rule to run', () => ns.conntrackCount() === 30, 10_000);
      writeFileSync(file, 'rules:\n  dns:\n    proto: udp\n    dport: 53\n  web:\n    state: ESTABLISHED\n    dport: 80\n');
      d.child.kill('SIGHUP');
      await waitFor('the reload', () => /--rules: loaded 2 rules from .*: dns, web/.test(d.out()), 10_000);
      // A SIGHUP with the file unchanged (logrotate's) reloads nothing.
      d.child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 700));
      expect(d.out().match(/--rules: loaded/g)).toHaveLength(1);
      await waitFor('the web rule to run', () => / web: purged 20 of /.test(d.out()), 10_000);
      expect(ns.conntrackCount()).toBe(10);
      writeFileSync(file, 'rules:\n  dns:\n    proto: udp\n    idle: 1x\n');
      d.child.kill('SIGHUP');
      await waitFor('the refusal', () => /keeping the 2 rules loaded before/.test(d.err()), 10_000);
      expect(d.err()).toMatch(/^ctpurge: --rules: .*rules\.yaml:4: dns: --idle: "1x" is not a duration .*; keeping the 2 rules loaded before$/m);
      // Still running the old rules.
      const runs = (d.out().match(/ web: purged/g) ?? []).length;
      await waitFor('another run of the web rule', () => (d.out().match(/ web: purged/g) ?? []).length > runs, 10_000);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
    }
    expect(d.err()).not.toMatch(/purge lock|another ctpurge/);
  }, 40_000);
});
