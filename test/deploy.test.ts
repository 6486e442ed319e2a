import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SERVE_USAGE, parseServeArgs } from '../src/cli/serve.js';
import { resolveNodeOptions } from '../src/node/options.js';
import { builtCli } from './chaos/built-cli.js';
import { execForm, readDockerfile } from './deployment/dockerfile.js';
import { httpGet } from './deployment/http-get.js';
import { expandArgs, flagsOf, only, readManifests, type ContainerPort } from './deployment/manifests.js';
import { freePorts, loopbackMachines, startProcess, stopAll, stopProcess, until, untilOutput } from './deployment/processes.js';
import { makeSecrets, writeSecrets, type Secrets } from './deployment/secrets.js';
import { run } from './packaging/npm.js';

/**
 * The deployment files as written: the Dockerfile, the Kubernetes manifests of
 * deploy/kubernetes/ and the image's entrypoint and health check. Their flags are the ones
 * `serve --help` documents, their ports and probe paths are the node's, and they run: the
 * StatefulSet's pods as processes on 127.0.0.2… (one address per pod, the same ports on each,
 * as in a cluster), each started through the image's entrypoint with the manifest's args and
 * env, joining through the headless Service's name, which resolves to every pod's address.
 */

const ROOT = join(import.meta.dirname, '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; engines: { node: string } };
const ENTRYPOINT = join(ROOT, 'deploy', 'docker', 'entrypoint.sh');
const HEALTHCHECK = join(ROOT, 'deploy', 'docker', 'healthcheck.mjs');
const HELP_FLAGS = new Set([...SERVE_USAGE.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
const manifests = readManifests();
const statefulSet = only(manifests, 'StatefulSet');
const pod = statefulSet.spec!.template!.spec;
const container = pod.containers[0]!;
const flags = flagsOf(container.args ?? []);
const portNamed = (name: string): ContainerPort => {
  const port = container.ports?.find((p) => p.name === name);
  if (port === undefined) throw new Error(`the container has no port named ${name}`);
  return port;
};
/** The Secret's keys as files an operator makes with openssl rand (docs/operations.md). */
const secretFiles = (secrets: Secrets): Record<string, string> => ({ 'cluster.key': secrets.clusterKey, 'api.tokens': secrets.apiToken, 'admin.tokens': secrets.adminToken });

const work = mkdtempSync(join(tmpdir(), 'ringlimit-deploy-'));
afterEach(() => stopAll());
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('deploy/kubernetes', () => {
  it('kustomization.yaml lists every manifest; the image is the one the Dockerfile builds, tagged with the package version', () => {
    const kustomization = only(manifests, 'Kustomization');
    expect(new Set(kustomization.resources)).toEqual(new Set(manifests.map((m) => m.file).filter((f) => f !== 'kustomization.yaml')));
    expect(container.image).toBe(`ringlimit:${PACKAGE.version}`);
    expect(kustomization.images).toEqual([{ name: 'ringlimit', newName: 'ringlimit', newTag: PACKAGE.version }]);
    expect(container.command, "the image's entrypoint runs ringlimit").toBeUndefined();
  });

  it('the StatefulSet runs `serve` with flags `serve --help` documents, and they parse', () => {
    const args = container.args ?? [];
    expect(args[0]).toBe('serve');
    for (const flag of flags.keys()) expect(HELP_FLAGS.has(flag), `--${flag} is in serve --help`).toBe(true);
    // The flags parse as serve parses them (files read from a copy of the Secret's mount).
    const mount = container.volumeMounts!.find((m) => m.name === pod.volumes!.find((v) => v.secret !== undefined)!.name)!;
    const dir = join(work, 'parse');
    mkdirSync(dir);
    writeSecrets(dir, makeSecrets());
    const parsed = parseServeArgs(expandArgs(args.slice(1), { POD_NAME: 'ringlimit-0', POD_IP: '10.1.2.3' }).map((a) => a.replace(mount.mountPath, dir)));
    expect(parsed.options).toMatchObject({ nodeId: 'ringlimit-0', host: '10.1.2.3', port: portNamed('grpc').containerPort, gossipPort: portNamed('gossip').containerPort, httpPort: portNamed('http').containerPort });
  });

  it("its container ports are the flags' ports; gossip is UDP; the Services target them by name", () => {
    expect(Number(flags.get('port'))).toBe(portNamed('grpc').containerPort);
    expect(Number(flags.get('gossip-port'))).toBe(portNamed('gossip').containerPort);
    expect(portNamed('gossip').protocol).toBe('UDP');
    expect(Number(flags.get('http-port'))).toBe(portNamed('http').containerPort);
    for (const service of manifests.filter((m) => m.object.kind === 'Service').map((m) => m.object)) {
      expect(service.spec!.selector, `${service.metadata.name} selects the pods`).toEqual(statefulSet.spec!.template!.metadata.labels);
      for (const port of service.spec!.ports!) {
        const target = portNamed(String(port.targetPort));
        expect(port.port, `${service.metadata.name}/${port.name}`).toBe(target.containerPort);
        expect(port.protocol ?? 'TCP').toBe(target.protocol ?? 'TCP');
      }
    }
  });

  it("seeds by DNS: --join names the StatefulSet's headless Service, which publishes pods before they are ready, at the gossip port", () => {
    const seeds = only(manifests, 'Service', statefulSet.spec!.serviceName);
    expect(seeds.spec!.clusterIP).toBe('None');
    expect(seeds.spec!.publishNotReadyAddresses).toBe(true);
    expect(flags.get('join')).toBe(`${seeds.metadata.name}:${portNamed('gossip').containerPort}`);
    expect(flags.get('host')).toBe('$(POD_IP)');
    expect(flags.get('node-id')).toBe('$(POD_NAME)');
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
    expect(env).toMatchObject({ POD_IP: 'status.podIP', POD_NAME: 'metadata.name' });
  });

  it('probes: readiness on GET /readyz, liveness on GET /healthz, of the http port', () => {
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
  });

  it("the Secret holds the cluster key and tokens the flags read from its mount; its placeholders are refused (a node does not start with them); --data-dir is the claim's mount", () => {
    const secret = only(manifests, 'Secret');
    const volume = pod.volumes!.find((v) => v.secret?.secretName === secret.metadata.name)!;
    const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
    expect(mount.readOnly).toBe(true);
    const files = [...flags.values()].filter((v) => v.startsWith(`${mount.mountPath}/`)).map((v) => v.slice(mount.mountPath.length + 1));
    expect(new Set(files)).toEqual(new Set(Object.keys(secret.stringData ?? {})));
    expect(new Set(files)).toEqual(new Set(Object.keys(secretFiles(makeSecrets()))));
    const dir = join(work, 'placeholders');
    mkdirSync(dir);
    for (const [file, value] of Object.entries(secret.stringData!)) writeFileSync(join(dir, file), value);
    const args = expandArgs(container.args!.slice(1), { POD_NAME: 'p', POD_IP: '10.1.2.3' }).map((a) => a.replace(mount.mountPath, dir));
    expect(() => resolveNodeOptions(parseServeArgs(args).options)).toThrow(/gossipKeys/);
    const data = container.volumeMounts!.find((m) => m.name === statefulSet.spec!.volumeClaimTemplates![0]!.metadata.name)!;
    expect(flags.get('data-dir')).toBe(data.mountPath);
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
  });

  it('the PodDisruptionBudget covers the pods and lets one go at a time', () => {
    const pdb = only(manifests, 'PodDisruptionBudget');
    expect(pdb.spec!.selector).toEqual({ matchLabels: statefulSet.spec!.template!.metadata.labels });
    expect(pdb.spec!.maxUnavailable).toBe(1);
  });

  it("three pods as the StatefulSet runs them (its args and env, through the image's entrypoint) join through the headless Service's name, which resolves to all three addresses; the probes' paths answer 200; SIGTERM drains each to exit 0 within the grace period", async (context) => {
    const cli = builtCli();
    const ips = await loopbackMachines(statefulSet.spec!.replicas!);
    if (ips === undefined) return context.skip('127.0.0.2… cannot be bound here: pods cannot be simulated on one address');
    const seeds = statefulSet.spec!.serviceName!;
    // A stand-in for the cluster's DNS in each pod: the headless Service's name resolves to every pod's address.
    const dnsStub = join(work, 'cluster-dns.mjs');
    writeFileSync(dnsStub, CLUSTER_DNS_STUB);
    const manifestPorts = ['grpc', 'gossip', 'http'].map((name) => portNamed(name).containerPort);
    const ports = await freePorts(manifestPorts.length, ips);
    const httpPort = ports[2]!;
    const secrets = makeSecrets();
    const secretMount = container.volumeMounts!.find((m) => m.readOnly === true)!.mountPath;
    const dataMount = flags.get('data-dir')!;
    const pods = ips.map((ip, i) => {
      const name = `${statefulSet.metadata.name}-${i}`;
      const dir = join(work, name);
      mkdirSync(join(dir, 'secrets'), { recursive: true });
      mkdirSync(join(dir, 'data'));
      for (const [file, value] of Object.entries(secretFiles(secrets))) writeFileSync(join(dir, 'secrets', file), `${value}\n`);
      const env: Record<string, string> = {};
      for (const e of container.env ?? []) {
        const field = e.valueFrom?.fieldRef?.fieldPath;
        env[e.name] = field === 'metadata.name' ? name : field === 'status.podIP' ? ip : (e.value ?? '');
      }
      const args = expandArgs(container.args!, env).map((arg) => {
        let a = arg.replace(secretMount, join(dir, 'secrets')).replace(dataMount, join(dir, 'data'));
        manifestPorts.forEach((port, p) => (a = a.replace(new RegExp(`([=:])${port}$`), `$1${ports[p]}`)));
        return a;
      });
      const processEnv = {
        ...process.env,
        ...env,
        NODE_OPTIONS: `${env['NODE_OPTIONS'] ?? ''} --import=${dnsStub}`.trim(),
        RINGLIMIT_TEST_HOSTS: JSON.stringify({ [seeds]: ips }),
        RINGLIMIT_CLI: cli,
      };
      return { ip, name, args, process: startProcess(name, '/bin/sh', [ENTRYPOINT, ...args], processEnv) };
    });
    const readiness = container.readinessProbe!.httpGet!.path;
    const liveness = container.livenessProbe!.httpGet!.path;
    for (const p of pods) {
      // Joined, with its signal handlers in place (serve sets them after the start; /readyz may say 200 a moment before).
      await untilOutput(p.process, /"msg":"serving"/, 60_000);
      await until(`${p.name}: GET ${readiness} 200\n${p.args.join(' ')}\n${p.process.output()}`, 60_000, async () => ((await httpGet(`http://${p.ip}:${httpPort}${readiness}`)).status === 200 ? true : undefined));
      expect((await httpGet(`http://${p.ip}:${httpPort}${liveness}`)).status).toBe(200);
    }
    const members = await until('every pod a member of one cluster', 30_000, async () => {
      const views = await Promise.all(pods.map(async (p) => (JSON.parse((await httpGet(`http://${p.ip}:${httpPort}/v1/cluster`, { token: secrets.apiToken })).body) as { members: { nodeId: string }[] }).members.map((m) => m.nodeId).sort()));
      return views.every((v) => v.length === pods.length) ? views[0] : undefined;
    });
    expect(members).toEqual(pods.map((p) => p.name).sort());
    const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
    const codes = await Promise.all(pods.map((p) => stopProcess(p.process, 'SIGTERM', graceMs)));
    expect(codes, pods.map((p) => p.process.output().slice(-2_000)).join('\n')).toEqual(pods.map(() => 0));
  }, 150_000);
});

describe('Dockerfile', () => {
  const instructions = readDockerfile(join(ROOT, 'Dockerfile'));
  const final = Math.max(...instructions.map((i) => i.stage));
  const last = (name: string) => instructions.filter((i) => i.name === name && i.stage === final).at(-1);
  const cmd = execForm(last('CMD')!.text);

  it('is multi-stage, on a Node.js the package supports; the image runs as a non-root user', () => {
    expect(final).toBeGreaterThanOrEqual(1);
    const bases = instructions.filter((i) => i.name === 'FROM').map((i) => i.text);
    for (const base of bases) {
      const major = /^node:(\d+)/.exec(base)?.[1];
      expect(major, base).toBeDefined();
      // engines: ^20.19.0 || >=22.12.0 — the node:20 and node:22 tags are past those.
      expect(['20', '22', '24'], `${base} satisfies engines ${PACKAGE.engines.node}`).toContain(major);
    }
    const user = last('USER')?.text;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
  });

  it("builds dist/ as npm pack's prepare does, and copies only files the build context has (.dockerignore lets them through)", () => {
    expect(instructions.some((i) => i.name === 'RUN' && i.stage < final && i.text.includes('node scripts/build-package.mjs'))).toBe(true);
    const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    for (const copy of instructions.filter((i) => i.name === 'COPY' && !i.text.includes('--from'))) {
      const sources = copy.text.split(/\s+/).filter((w) => !w.startsWith('--')).slice(0, -1);
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true);
        expect(allowed.some((a) => source.replace(/\/$/, '') === a || source.startsWith(`${a}/`)), `${source} passes .dockerignore`).toBe(true);
      }
    }
  });

  it('PID 1 is tini, which runs the entrypoint that execs node; CMD is `serve` with documented flags; EXPOSE has its ports, the same as the manifests', () => {
    expect(execForm(last('ENTRYPOINT')!.text)).toEqual(['/usr/bin/tini', '--', '/bin/sh', '/app/entrypoint.sh']);
    expect(readFileSync(ENTRYPOINT, 'utf8')).toMatch(/^exec node --expose-gc "\$cli" "\$@"$/m);
    expect(cmd[0]).toBe('serve');
    const cmdFlags = flagsOf(cmd);
    for (const flag of cmdFlags.keys()) expect(HELP_FLAGS.has(flag), `--${flag} is in serve --help`).toBe(true);
    const exposed = instructions.filter((i) => i.name === 'EXPOSE').flatMap((i) => i.text.split(/\s+/));
    expect(new Set(exposed)).toEqual(new Set([cmdFlags.get('port'), `${cmdFlags.get('gossip-port')}/udp`, cmdFlags.get('http-port')]));
    expect(Number(cmdFlags.get('http-port'))).toBe(portNamed('http').containerPort);
    expect(Number(cmdFlags.get('port'))).toBe(portNamed('grpc').containerPort);
    expect(Number(cmdFlags.get('gossip-port'))).toBe(portNamed('gossip').containerPort);
    expect(cmdFlags.get('data-dir')).toBe(flags.get('data-dir'));
  });

  it("HEALTHCHECK runs healthcheck.mjs: unhealthy while nothing answers, healthy once the image's default command (through the entrypoint, which finds the container's address for --host) is ready; SIGTERM reaches node, which exits 0", async () => {
    const healthcheck = execForm(last('HEALTHCHECK')!.text.replace(/^.*?CMD\s+/, ''));
    expect(healthcheck).toEqual(['node', '/app/healthcheck.mjs']);
    const [port] = await freePorts(1, ['127.0.0.1']);
    const [grpc, gossip] = await freePorts(2, ['127.0.0.1']);
    const env = { ...process.env, RINGLIMIT_HTTP_PORT: String(port), RINGLIMIT_CLI: builtCli() };
    const check = () => run(process.execPath, [HEALTHCHECK], { cwd: work, env, timeoutMs: 20_000 }).then(() => 0, () => 1);
    expect(await check(), 'unhealthy before the node runs').toBe(1);
    const cmdFlags = flagsOf(cmd);
    const moved = cmd.map((w) => (w === cmdFlags.get('http-port') ? String(port) : w === cmdFlags.get('port') ? String(grpc) : w === cmdFlags.get('gossip-port') ? String(gossip) : w === cmdFlags.get('data-dir') ? join(work, 'image-data') : w));
    const node = startProcess('image', '/bin/sh', [ENTRYPOINT, ...moved], env);
    await untilOutput(node, /"msg":"serving"/, 60_000);
    await until(`healthy\n${node.output()}`, 60_000, async () => ((await check()) === 0 ? true : undefined));
    expect(await stopProcess(node, 'SIGTERM', 30_000), node.output()).toBe(0);
    expect(node.output()).toContain('draining and leaving');
  }, 120_000);
});

/** Loaded with --import into each pod's node: names of RINGLIMIT_TEST_HOSTS resolve to their addresses, as the cluster DNS resolves a headless Service. */
const CLUSTER_DNS_STUB = `import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
const table = JSON.parse(process.env.RINGLIMIT_TEST_HOSTS ?? '{}');
const lookup = dns.promises.lookup;
dns.promises.lookup = async function (host, options) {
  const addresses = table[host];
  if (addresses === undefined) return lookup.call(this, host, options);
  const all = addresses.map((address) => ({ address, family: 4 }));
  return typeof options === 'object' && options !== null && options.all ? all : all[0];
};
syncBuiltinESMExports();
`;
