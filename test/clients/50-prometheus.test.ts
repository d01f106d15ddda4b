/**
 * Debian's Prometheus server scrapes a running `ctpurge --every 1s --metrics-listen` that
 * purges a throwaway namespace; promtool checks both expositions. Prometheus is started here
 * on loopback with its own config and storage, never as the system service.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, ROOT } from '../helpers/cli.js';
import { TestNetns } from '../helpers/kernel.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { describeClients, freePort, liveLine, run, start, staleLine, versionOf, waitFor, type Running } from './clients.js';

const RULES = path.join(ROOT, 'deploy/prometheus/ctpurge-rules.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/ctpurge-dashboard.json');

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(port: number, promql: string): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
  return body.data.result;
}

/** The values of a range query's first series, one per second. */
async function rangeQuery(port: number, expr: string, start: number, end: number): Promise<[number, string][]> {
  const url = `http://127.0.0.1:${port}/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=1`;
  const body = (await (await fetch(url)).json()) as { data: { result: { values: [number, string][] }[] } };
  return body.data.result[0]?.values ?? [];
}

describeClients(`Prometheus scrapes the daemon (${versionOf('prometheus')})`, ['prometheus', 'promtool'], () => {
  let ns: TestNetns;
  let dir: string;
  let daemon: Running | undefined;
  let prometheus: Running | undefined;
  let ctpPort: number;
  let promPort: number;

  beforeAll(async () => {
    ns = TestNetns.create('ctp-prom');
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-prom-'));
    ns.load([...Array.from({ length: 300 }, (_, i) => staleLine(i)), ...Array.from({ length: 50 }, (_, i) => liveLine(i))]);
    ctpPort = await freePort();
    promPort = await freePort();
    // The daemon enters the namespace for netlink only; its HTTP server stays in the caller's
    // namespace, so Prometheus reaches it on the host's loopback.
    daemon = start(process.execPath, [
      BIN, '--unreplied', '--older', '1h', '--every', '1s', '--netns', ns.name,
      '--metrics-listen', `127.0.0.1:${ctpPort}`, '--metrics-file', path.join(dir, 'ctpurge.prom'), '-q',
    ], { env: { CTPURGE_LOCK_DIR: path.join(dir, 'locks') } });
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        '  - job_name: ctpurge',
        `    static_configs: [ { targets: ["127.0.0.1:${ctpPort}"] } ]`,
        '',
      ].join('\n'),
    );
    const check = run('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')]);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    prometheus = start('prometheus', [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ]);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok, 60_000, 'Prometheus to be ready');
  });

  afterAll(async () => {
    await prometheus?.stop();
    const code = await daemon?.stop();
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    expect(code, daemon?.err()).toBe(0);
  });

  it('sees the target up and ctpurge_entries_deleted_total reach the purged count', async () => {
    const up = await waitFor(async () => (await query(promPort, 'up{job="ctpurge"}')).find((s) => s.value[1] === '1'), 60_000, 'the target to be up', 500);
    expect(up.metric.instance).toBe(`127.0.0.1:${ctpPort}`);
    const deleted = await waitFor(
      async () => (await query(promPort, 'ctpurge_entries_deleted_total')).find((s) => s.value[1] === '300'),
      60_000,
      'ctpurge_entries_deleted_total == 300 in Prometheus',
      500,
    );
    expect(deleted.metric).toMatchObject({ job: 'ctpurge', netns: ns.name });
    expect(ns.conntrackCount()).toBe(50);

    // A second wave: the counter Prometheus stores grows by exactly what was purged.
    ns.load(Array.from({ length: 120 }, (_, i) => staleLine(1000 + i)));
    await waitFor(async () => (await query(promPort, 'ctpurge_entries_deleted_total')).find((s) => s.value[1] === '420'), 60_000, 'the counter to reach 420', 500);
    expect(ns.conntrackCount()).toBe(50);
    const runs = await query(promPort, 'ctpurge_runs_total');
    expect(Number(runs[0]?.value[1])).toBeGreaterThanOrEqual(2);
    const entries = await waitFor(async () => (await query(promPort, 'ctpurge_conntrack_entries')).find((s) => s.value[1] === '50'), 30_000, 'ctpurge_conntrack_entries == 50', 500);
    expect(entries.metric.netns).toBe(ns.name);
    const interval = await query(promPort, 'ctpurge_interval_seconds');
    expect(interval[0]?.value[1]).toBe('1');
    // Prometheus took every series of the exposition: none was dropped as invalid.
    const scraped = await query(promPort, 'scrape_samples_scraped{job="ctpurge"}');
    const exposed = (await (await fetch(`http://127.0.0.1:${ctpPort}/metrics`)).text()).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(exposed.some((l) => l.startsWith('ctpurge_table_entries_by_state{'))).toBe(true);
    expect(Number(scraped[0]?.value[1])).toBe(exposed.length);
  });

  it('loads the alert rules and evaluates them on live data, quiet; every dashboard query runs', async () => {
    const rules = await waitFor(async () => {
      const body = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string; lastError?: string; state?: string; evaluationTime: number; lastEvaluation: string }[] }[] };
      };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => r.lastEvaluation > '2000') ? all : null;
    }, 30_000, 'the rules to be evaluated');
    expect(rules.map((r) => r.name).sort()).toEqual(['ConntrackDropping', 'ConntrackInsertFailing', 'ConntrackTableNearlyFull', 'CtpurgeConntrackTableNearlyFull', 'CtpurgeNotRunning', 'CtpurgePurgesFailing']);
    for (const r of rules) {
      expect(r.health, `${r.name}: ${r.lastError ?? ''}`).toBe('ok');
      expect(r.state, r.name).toBe('inactive');
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    for (const p of dashboard.panels) {
      for (const t of p.targets) await query(promPort, t.expr.replaceAll('$__rate_interval', '1m'));
    }
    // The ctpurge panels have data from the live daemon.
    const fill = await query(promPort, dashboard.panels[0]!.targets[0]!.expr);
    expect(Number(fill[0]?.value[1])).toBeCloseTo(50 / Number(ns.exec('cat', ['/proc/sys/net/netfilter/nf_conntrack_max']).trim()), 9);
    const since = await query(promPort, 'time() - ctpurge_last_run_timestamp_seconds');
    expect(Number(since[0]?.value[1])).toBeLessThan(3 * 1 + 2);
  });

  it('keeps scraping (up = 1, under 1 s) while 1,000 idle and slowloris clients hold and reopen connections', async () => {
    const sockets = new Set<Socket>();
    let attacking = true;
    const attacker = (slow: boolean) => {
      if (!attacking) return;
      const sock = connect(ctpPort, '127.0.0.1');
      sockets.add(sock);
      sock.on('error', () => undefined);
      const timer = slow ? setInterval(() => sock.write('G'), 200) : undefined;
      sock.on('close', () => {
        clearInterval(timer);
        sockets.delete(sock);
        if (attacking) setTimeout(() => attacker(slow), 250);
      });
    };
    try {
      for (let i = 0; i < 1000; i++) attacker(i % 2 === 1);
      const since = Date.now() / 1000;
      // Ten scrapes under attack, each answered: up stays 1 and scrape_duration_seconds < 1.
      await new Promise((r) => setTimeout(r, 11_000));
      const ups = (await rangeQuery(promPort, 'up{job="ctpurge"}', since + 1, Date.now() / 1000)).map((v) => v[1]);
      expect(ups.length).toBeGreaterThanOrEqual(8);
      expect(ups.every((v) => v === '1'), JSON.stringify(ups)).toBe(true);
      const durations = (await rangeQuery(promPort, 'scrape_duration_seconds{job="ctpurge"}', since + 1, Date.now() / 1000)).map((v) => Number(v[1]));
      expect(Math.max(...durations)).toBeLessThan(1);
    } finally {
      attacking = false;
      for (const sock of sockets) sock.destroy();
    }
  }, 60_000);

  it('promtool check metrics passes on the /metrics body and on --metrics-file, and fails on a broken one', async () => {
    const body = await (await fetch(`http://127.0.0.1:${ctpPort}/metrics`)).text();
    const fromHttp = run('promtool', ['check', 'metrics'], { input: body });
    expect(fromHttp.status, fromHttp.stdout + fromHttp.stderr).toBe(0);
    expect((fromHttp.stdout + fromHttp.stderr).trim()).toBe('');
    const file = readFileSync(path.join(dir, 'ctpurge.prom'), 'utf8');
    expect(parsePrometheus(file).get('ctpurge_entries_deleted_total')?.value).toBe(420);
    const fromFile = run('promtool', ['check', 'metrics'], { input: file });
    expect(fromFile.status, fromFile.stdout + fromFile.stderr).toBe(0);
    // promtool really reads what it is given: a malformed line and a lint problem fail.
    expect(run('promtool', ['check', 'metrics'], { input: `${file}ctpurge_broken{ 1\n` }).status).not.toBe(0);
    expect(run('promtool', ['check', 'metrics'], { input: '# HELP x_count A counter.\n# TYPE x_count counter\nx_count 1\n' }).status).not.toBe(0);
  });
});
