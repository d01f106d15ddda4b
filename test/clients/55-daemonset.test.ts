/**
 * deploy/kubernetes/daemonset.yaml on paper: no Kubernetes runs here. The manifest is parsed,
 * its args go through the CLI's own parser and query compiler (no kernel), and capabilities,
 * user, metrics port, probes, lock directory and resources are checked against those args,
 * the Dockerfile and the measured memory (bench/results).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseArgs } from '../../src/cli/args.js';
import { parseRules } from '../../src/cli/rules.js';
import { DEFAULT_LOCK_DIR } from '../../src/lock.js';
import { compileQuery } from '../../src/query.js';
import { ROOT } from '../helpers/cli.js';


interface Probe {
  httpGet?: { path: string; port: string | number; host?: string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number; hostPort?: number; protocol: string }[];
  resources: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } };
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop: string[]; add: string[] }; runAsUser?: number };
  volumeMounts?: { name: string; mountPath: string }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
}
interface DaemonSet {
  kind: string;
  spec: {
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        hostNetwork: boolean;
        securityContext: { runAsNonRoot: boolean; runAsUser: number; runAsGroup: number };
        containers: Container[];
        volumes: { name: string; emptyDir?: object }[];
        terminationGracePeriodSeconds: number;
      };
    };
  };
}

const manifest = parseYaml(readFileSync(path.join(ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8')) as DaemonSet;
const pod = manifest.spec.template.spec;
const container = pod.containers[0] as Container;

/** Kubernetes' $(VAR) expansion of args, with the downward API's pod IP. */
function expandArgs(c: Container, podIp: string): string[] {
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env.set(e.name, podIp);
    else throw new Error(`env ${e.name}: no value the test can stand in for`);
  }
  return c.args.map((a) => a.replace(/\$\((\w+)\)/g, (m, name: string) => env.get(name) ?? m));
}

/** Kubernetes quantities: 64Mi, 1Gi, 500M. */
function bytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q);
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

describe('the DaemonSet manifest, checked without a cluster', () => {
  it('is one ctpurge container that uses the image entrypoint, and the CLI accepts its args', () => {
    expect(manifest.kind).toBe('DaemonSet');
    expect(pod.containers).toHaveLength(1);
    expect(container.command).toBeUndefined();
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/opt\/ctpurge\/node", "\/opt\/ctpurge\/bin\/ctpurge\.js"\]$/m);
    const args = parseArgs(expandArgs(container, '10.20.30.40'));
    expect(args.command).toBe('purge');
    // The rules are the image's: deploy/rules.yaml, copied to that path by the Dockerfile.
    expect(args.rules).toBe('/etc/ctpurge/rules.yaml');
    expect(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^COPY deploy\/rules\.yaml \/etc\/ctpurge\/rules\.yaml$/m);
    expect(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')).toMatch(/^!deploy\/rules\.yaml$/m);
    const rules = parseRules(readFileSync(path.join(ROOT, 'deploy/rules.yaml'), 'utf8'), 'deploy/rules.yaml').rules;
    expect(rules.map((r) => r.name)).toEqual(['vanished-peers', 'stale-unreplied']);
    const [vanished, unreplied] = rules.map((r) => r.args);
    // The query keeps the values as written; what they mean is the compiled filter's.
    expect(vanished?.query).toMatchObject({ state: ['ESTABLISHED'], idleFor: '6h' });
    expect(compileQuery(vanished?.query).filter.idleFor).toBe(6 * 3600);
    expect(vanished?.grace).toBe(60);
    expect(unreplied?.query).toMatchObject({ unreplied: true, olderThan: '1h' });
    expect(compileQuery(unreplied?.query).filter.olderThan).toBe(3600);
    for (const r of rules) {
      expect(r.args.maxDelete).toEqual({ share: 0.5 });
      expect(compileQuery(r.args.query).selective).toBe(true);
    }
    expect(args.every).toBe(300);
    expect(args.adaptive).toBe(true);
    expect(args.dryRun).toBe(false);
    // A parser that rejects bad args is what makes this check mean something.
    expect(() => parseArgs(expandArgs({ ...container, args: [...container.args, '--every=5 minutes'] }, '10.20.30.40'))).toThrow(/--every/);
  });

  it('runs as the image user, non-root, with NET_ADMIN alone and the file capability allowed', () => {
    const dockerUser = /^USER (\d+):(\d+)$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: Number(dockerUser?.[1]), runAsGroup: Number(dockerUser?.[2]) });
    expect(container.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN'] });
    // no_new_privs would make execve() ignore /opt/ctpurge/node's cap_net_admin.
    expect(container.securityContext.allowPrivilegeEscalation).toBe(true);
    // The node's own table: hostNetwork, and no --netns (that would need CAP_SYS_ADMIN).
    expect(pod.hostNetwork).toBe(true);
    expect(parseArgs(expandArgs(container, '10.20.30.40')).netns).toBeUndefined();
  });

  it('serves metrics on the pod IP at the declared port, where Prometheus and the probes look', () => {
    const args = parseArgs(expandArgs(container, '10.20.30.40'));
    expect(args.metricsListen).toEqual({ host: '10.20.30.40', port: 9469 });
    // Never every interface of the node.
    expect(container.args.join(' ')).not.toMatch(/0\.0\.0\.0|\[::\]/);
    const port = container.ports.find((p) => p.name === 'metrics');
    expect(port).toMatchObject({ containerPort: args.metricsListen?.port, protocol: 'TCP' });
    if (port?.hostPort !== undefined) expect(port.hostPort).toBe(port.containerPort);
    const ann = manifest.spec.template.metadata.annotations;
    expect(ann['prometheus.io/scrape']).toBe('true');
    expect(Number(ann['prometheus.io/port'])).toBe(args.metricsListen?.port);
    expect(ann['prometheus.io/path']).toBe('/metrics');
    for (const probe of [container.livenessProbe, container.readinessProbe]) {
      expect(probe?.httpGet?.path).toBe('/metrics');
      const p = probe?.httpGet?.port;
      expect(typeof p === 'string' ? container.ports.find((x) => x.name === p)?.containerPort : p).toBe(args.metricsListen?.port);
      // The kubelet probes the pod IP unless told otherwise: the address bound.
      expect(probe?.httpGet?.host).toBeUndefined();
    }
  });

  it('has a writable lock directory under the read-only root, and room for the measured memory', () => {
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    const lockDir = container.env?.find((e) => e.name === 'CTPURGE_LOCK_DIR')?.value ?? DEFAULT_LOCK_DIR;
    const mount = container.volumeMounts?.find((m) => lockDir === m.mountPath || lockDir.startsWith(`${m.mountPath}/`));
    expect(mount, `a volume at ${lockDir}`).toBeDefined();
    expect(pod.volumes.find((v) => v.name === mount?.name)?.emptyDir).toBeDefined();
    // The newest full bench run (other result files, e.g. the tuple-filter scenario, have no sizes).
    type Run = { sizes?: Record<string, { purge: { peakRssMB: { max: number } } }> };
    const runs = readdirSync(path.join(ROOT, 'bench/results'))
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => JSON.parse(readFileSync(path.join(ROOT, 'bench/results', f), 'utf8')) as Run)
      .filter((r): r is Required<Run> => r.sizes !== undefined);
    expect(runs.length, 'a full bench run in bench/results').toBeGreaterThan(0);
    const latest = runs.at(-1) as Required<Run>;
    const peak = Math.max(...Object.values(latest.sizes).map((s) => s.purge.peakRssMB.max)) * 1024 * 1024;
    expect(bytes(container.resources.requests.memory)).toBeGreaterThanOrEqual(peak);
    expect(bytes(container.resources.limits.memory)).toBeGreaterThanOrEqual(2 * peak);
    // SIGTERM finishes the batch in flight: a 1M purge takes about a second.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
  });
});
