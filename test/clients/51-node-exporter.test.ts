/**
 * Debian's prometheus-node-exporter, with only the textfile collector, running as a user of
 * its own (nobody here, prometheus in the packaged service) reads the --metrics-file that a
 * daemon under systemd's UMask=0077 rewrites every second.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { TestNetns } from '../helpers/kernel.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { describeClients, freePort, liveLine, start, staleLine, versionOf, waitFor, type Running } from './clients.js';

/** Every sample line of an exposition: `name{labels}` -> value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

describeClients(`node_exporter's textfile collector reads --metrics-file (${versionOf('prometheus-node-exporter')})`, ['prometheus-node-exporter', 'setpriv'], () => {
  let ns: TestNetns;
  let dir: string;
  let textfiles: string;
  let daemon: Running | undefined;
  let exporter: Running | undefined;
  let port: number;

  beforeAll(async () => {
    ns = TestNetns.create('ctp-nodeexp');
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-nodeexp-'));
    // The collector's user has to reach the directory, as with /var/lib/prometheus/node-exporter.
    chmodSync(dir, 0o755);
    textfiles = path.join(dir, 'textfile');
    mkdirSync(textfiles, { mode: 0o755 });
    chmodSync(textfiles, 0o755);
    ns.load([...Array.from({ length: 200 }, (_, i) => staleLine(i)), ...Array.from({ length: 30 }, (_, i) => liveLine(i))]);
    // The daemon as the systemd unit runs it: UMask=0077.
    daemon = start('sh', ['-c', 'umask 0077 && exec "$@"', 'sh', process.execPath, BIN,
      '--unreplied', '--older', '1h', '--every', '1s', '--netns', ns.name, '-q',
      '--metrics-file', path.join(textfiles, 'ctpurge.prom')], { env: { CTPURGE_LOCK_DIR: path.join(dir, 'locks') } });
    port = await freePort();
    exporter = start('setpriv', [
      '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
      'prometheus-node-exporter', '--collector.disable-defaults', '--collector.textfile',
      `--collector.textfile.directory=${textfiles}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ]);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).ok, 30_000, 'node_exporter to answer');
  });

  afterAll(async () => {
    await exporter?.stop();
    const code = await daemon?.stop();
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    expect(code, daemon?.err()).toBe(0);
  });

  it('the file is 0644 under UMask=0077, so another user can read it', async () => {
    const file = path.join(textfiles, 'ctpurge.prom');
    await waitFor(() => statSync(file, { throwIfNoEntry: false }), 20_000, 'the first metrics file');
    expect((statSync(file).mode & 0o777).toString(8)).toBe('644');
  });

  it('exposes every ctpurge_* series with the right values, with no scrape error while the file is rewritten each second', async () => {
    const file = path.join(textfiles, 'ctpurge.prom');
    await waitFor(() => parsePrometheus(readFileSync(file, 'utf8')).get('ctpurge_entries_deleted_total')?.value === 200, 30_000, 'the purge of 200 entries');
    expect(ns.conntrackCount()).toBe(30);
    const label = `{netns="${ns.name}"}`;
    const deadline = Date.now() + 6000;
    let scrapes = 0;
    let rewrites = 0;
    let lastMtime = 0;
    while (Date.now() < deadline) {
      const before = samples(readFileSync(file, 'utf8'));
      const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const after = samples(readFileSync(file, 'utf8'));
      const got = samples(body);
      scrapes++;
      expect(got.get('node_textfile_scrape_error'), body.split('\n').filter((l) => /error|textfile/i.test(l)).join('\n')).toBe(0);
      const mtime = got.get(`node_textfile_mtime_seconds{file="${file}"}`) ?? got.get('node_textfile_mtime_seconds{file="ctpurge.prom"}');
      expect(mtime).toBeGreaterThan(0);
      if (mtime !== lastMtime) rewrites++;
      lastMtime = mtime as number;
      // Every series of the file is exposed, with the value of the file before or after the
      // scrape (the daemon may have rewritten it in between; counters only grow).
      const names = [...before.keys()].filter((k) => k.startsWith('ctpurge_'));
      expect(names.length).toBeGreaterThanOrEqual(9);
      for (const key of names) {
        // The namespace label on every series (with the family's own label, in name order).
        expect(key.includes(label.slice(1, -1)), key).toBe(true);
        const v = got.get(key);
        expect(v, `${key} in node_exporter's output`).toBeDefined();
        expect([before.get(key), after.get(key)], key).toContain(v);
      }
      expect(got.get(`ctpurge_entries_deleted_total${label}`)).toBe(200);
      expect(got.get(`ctpurge_errors_total${label}`)).toBe(0);
      expect(got.get(`ctpurge_conntrack_entries${label}`)).toBe(30);
      expect(got.get(`ctpurge_conntrack_max${label}`)).toBe(Number(ns.exec('cat', ['/proc/sys/net/netfilter/nf_conntrack_max']).trim()));
      expect(got.get(`ctpurge_interval_seconds${label}`)).toBe(1);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(scrapes).toBeGreaterThanOrEqual(10);
    // The file really changed under the collector during the scrapes.
    expect(rewrites).toBeGreaterThanOrEqual(3);
  });
});
