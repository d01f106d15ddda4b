/**
 * deploy/prometheus/ctpurge-rules.yml and deploy/grafana/ctpurge-dashboard.json against the
 * real tools: promtool checks and unit-tests the rules, and every series they name is one
 * that ctpurge or node_exporter (its conntrack collector, reading only) really exports.
 * Needs no kernel change: nothing here touches a conntrack table.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { PurgeMetrics } from '../../src/metrics.js';
import { describeClients, freePort, run, start, versionOf, waitFor } from './clients.js';
import { ROOT } from '../helpers/cli.js';

const RULES = path.join(ROOT, 'deploy/prometheus/ctpurge-rules.yml');
const RULE_TESTS = path.join(ROOT, 'deploy/prometheus/ctpurge-rules.test.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/ctpurge-dashboard.json');

interface Dashboard {
  title: string;
  panels: { id: number; title: string; description: string; targets: { expr: string }[] }[];
}

const seriesNames = (expr: string) => [...expr.matchAll(/\b((?:ctpurge|node)_[a-z_]+)\b/g)].map((m) => m[1] as string);

describeClients(`alert rules and dashboard (${versionOf('promtool')})`, ['promtool', 'prometheus-node-exporter'], () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-rules-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('promtool check rules finds the six rules valid', () => {
    const r = run('promtool', ['check', 'rules', RULES]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 6 rules found/);
  });

  it('promtool test rules: every alert fires when it should and stays quiet otherwise', () => {
    const r = run('promtool', ['test', 'rules', RULE_TESTS]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS/);
    const tests = readFileSync(RULE_TESTS, 'utf8');
    const rules = readFileSync(RULES, 'utf8');
    for (const [, alert] of rules.matchAll(/- alert: (\w+)/g)) {
      // Each alert has a case where it fires (exp_alerts with labels) and one where it does not.
      const cases = [...tests.matchAll(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:(.*)`, 'g'))].map((m) => (m[1] as string).trim());
      expect(cases, `${alert} firing`).toContain('');
      expect(cases, `${alert} quiet`).toContain('[]');
    }
  });

  it('the unit tests bite: a rule with a changed threshold fails them', () => {
    copyFileSync(RULE_TESTS, path.join(dir, 'ctpurge-rules.test.yml'));
    writeFileSync(path.join(dir, 'ctpurge-rules.yml'), readFileSync(RULES, 'utf8').replace('ctpurge_conntrack_max > 0) > 0.9', 'ctpurge_conntrack_max > 0) > 0.96'));
    const r = run('promtool', ['test', 'rules', path.join(dir, 'ctpurge-rules.test.yml')]);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/FAILED[\s\S]*CtpurgeConntrackTableNearlyFull/);
  });

  it('every series the rules and the dashboard name is exported by ctpurge or node_exporter', async () => {
    const ours = new PurgeMetrics();
    ours.recordRun(null, { count: 1, max: 2, nextInSeconds: 60 });
    const ctpurgeNames = new Set([...ours.render().matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string));
    // node_exporter's conntrack collector, alone, as nobody: it only reads /proc.
    const port = await freePort();
    const exporter = start('setpriv', [
      '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--no-new-privs',
      'prometheus-node-exporter', '--collector.disable-defaults', '--collector.conntrack', `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ]);
    let nodeNames: Set<string>;
    try {
      const body = await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        return res.ok ? res.text() : null;
      }, 30_000, 'node_exporter to answer');
      nodeNames = new Set([...body.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string));
    } finally {
      await exporter.stop();
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
    const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const exprs = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))];
    const used = new Set(exprs.flatMap(seriesNames));
    expect(used.size).toBeGreaterThanOrEqual(10);
    for (const name of used) {
      if (name.startsWith('ctpurge_')) expect(ctpurgeNames, name).toContain(name);
      else expect(nodeNames, name).toContain(name);
    }
    // The dashboard: small, every panel described (docs/operations.md describes them too).
    expect(dashboard.panels.length).toBeLessThanOrEqual(8);
    const readme = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
    for (const p of dashboard.panels) {
      expect(p.description.length, p.title).toBeGreaterThan(20);
      expect(readme, `docs/operations.md describes the panel "${p.title}"`).toContain(p.title);
    }
  });
});
