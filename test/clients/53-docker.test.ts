/**
 * The Dockerfile, built and run with Debian's docker.io on a dockerd of the test's own
 * (its own socket, pid file and exec root; a cached data root), on a local base image made
 * with debootstrap (the registry's node:20-bookworm-slim cannot be pulled here).
 *
 * The container gets into a throwaway namespace without any extra privilege: a "holder"
 * container with --network none owns a fresh namespace, the test loads entries into it from
 * the host (nsenter), and ctpurge runs with --network container:HOLDER as user 65534 with
 * only NET_ADMIN. (--netns inside a container would need CAP_SYS_ADMIN for setns(2).)
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadNative } from '../../src/addon.js';
import { describeClients, liveLine, run, runAsync, start, staleLine, versionOf, waitFor, type Running } from './clients.js';
import { ROOT } from '../helpers/cli.js';

const CACHE = process.env.CTPURGE_TEST_CACHE ?? '/var/cache/ctpurge-test';
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const DOCKERD = existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd';
const IMAGE = 'ctpurge:test';
const inCI = process.env.CI === 'true' || process.env.CI === '1';

describeClients(`the Docker image (${versionOf(DOCKERD)}, ${versionOf('debootstrap')})`, [DOCKERD, DOCKER, 'debootstrap', 'nsenter'], () => {
  let runDir: string;
  let dockerd: Running | undefined;
  let cacheLock: number | undefined;
  let cannotRun: string | null = null;
  let holder = '';
  let holderPid = 0;
  let baseImage = '';
  const docker = (args: string[], timeout = 120_000) => run(DOCKER, ['-H', `unix://${runDir}/docker.sock`, ...args], { timeout, env: { DOCKER_BUILDKIT: '0' } });
  // For the steps that take minutes (see runAsync).
  const dockerAsync = (args: string[], timeout: number) => runAsync(DOCKER, ['-H', `unix://${runDir}/docker.sock`, ...args], { timeout, env: { DOCKER_BUILDKIT: '0' } });
  const nsenter = (args: string[], input?: string) => run('nsenter', [`--net=/proc/${holderPid}/ns/net`, ...args], { input });
  const count = () => Number(nsenter(['conntrack', '-C']).stdout.trim());
  const ctpurgeRun = (args: string[], extra: string[] = ['--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN']) =>
    docker(['run', '--rm', `--network=container:${holder}`, ...extra, IMAGE, ...args]);

  beforeAll(async () => {
    runDir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-dockerd-'));
    mkdirSync(CACHE, { recursive: true });
    // One dockerd at a time on the cached data root (another run of this suite may be going).
    cacheLock = await loadNative().lockFile(path.join(CACHE, 'docker.lock'), 15 * 60_000);
    dockerd = start(DOCKERD, [
      `--pidfile=${runDir}/docker.pid`, `--host=unix://${runDir}/docker.sock`, `--exec-root=${runDir}/exec`,
      `--data-root=${CACHE}/docker`, '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-forward=false',
      '--ip-masq=false', '--userland-proxy=false', '--log-level=warn',
    ]);
    try {
      await waitFor(() => dockerd?.child.exitCode === null && docker(['version', '--format', '{{.Server.Version}}'], 10_000).status === 0, 60_000, 'dockerd to answer', 500);
    } catch (err) {
      cannotRun = `dockerd cannot start here: ${(err as Error).message}\n${dockerd.err().slice(-2000)}`;
      if (inCI) throw new Error(cannotRun);
      return;
    }
    // The base: debootstrap + this machine's Node, cached as a tarball and as an image.
    const base = await runAsync('bash', [path.join(ROOT, 'test/clients/make-docker-base.sh'), CACHE], { timeout: 600_000 });
    expect(base.status, base.stderr).toBe(0);
    const baseTag = `ctpurge-test-base:node-${process.versions.node}`;
    if (docker(['image', 'inspect', baseTag]).status !== 0) {
      const imp = await runAsync('sh', ['-c', `${DOCKER} -H unix://${runDir}/docker.sock import --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["node"]' - ${baseTag} < ${base.stdout.trim()}`], { timeout: 300_000 });
      expect(imp.status, imp.stderr).toBe(0);
    }
    const log = path.join(CACHE, 'docker-build.log');
    const build = await dockerAsync(['build', '--network', 'host', '--build-arg', `BASE=${baseTag}`, '-t', IMAGE, ROOT], 900_000);
    writeFileSync(log, build.stdout + build.stderr);
    expect(build.status, `docker build failed (full log: ${log}):\n${(build.stdout + build.stderr).slice(-3000)}`).toBe(0);
    // Earlier builds' layers that no tag uses any more: the cache does not grow run after run.
    docker(['image', 'prune', '--force']);
    baseImage = baseTag;
    holder = `ctpurge-holder-${process.pid}`;
    // The image's one node carries the capability, which a container without NET_ADMIN cannot exec: the holder sleeps.
    const h = docker(['run', '-d', '--name', holder, '--network', 'none', '--entrypoint', '/bin/sleep', IMAGE, 'infinity']);
    expect(h.status, h.stderr).toBe(0);
    holderPid = await waitFor(() => Number(docker(['inspect', '-f', '{{.State.Pid}}', holder]).stdout.trim()), 20_000, 'the holder container');
    // Never the host's table: the holder's namespace is a fresh one.
    const holderNs = run('readlink', [`/proc/${holderPid}/ns/net`]).stdout.trim();
    expect(holderNs).toMatch(/^net:\[\d+\]$/);
    expect(holderNs).not.toBe(run('readlink', ['/proc/self/ns/net']).stdout.trim());
  }, 20 * 60_000);

  afterAll(async () => {
    if (holder) docker(['rm', '--force', holder]);
    if (dockerd) {
      const code = await dockerd.stop(30_000);
      if (code !== 0 && !cannotRun) console.error(`dockerd exited ${code}: ${dockerd.err().slice(-2000)}`);
    }
    // Whatever dockerd mounted under its exec root goes with it; make sure before removing it.
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => runDir && m.startsWith(runDir));
    for (const m of mounts.reverse()) run('umount', ['-l', m]);
    if (runDir) rmSync(runDir, { recursive: true, force: true });
    if (cacheLock !== undefined) loadNative().unlockFile(cacheLock);
  }, 60_000);

  it('builds; the image runs as 65534 and ctpurge holds CAP_NET_ADMIN alone', (ctx) => {
    if (cannotRun) return ctx.skip(cannotRun);
    const size = Number(docker(['image', 'inspect', '-f', '{{.Size}}', IMAGE]).stdout.trim());
    console.log(`ctpurge image: ${(size / 1e6).toFixed(0)} MB (${size} bytes)`);
    expect(size).toBeGreaterThan(50e6);
    expect(size).toBeLessThanOrEqual(200e6);
    // One node binary (the one with the capability), no npm, no headers.
    const files = docker(['run', '--rm', '--entrypoint', '/bin/sh', IMAGE, '-c', 'command -v node npm; ls /usr/local/include /usr/local/lib/node_modules 2>/dev/null; find / -xdev -name node -type f 2>/dev/null']);
    expect(files.stdout.trim()).toBe('/opt/ctpurge/node');
    expect(docker(['image', 'inspect', '-f', '{{.Config.User}}', IMAGE]).stdout.trim()).toBe('65534:65534');
    const status = docker(['run', '--rm', `--network=container:${holder}`, '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--entrypoint', '/opt/ctpurge/node', IMAGE,
      '-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/status", "utf8"))']);
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^Uid:\s+65534\s+65534/m);
    expect(status.stdout).toMatch(/^CapEff:\s+0000000000001000$/m);
    expect(status.stdout).toMatch(/^CapBnd:\s+0000000000001000$/m);
  });

  it('a dry run counts exactly and changes nothing; doctor reads the same table', (ctx) => {
    if (cannotRun) return ctx.skip(cannotRun);
    const lines = [...Array.from({ length: 240 }, (_, i) => staleLine(i)), ...Array.from({ length: 60 }, (_, i) => liveLine(i))];
    const load = nsenter(['sh', '-c', 'f=$(mktemp) && cat > "$f" && conntrack -R "$f"; s=$?; rm -f "$f"; exit $s'], `${lines.join('\n')}\n`);
    expect(load.status, load.stderr).toBe(0);
    expect(count()).toBe(300);
    const dry = ctpurgeRun(['--unreplied', '--older', '3600', '--dry-run', '--json']);
    expect(dry.status, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, matched: 240, deleted: 0, tableSize: 300 });
    expect(count()).toBe(300);
    const doctor = ctpurgeRun(['doctor', '--json']);
    expect(doctor.status, doctor.stderr).toBe(0);
    expect(JSON.parse(doctor.stdout)).toMatchObject({ count: 300, unreplied: 240, staleUnreplied: 240 });
    // The image's shipped rules (deploy/rules.yaml at /etc/ctpurge/rules.yaml), as the DaemonSet runs them.
    const check = ctpurgeRun(['check-rules', '/etc/ctpurge/rules.yaml']);
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^\/etc\/ctpurge\/rules\.yaml: 2 rules\n {2}vanished-peers: .*\n {2}stale-unreplied: /);
    // 240 of the 300 are stale: more than the rule's max-delete 50% allows, so its dry run
    // stops at 150 and says so (exit 3), as a purge would.
    const rules = ctpurgeRun(['--rules', '/etc/ctpurge/rules.yaml', '--dry-run', '--json']);
    expect(rules.status, rules.stderr).toBe(3);
    expect(rules.stderr).toMatch(/^ctpurge: stale-unreplied: stopped at --max-delete 150 \(50% of 300\)/m);
    const runs = rules.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rule: string; dryRun: boolean; matched: number });
    expect(runs.map((r) => r.rule)).toEqual(['vanished-peers', 'stale-unreplied']);
    expect(runs[1]).toMatchObject({ dryRun: true, matched: 150, maxDeleteReached: true });
    expect(count()).toBe(300);
  });

  it('the plain `docker run --cap-add NET_ADMIN IMAGE --unreplied --older 3600` purges exactly the stale entries', (ctx) => {
    if (cannotRun) return ctx.skip(cannotRun);
    expect(count()).toBe(300);
    // As the issue ran it: no --cap-drop, no CTPURGE_LOCK_DIR.
    const r = ctpurgeRun(['--unreplied', '--older', '3600'], ['--cap-add', 'NET_ADMIN']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^purged 240 of 300 entries \(240 matched, 0 vanished\)/);
    expect(count()).toBe(60);
    const again = ctpurgeRun(['--unreplied', '--older', '3600', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ matched: 0, deleted: 0, tableSize: 60 });
    // A read-only root, as the DaemonSet runs it: the lock directory needs a tmpfs of its own.
    const readOnly = ctpurgeRun(['--unreplied', '--older', '3600', '--json'], ['--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--read-only']);
    expect(readOnly.status).toBe(1);
    expect(readOnly.stderr).toMatch(/cannot take the purge lock \/run\/ctpurge\/netns-\d+\.lock.*read-only/i);
    // A plain --tmpfs is not the image user's: refused, naming the directory.
    const plain = ctpurgeRun(['--unreplied', '--older', '3600', '--json'], ['--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--read-only', '--tmpfs', '/run/ctpurge']);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/cannot take the purge lock \/run\/ctpurge\/netns-\d+\.lock: .*\/run\/ctpurge/);
    const withTmpfs = ctpurgeRun(['--unreplied', '--older', '3600', '--json'], ['--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--read-only', '--tmpfs', '/run/ctpurge:uid=65534,mode=0700']);
    expect(withTmpfs.status, withTmpfs.stderr).toBe(0);
    expect(JSON.parse(withTmpfs.stdout)).toMatchObject({ matched: 0, deleted: 0, tableSize: 60 });
  });

  it('without NET_ADMIN the container does not start ctpurge, and the table is untouched', (ctx) => {
    if (cannotRun) return ctx.skip(cannotRun);
    const lines = Array.from({ length: 10 }, (_, i) => staleLine(5000 + i));
    nsenter(['sh', '-c', 'f=$(mktemp) && cat > "$f" && conntrack -R "$f"; s=$?; rm -f "$f"; exit $s'], `${lines.join('\n')}\n`);
    const r = ctpurgeRun(['--unreplied', '--older', '3600'], []);
    expect(r.status).not.toBe(0);
    // The file capability on /opt/ctpurge/node cannot be granted: execve fails with EPERM.
    expect(r.stderr).toMatch(/operation not permitted/i);
    expect(count()).toBe(70);
  });

  it('a quiet first run: on a fresh Debian 12 container, bootstrap prints a few progress lines and installs everything', async (ctx) => {
    if (cannotRun) return ctx.skip(cannotRun);
    // This checkout without its build products, as a fresh clone has it.
    const src = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-fresh-'));
    try {
      const copy = run('sh', ['-c', `tar -C ${ROOT} --exclude=./node_modules --exclude=./build --exclude=./dist --exclude=./prebuilds --exclude=./.git -c . | tar -C ${src} -x`]);
      expect(copy.status, copy.stderr).toBe(0);
      for (const d of ['apt-archives/partial', 'npm']) mkdirSync(path.join(CACHE, d), { recursive: true });
      // Downloads are cached between runs (apt's archives, npm's cache); the install is not.
      const r = await dockerAsync([
        'run', '--rm', '--network', 'host', '-v', `${src}:/src`, '-w', '/src',
        '-v', `${CACHE}/apt-archives:/var/cache/apt/archives`, '-v', `${CACHE}/npm:/root/.npm`,
        baseImage, 'bash', '-c',
        'bash scripts/bootstrap.sh 2>&1; rc=$?; echo "exit=$rc"; ' +
          'for c in promtool prometheus prometheus-node-exporter dockerd debootstrap systemd-analyze setpriv nsenter conntrack nft hping3; do command -v $c >/dev/null || echo "missing=$c"; done; ' +
          'test -e /usr/sbin/policy-rc.d && echo policy-left; ls /tmp/ctpurge-bootstrap; test -f build/Release/ctpurge.node && test -f dist/index.js && echo built; ' +
          'for u in prometheus prometheus-node-exporter docker containerd; do systemctl is-enabled --quiet $u.service 2>/dev/null && echo "enabled=$u"; done; true',
      ], 900_000);
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      console.log(lines.filter((l) => l.startsWith('bootstrap:')).join('\n'));
      expect(lines).toContain('exit=0');
      // Nothing left behind: no policy-rc.d of ours, no service enabled for the next boot.
      expect(lines.filter((l) => l.startsWith('missing=') || l.startsWith('enabled=') || l === 'policy-left')).toEqual([]);
      expect(lines).toContain('built');
      // Only progress lines: no apt, npm or node-gyp output.
      const progress = lines.slice(0, lines.indexOf('exit=0'));
      expect(progress).toHaveLength(2);
      expect(progress[0]).toMatch(/^bootstrap: installing \d+ Debian packages \(.*\)… done in \d+ s$/);
      expect(progress[1]).toMatch(/^bootstrap: installing npm dependencies and building the addon \(npm ci\)… done in \d+ s$/);
      expect(lines).toEqual(expect.arrayContaining(['apt.log', 'npm-ci.log']));
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });
});
