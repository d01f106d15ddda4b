/**
 * deploy/systemd: systemd-analyze verify on every unit, and the hardening checked against what
 * the CLI needs by running each unit's ExecStart line under setpriv with the unit's user,
 * capabilities, NoNewPrivileges and UMask, in a throwaway namespace (as NetworkNamespacePath=
 * would put it there). No systemd manager runs here, so the file-system sandbox
 * (ProtectSystem=, ...) and the system-call filter are verified as syntax only.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/cli/args.js';
import { loadRules } from '../../src/cli/rules.js';
import { DEFAULT_LOCK_DIR } from '../../src/lock.js';
import { compileQuery } from '../../src/query.js';
import { BIN, ROOT } from '../helpers/cli.js';
import { TestNetns } from '../helpers/kernel.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { describeClients, liveLine, run, staleLine, vanishedLine, versionOf } from './clients.js';

const UNITS = path.join(ROOT, 'deploy/systemd');
/** ExecStart names the command without a path: systemd searches /usr/local/bin and /usr/bin (npm i -g puts it in either). */
const SHIPPED_BIN = 'ctpurge';
/** Where the units read the shipped rules (install -Dm644 deploy/rules.yaml /etc/ctpurge/rules.yaml). */
const SHIPPED_RULES = '/etc/ctpurge/rules.yaml';
const TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';
const NOBODY = 65534;

/** [Service] keys of a unit file; repeated keys keep every value in order. */
function serviceSection(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = s[1] as string;
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`${file}: not a key=value line: ${line}`);
    if (section !== 'Service') continue;
    out.set(kv[1] as string, [...(out.get(kv[1] as string) ?? []), kv[2] as string]);
  }
  return out;
}

const one = (unit: Map<string, string[]>, key: string): string => {
  const v = unit.get(key);
  if (!v || v.length !== 1) throw new Error(`${key}: expected one value, got ${JSON.stringify(v)}`);
  return v[0] as string;
};

/** ExecStart's words (the units use no quoting; "%%" is systemd's "%"). */
const words = (line: string) => line.trim().split(/\s+/).map((w) => w.replaceAll('%%', '%'));

describe('systemd units', () => {
  it('declare what the CLI needs: only CAP_NET_ADMIN, no new privileges, the lock directory, arguments the CLI accepts', () => {
    for (const name of ['ctpurge.service', 'ctpurge@.service']) {
      const unit = serviceSection(path.join(UNITS, name));
      expect(one(unit, 'AmbientCapabilities'), name).toBe('CAP_NET_ADMIN');
      expect(one(unit, 'CapabilityBoundingSet'), name).toBe('CAP_NET_ADMIN');
      expect(one(unit, 'NoNewPrivileges'), name).toBe('yes');
      expect(one(unit, 'DynamicUser'), name).toBe('yes');
      expect(one(unit, 'RestrictAddressFamilies').split(' '), name).toContain('AF_NETLINK');
      const [bin, ...args] = words(one(unit, 'ExecStart'));
      expect(bin).toBe(SHIPPED_BIN);
      // The metrics are published after every run, a failed one too (exit 3 from --max-delete):
      // ExecStopPost, never ExecStartPost, which systemd skips when ExecStart fails. None can
      // fail the unit for want of node_exporter: each is "-" (failure ignored).
      expect(unit.get('ExecStartPost'), name).toBeUndefined();
      for (const post of unit.get('ExecStopPost') ?? []) expect(post.startsWith('-'), post).toBe(true);
      const parsed = parseArgs(args);
      expect(parsed.command).toBe('purge');
      // The shipped rules (deploy/rules.yaml, installed at /etc/ctpurge/rules.yaml): what doctor
      // recommends, each rule with a stop; the timer's run does not sit out the grace.
      expect(parsed.rules, name).toBe(SHIPPED_RULES);
      expect(parsed.noWait, name).toBe(true);
      const rules = loadRules(path.join(ROOT, 'deploy/rules.yaml')).rules;
      // The query keeps the values as written; what they mean is the compiled filter's.
      expect(rules[0]?.args.query).toMatchObject({ state: ['ESTABLISHED'], idleFor: '6h' });
      expect(compileQuery(rules[0]?.args.query).filter.idleFor).toBe(6 * 3600);
      for (const r of rules) expect(r.args.maxDelete, `${name}: ${r.name}`).toEqual({ share: 0.5 });
      // Without CAP_SYS_ADMIN ctpurge cannot setns(2): a unit never passes --netns.
      expect(parsed.netns, name).toBeUndefined();
      // The lock directory is the unit's RuntimeDirectory.
      const lockDir = unit.get('Environment')?.find((e) => e.startsWith('CTPURGE_LOCK_DIR='))?.slice('CTPURGE_LOCK_DIR='.length) ?? DEFAULT_LOCK_DIR;
      expect(lockDir, name).toBe(`/run/${one(unit, 'RuntimeDirectory')}`);
      // Files the CLI writes are in a directory the unit's user may write.
      const writable = [lockDir, ...(unit.get('LogsDirectory') ?? []).map((d) => `/var/log/${d}`), ...(unit.get('ReadWritePaths') ?? []).map((d) => d.replace(/^-/, ''))];
      for (const file of [parsed.metricsFile, parsed.log]) if (file) expect(writable, `${name}: ${file}`).toContain(path.dirname(file));
    }
    const template = serviceSection(path.join(UNITS, 'ctpurge@.service'));
    expect(one(template, 'NetworkNamespacePath')).toBe('/run/netns/%i');
  });
});

describeClients(`systemd-analyze verify (${versionOf('systemd-analyze')})`, ['systemd-analyze'], () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-units-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The units as shipped, ExecStart pointing at this checkout's bin (verify checks it exists). */
  function stage(edit: (text: string) => string = (t) => t): string[] {
    const files: string[] = [];
    for (const name of readdirSync(UNITS)) {
      const text = edit(readFileSync(path.join(UNITS, name), 'utf8').replaceAll(`ExecStart=${SHIPPED_BIN} `, `ExecStart=${BIN} `));
      writeFileSync(path.join(dir, name), text);
      files.push(`./${name}`);
      // A template is verified as written and as an instance.
      if (name.includes('@.')) {
        writeFileSync(path.join(dir, name.replace('@.', '@blue.')), text);
        files.push(`./${name.replace('@.', '@blue.')}`);
      }
    }
    return files;
  }

  it('passes on every unit in deploy/systemd, with nothing to say', () => {
    const files = stage();
    expect(files).toEqual(expect.arrayContaining(['./ctpurge.service', './ctpurge.timer', './ctpurge@.service', './ctpurge@blue.service', './ctpurge@blue.timer']));
    const r = run('sh', ['-c', `cd ${dir} && systemd-analyze verify ${files.join(' ')}`]);
    expect(r.status, r.stderr).toBe(0);
    expect((r.stdout + r.stderr).trim()).toBe('');
  });

  it('would report a misspelt key or an unknown system-call group (the check is real)', () => {
    const files = stage((t) => t.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes').replace('SystemCallFilter=@system-service', 'SystemCallFilter=@sytem-service'));
    const r = run('sh', ['-c', `cd ${dir} && systemd-analyze verify ${files.join(' ')}`]);
    expect(r.stdout + r.stderr).toMatch(/Unknown key 'NoNewPrivilege'/);
    expect(r.stdout + r.stderr).toMatch(/Unknown system call group.*@sytem-service/);
  });
});

describeClients('the units\' ExecStart under setpriv with the units\' privileges', ['setpriv', 'systemd-analyze'], () => {
  let ns: TestNetns;
  let dir: string;
  let runtimeRoot: string;
  let textfiles: string;
  beforeEach(() => {
    ns = TestNetns.create('ctp-systemd');
    // 150 peers that vanished (silent 8.9 h), 150 never-replied flows 2 h idle and 20 live flows:
    // the shipped rules give the first 150 a grace and delete the second 150, each 47% of the
    // table (under its 50% stop); the live ones stay.
    ns.load([...Array.from({ length: 150 }, (_, i) => vanishedLine(i)), ...Array.from({ length: 150 }, (_, i) => staleLine(i)), ...Array.from({ length: 20 }, (_, i) => liveLine(i))]);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-setpriv-'));
    chmodSync(dir, 0o755);
    // The rules as installed, readable by the unit's user.
    mkdirSync(path.join(dir, 'etc/ctpurge'), { recursive: true, mode: 0o755 });
    writeFileSync(path.join(dir, 'etc/ctpurge/rules.yaml'), readFileSync(path.join(ROOT, 'deploy/rules.yaml')), { mode: 0o644 });
    // /run as systemd lays it out: RuntimeDirectory= is made for the service's user, 0755.
    runtimeRoot = path.join(dir, 'run');
    mkdirSync(runtimeRoot, { mode: 0o755 });
    // Debian's node_exporter textfile directory: root's, 0755.
    textfiles = path.join(dir, 'textfile');
    mkdirSync(textfiles, { mode: 0o755 });
  });
  afterEach(() => {
    ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** LogsDirectory= too, when the unit has one: made for the service's user, as systemd does. */
  function logsDirectories(unit: Map<string, string[]>): void {
    for (const d of unit.get('LogsDirectory') ?? []) {
      mkdirSync(path.join(dir, 'log', d), { recursive: true, mode: 0o755 });
      chownSync(path.join(dir, 'log', d), NOBODY, NOBODY);
    }
  }

  function runtimeDirectory(name: string): string {
    const d = path.join(runtimeRoot, name);
    mkdirSync(d, { recursive: true, mode: 0o755 });
    chownSync(d, NOBODY, NOBODY);
    return d;
  }

  /** The unit's paths moved under the test's directory. */
  const relocate = (s: string, instance = '') =>
    s.replaceAll('%i', instance).replaceAll('/run/', `${runtimeRoot}/`).replaceAll(TEXTFILE_DIR, textfiles).replaceAll('/var/log/', `${dir}/log/`).replaceAll('/etc/ctpurge/', `${dir}/etc/ctpurge/`);

  /**
   * A unit's line as systemd runs it: in the namespace (NetworkNamespacePath=), as a
   * non-root user (DynamicUser=), with the unit's capabilities as bounding and ambient set,
   * no_new_privs, and the unit's UMask.
   */
  function execAsUnit(unit: Map<string, string[]>, line: string, options: { caps?: string; env?: Record<string, string>; instance?: string } = {}) {
    const caps = options.caps ?? one(unit, 'AmbientCapabilities').replace(/^CAP_/, '').toLowerCase();
    const capArg = caps ? `-all,+${caps}` : '-all';
    const env = Object.entries({ ...Object.fromEntries((unit.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string])), ...options.env }).map(([k, v]) => `${k}=${relocate(v, options.instance)}`);
    const [bin, ...args] = words(relocate(line, options.instance));
    expect(bin).toBe(SHIPPED_BIN);
    return run('ip', [
      'netns', 'exec', ns.name,
      'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups',
      `--inh-caps=${capArg}`, `--ambient-caps=${capArg}`, `--bounding-set=${capArg}`, '--no-new-privs',
      '--', 'sh', '-c', `umask ${one(unit, 'UMask')} && grep -E '^Cap(Eff|Amb)' /proc/self/status >&2 && exec "$@"`, 'sh',
      'env', `CTPURGE_LOCK_DIR=${relocate(DEFAULT_LOCK_DIR)}`, ...env, process.execPath, BIN, ...args,
    ]);
  }

  it('ctpurge.service: purges as a non-root user with only CAP_NET_ADMIN, and publishes a 0644 metrics file', () => {
    const unit = serviceSection(path.join(UNITS, 'ctpurge.service'));
    runtimeDirectory(one(unit, 'RuntimeDirectory'));
    logsDirectories(unit);
    const r = execAsUnit(unit, one(unit, 'ExecStart'));
    expect(r.status, r.stderr).toBe(0);
    // CAP_NET_ADMIN is bit 12: the process held it and nothing else.
    expect(r.stderr).toMatch(/CapEff:\s+0000000000001000/);
    expect(r.stderr).toMatch(/CapAmb:\s+0000000000001000/);
    expect(ns.conntrackCount()).toBe(170);
    // ExecStopPost=+ runs with full privileges: as root here.
    expect(unit.get('ExecStopPost')).toHaveLength(2);
    for (const post of unit.get('ExecStopPost') ?? []) {
      expect(post.startsWith('-+')).toBe(true);
      const [cmd, ...args] = words(relocate(post.slice(2)));
      const p = run(cmd as string, args);
      expect(p.status, p.stderr).toBe(0);
    }
    const published = path.join(textfiles, 'ctpurge.prom');
    expect((statSync(published).mode & 0o777).toString(8)).toBe('644');
    // A copy owned by root, not by a transient uid that another unit may get next.
    expect(statSync(published).uid).toBe(0);
    const text = readFileSync(published, 'utf8');
    parsePrometheus(text);
    // Each rule its own series: the never-replied flows deleted, the vanished peers graced.
    expect(text).toMatch(/^ctpurge_entries_deleted_total\{rule="stale-unreplied"\} 150$/m);
    expect(text).toMatch(/^ctpurge_entries_deleted_total\{rule="vanished-peers"\} 0$/m);
    expect(text).toMatch(/^ctpurge_entries_graced_total\{rule="vanished-peers"\} 150$/m);
    expect(readdirSync(textfiles)).toEqual(['ctpurge.prom']);
  });

  it("the logrotate snippet rotates the unit's own log, and the unit's next run writes to the new file", () => {
    const unit = serviceSection(path.join(UNITS, 'ctpurge.service'));
    runtimeDirectory(one(unit, 'RuntimeDirectory'));
    logsDirectories(unit);
    const line = one(unit, 'ExecStart');
    const log = relocate(parseArgs(words(line).slice(1)).log as string);
    expect(log.startsWith(`${dir}/log/ctpurge/`)).toBe(true);
    let r = execAsUnit(unit, line);
    expect(r.status, r.stderr).toBe(0);
    const first = readFileSync(log, 'utf8').trim().split('\n');
    // 150 graced (vanished-peers) and 150 deleted (stale-unreplied), each line with its rule.
    expect(first).toHaveLength(300);
    expect(first.filter((l) => (JSON.parse(l) as { rule: string; grace?: number }).grace === 60 && l.includes('"rule":"vanished-peers"'))).toHaveLength(150);
    expect(statSync(log)).toMatchObject({ uid: NOBODY });
    // The snippet as shipped, its paths moved with the unit's, forced as logrotate's daily run would rotate it.
    const conf = path.join(dir, 'logrotate.conf');
    writeFileSync(conf, relocate(readFileSync(path.join(ROOT, 'deploy/logrotate/ctpurge'), 'utf8')));
    const rot = run('logrotate', ['-f', '-s', path.join(dir, 'logrotate.state'), conf]);
    expect(rot.status, rot.stderr).toBe(0);
    // create 0600 with no owner given: the new file keeps the unit user's, which the unit may open.
    expect(readFileSync(`${log}.1`, 'utf8').trim().split('\n')).toEqual(first);
    expect(statSync(log)).toMatchObject({ uid: NOBODY, size: 0 });
    expect(statSync(log).mode & 0o777).toBe(0o600);
    // The next run: new vanished peers, logged in the new file (the graced ones of the first
    // run read as idle for 4 minutes at most now: no rule takes them again).
    ns.load(Array.from({ length: 40 }, (_, i) => vanishedLine(1000 + i)));
    r = execAsUnit(unit, line);
    expect(r.status, r.stderr).toBe(0);
    const second = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { orig: { src: string } });
    expect(second).toHaveLength(40);
    for (const e of second) expect(e.orig.src).toMatch(/^10\.7\.[34]\./);
  });

  it('every piece is needed: without CAP_NET_ADMIN, without RuntimeDirectory, or writing straight into the textfile directory, it fails and the table is untouched', () => {
    const unit = serviceSection(path.join(UNITS, 'ctpurge.service'));
    // No capability.
    runtimeDirectory(one(unit, 'RuntimeDirectory'));
    logsDirectories(unit);
    let r = execAsUnit(unit, one(unit, 'ExecStart'), { caps: '' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/EPERM|not permitted/);
    expect(r.stderr).toMatch(/CAP_NET_ADMIN/);
    expect(ns.conntrackCount()).toBe(320);
    // The lock directory is root's (no RuntimeDirectory=).
    rmSync(path.join(runtimeRoot, 'ctpurge'), { recursive: true });
    mkdirSync(path.join(runtimeRoot, 'ctpurge'), { mode: 0o755 });
    r = execAsUnit(unit, one(unit, 'ExecStart').replace(/ --metrics-file \S+/, ''));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/EACCES|permission denied/i);
    expect(r.stderr).toMatch(/cannot take the purge lock/);
    expect(ns.conntrackCount()).toBe(320);
    // The old unit wrote the metrics as the transient user into root's textfile directory.
    rmSync(path.join(runtimeRoot, 'ctpurge'), { recursive: true });
    runtimeDirectory('ctpurge');
    r = execAsUnit(unit, one(unit, 'ExecStart').replace('/run/ctpurge/ctpurge.prom', `${TEXTFILE_DIR}/ctpurge.prom`));
    // Refused before the table is touched: the directory is not the unit user's to write.
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--metrics-file: cannot create files in .*: permission denied/);
    expect(ns.conntrackCount()).toBe(320);
    expect(readdirSync(textfiles)).toEqual([]);
  });

  it('ctpurge@.service: the instance purges its namespace with only CAP_NET_ADMIN and its own lock directory', () => {
    const unit = serviceSection(path.join(UNITS, 'ctpurge@.service'));
    const instance = ns.name;
    expect(relocate(one(unit, 'NetworkNamespacePath'), instance)).toBe(`${runtimeRoot}/netns/${instance}`);
    const lockDir = runtimeDirectory(relocate(one(unit, 'RuntimeDirectory'), instance));
    const r = execAsUnit(unit, one(unit, 'ExecStart'), { instance });
    expect(r.status, r.stderr).toBe(0);
    expect(ns.conntrackCount()).toBe(170);
    expect(readdirSync(lockDir).some((f) => /^netns-\d+\.lock$/.test(f))).toBe(true);
  });
});
