/**
 * scripts/bootstrap.sh's quiet output: one line per step, the full log in a file, its tail
 * only on failure. The fresh-machine run (apt and npm for real) is in 53-docker.test.ts; here
 * the tools are stand-ins on PATH, so a failure can be made on purpose.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from './clients.js';
import { ROOT } from '../helpers/cli.js';


describe('bootstrap output', () => {
  let dir: string;
  let repo: string;
  let bin: string;
  let logs: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-bootstrap-test-'));
    repo = path.join(dir, 'repo');
    bin = path.join(dir, 'bin');
    logs = path.join(dir, 'logs');
    mkdirSync(path.join(repo, 'scripts'), { recursive: true });
    mkdirSync(bin);
    copyFileSync(path.join(ROOT, 'scripts/bootstrap.sh'), path.join(repo, 'scripts/bootstrap.sh'));
    writeFileSync(path.join(repo, 'package-lock.json'), '{}\n');
    // Every Debian package is there, so only the npm step runs.
    writeFileSync(path.join(bin, 'dpkg-query'), '#!/bin/sh\necho "install ok installed"\n');
    chmodSync(path.join(bin, 'dpkg-query'), 0o755);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const bootstrap = () =>
    run('bash', [path.join(repo, 'scripts/bootstrap.sh')], { env: { PATH: `${bin}:${process.env.PATH}`, CTPURGE_LOG_DIR: logs } });

  function fakeNpm(script: string): void {
    writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\n${script}\n`);
    chmodSync(path.join(bin, 'npm'), 0o755);
  }

  it('a step that works prints one line and keeps its output in the log', () => {
    fakeNpm('for i in $(seq 1 300); do echo "npm noise $i"; done; echo "gyp info ok" >&2; mkdir -p node_modules && touch node_modules/.package-lock.json');
    const r = bootstrap();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^bootstrap: installing npm dependencies and building the addon \(npm ci\)… done in \d+ s\n$/);
    const log = readFileSync(path.join(logs, 'npm-ci.log'), 'utf8');
    expect(log).toContain('npm noise 300');
    expect(log).toContain('gyp info ok');
  });

  it('npm run demo asks only for what the demo needs; npm test for the test tools too', () => {
    // Nothing installed, and not root (setpriv): bootstrap lists what it would install.
    writeFileSync(path.join(bin, 'dpkg-query'), '#!/bin/sh\nexit 1\n');
    // Its log directory where nobody can write (the run stops before it writes a log anyway).
    const nobodyLogs = path.join(os.tmpdir(), `ctpurge-bootstrap-nobody-${process.pid}`);
    const as = (args: string[]) =>
      run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', `PATH=${bin}:/usr/bin:/bin`, `CTPURGE_LOG_DIR=${nobodyLogs}`, 'bash', path.join(repo, 'scripts/bootstrap.sh'), ...args]);
    const missing = (r: { stderr: string }) => (/missing Debian packages: (.*)/.exec(r.stderr)?.[1] ?? '').split(' ');
    chmodSync(dir, 0o755);
    const demo = missing(as(['--demo']));
    expect(demo).toEqual(['libnetfilter-conntrack-dev', 'libmnl-dev', 'pkg-config', 'g++', 'make', 'python3', 'conntrack', 'nftables', 'iproute2', 'hping3']);
    const all = missing(as([]));
    expect(all).toEqual(expect.arrayContaining([...demo, 'prometheus', 'docker.io', 'debootstrap']));
    expect(all.length).toBeGreaterThan(demo.length);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.demo).toMatch(/bootstrap\.sh --demo/);
    expect(pkg.scripts.test).toMatch(/bootstrap\.sh(?! --demo)/);
    rmSync(nobodyLogs, { recursive: true, force: true });
  });

  it('a step that fails says so, shows the last 25 lines of its log, and exits with its code', () => {
    fakeNpm('for i in $(seq 1 60); do echo "line $i"; done; exit 7');
    const r = bootstrap();
    expect(r.status).toBe(7);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^bootstrap: installing npm dependencies and building the addon \(npm ci\)… failed \(exit 7\) after \d+ s; the last lines of (.*)\/npm-ci\.log:$/);
    expect(lines[0]).toContain(`${logs}/npm-ci.log`);
    expect(lines.slice(1)).toEqual(Array.from({ length: 25 }, (_, i) => `  | line ${36 + i}`));
    expect(readFileSync(path.join(logs, 'npm-ci.log'), 'utf8').split('\n')[0]).toBe('line 1');
  });
});
