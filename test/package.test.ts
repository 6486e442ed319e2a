import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from './deployment/http-get.js';
import { freePorts, loopbackMachines, startProcess, stopAll, stopProcess, until, untilOutput } from './deployment/processes.js';
import { makeSecrets, writeCertificates, writeSecrets } from './deployment/secrets.js';
import { readSystemdUnit, timeSpanMs } from './deployment/systemd-unit.js';
import { tsconfigsOf, writeApp, type AppKind, type AppOutput } from './packaging/apps.js';
import { startLocalRegistry, type LocalRegistry } from './packaging/local-registry.js';
import { cleanNpmEnv, npm, run } from './packaging/npm.js';
import { packFromCleanCheckout, type PackedTarball } from './packaging/packed-tarball.js';

/**
 * The package as a new user gets it: `npm pack` on a clean checkout (its prepare script builds
 * dist/), installed into fresh ESM, CommonJS and TypeScript apps and globally, from the tarball,
 * with no network (ringlimit's dependencies come from a registry on 127.0.0.1 that serves this
 * repository's locked versions). The tarball is packed once, for every test here.
 */

const ROOT = join(import.meta.dirname, '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const PACK_TIMEOUT_MS = 180_000;
const INSTALL_TIMEOUT_MS = 120_000;
const RUN_TIMEOUT_MS = 60_000;

let work = '';
let packed: PackedTarball;
let registry: LocalRegistry;

/** npm install, in `dir`, from the local registry, with a cache of this run's own. */
const install = (dir: string, args: string[]) => npm(['install', ...args], { cwd: dir, registry: registry.url, cache: join(work, 'npm-cache'), timeoutMs: INSTALL_TIMEOUT_MS });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ringlimit-package-'));
  [packed, registry] = await Promise.all([packFromCleanCheckout(work, PACK_TIMEOUT_MS), startLocalRegistry()]);
}, PACK_TIMEOUT_MS + 30_000);

afterAll(async () => {
  await registry?.close();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

describe('npm pack on a clean checkout', () => {
  it('builds dist/ (prepare) and ships the built package, its CommonJS declarations, the .proto files and LICENSE; no source maps, sources or tests', () => {
    expect(packed.path.endsWith(`${PACKAGE.name}-${PACKAGE.version}.tgz`)).toBe(true);
    const files = new Set(packed.files);
    for (const needed of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/cjs/package.json', 'dist/cjs/index.d.ts', 'dist/cjs/middleware/express.d.ts', 'dist/cjs/redis/index.d.ts', 'proto/ringlimit/v1/ratelimiter.proto']) {
      expect(files.has(needed), `${needed} in the tarball`).toBe(true);
    }
    expect(files.has(PACKAGE.bin['ringlimit']!.replace(/^\.\//, '')), 'the bin in the tarball').toBe(true);
    expect(packed.files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(packed.files.filter((f) => /^(src|test|bench|docs|scripts|deploy)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toContain('Apache License\n                           Version 2.0');
  });
});

describe('the tarball installed into fresh apps', () => {
  const kinds: AppKind[] = ['esm', 'cjs', 'ts-esm', 'ts-cjs'];
  const outputs = new Map<AppKind, AppOutput>();

  beforeAll(async () => {
    await Promise.all(
      kinds.map(async (kind) => {
        const dir = join(work, 'apps', kind);
        const main = writeApp(dir, kind);
        const typescript = kind.startsWith('ts-');
        // A TypeScript app has @types/node beside ringlimit; its compiler is this repository's.
        await install(dir, [packed.path, ...(typescript ? ['@types/node@20'] : [])]);
        for (const config of tsconfigsOf(kind)) await run(process.execPath, [TSC, '-p', config], { cwd: dir, timeoutMs: RUN_TIMEOUT_MS });
        const { stdout } = await run(process.execPath, [main], { cwd: dir, timeoutMs: RUN_TIMEOUT_MS });
        outputs.set(kind, JSON.parse(stdout.trim()) as AppOutput);
      }),
    );
  }, 2 * INSTALL_TIMEOUT_MS + 4 * RUN_TIMEOUT_MS);

  it('an ES module app imports ringlimit and its subpaths, decides on a limiter and a node, and exits 0', () => {
    expect(outputs.get('esm')).toEqual({ app: 'esm', limiter: 99, node: 99, subpaths: ['function', 'function', 'function'] });
  });

  it("a CommonJS app require()s ringlimit, its subpaths and its package.json (Node's require(esm)), decides, and exits 0", () => {
    expect(outputs.get('cjs')).toEqual({ app: 'cjs', limiter: 99, node: 99, subpaths: ['function', 'function', 'function'], version: PACKAGE.version });
  });

  it('TypeScript in a "type": "module" package: typed under module node16 and nodenext (no TS1479), runs', () => {
    expect(outputs.get('ts-esm')).toEqual({ app: 'ts-esm', limiter: 99, node: 99, subpaths: ['function', 'function', 'function', 'function'] });
  });

  it('TypeScript in a "type": "commonjs" package: typed under node16, nodenext and node10 resolution (no TS1479), compiled to require(), runs', () => {
    expect(outputs.get('ts-cjs')).toEqual({ app: 'ts-cjs', limiter: 99, node: 99, subpaths: ['function', 'function', 'function', 'function'] });
    expect(readFileSync(join(work, 'apps', 'ts-cjs', 'out', 'index.js'), 'utf8')).toContain('require("ringlimit")');
  });
});

describe('a global install of the tarball, and the systemd unit (deploy/systemd/ringlimit.service) running it', () => {
  let bin = '';
  beforeAll(async () => {
    const prefix = join(work, 'global');
    mkdirSync(prefix);
    await install(work, ['--global', '--prefix', prefix, packed.path]);
    bin = join(prefix, 'bin', 'ringlimit');
  }, INSTALL_TIMEOUT_MS);
  afterAll(() => stopAll());

  it('puts `ringlimit` on PATH: --version, serve --help', async () => {
    const env = cleanNpmEnv();
    expect((await run(bin, ['--version'], { cwd: work, env, timeoutMs: RUN_TIMEOUT_MS })).stdout.trim()).toBe(PACKAGE.version);
    const help = (await run(bin, ['serve', '--help'], { cwd: work, env, timeoutMs: RUN_TIMEOUT_MS })).stdout;
    expect(help).toContain('--gossip-key-file');
    expect(help).toContain('GET /metrics');
  }, 2 * RUN_TIMEOUT_MS);

  it("the unit's ExecStart, as written, on three machines: every node joins, turns ready over mutual TLS, and SIGTERM (KillSignal) drains it to exit 0 within TimeoutStopSec", async (context) => {
    const unit = readSystemdUnit(join(ROOT, 'deploy', 'systemd', 'ringlimit.service'));
    const [program, ...args] = unit.execStart;
    expect(program, 'ExecStart runs the globally installed ringlimit').toMatch(/^\/usr\/(local\/)?bin\/ringlimit$/);
    expect(args[0]).toBe('serve');
    expect(unit.settings['KillSignal']).toBe('SIGTERM');
    expect(unit.settings['StateDirectory']).toBe('ringlimit');
    const line = args.join(' ');
    // The machines of the unit's --join, in order; the one running it is --host.
    const machinesOfUnit = /--join (\S+)/.exec(line)![1]!.split(',').map((seed) => seed.slice(0, seed.lastIndexOf(':')));
    expect(machinesOfUnit).toContain(/--host (\S+)/.exec(line)![1]);
    const machines = await loopbackMachines(machinesOfUnit.length);
    if (machines === undefined) return context.skip('127.0.0.2… cannot be bound here: three machines cannot be simulated on one');
    const unitPorts = [...new Set([...line.matchAll(/--(?:gossip-|http-)?port (\d+)/g)].map((m) => m[1]!))];
    const ports = await freePorts(unitPorts.length, machines);
    const conf = join(work, 'etc-ringlimit');
    mkdirSync(conf);
    const secrets = makeSecrets();
    writeSecrets(conf, secrets);
    const tls = writeCertificates(conf, machines);
    copyFileSync(join(ROOT, 'examples', 'policies.yaml'), join(conf, 'policies.yaml'));
    for (const [, file] of line.matchAll(/(\/etc\/ringlimit\/\S+)/g)) expect(existsSync(file!.replace('/etc/ringlimit', conf)), `${file} is made for the test`).toBe(true);

    const nodes = machines.map((host, i) => {
      const moved = args.map((word) => {
        let w = word.replace('%H', `machine-${i + 1}`).replace('/etc/ringlimit', conf).replace('/var/lib/ringlimit', join(work, `var-lib-ringlimit-${i + 1}`));
        // The unit's machines (10.0.3.17, …) are 127.0.0.2, …; its ports are moved to free ones.
        machinesOfUnit.forEach((address, m) => (w = w.split(address).join(machines[m]!)));
        unitPorts.forEach((port, p) => (w = w === port ? String(ports[p]) : w.split(`:${port}`).join(`:${ports[p]}`)));
        return w;
      });
      // The unit as installed on machine i names that machine as --host.
      moved[moved.indexOf('--host') + 1] = host;
      return { host, args: moved, process: startProcess(`machine-${i + 1}`, bin, moved, cleanNpmEnv(unit.environment)) };
    });
    const httpPort = ports[unitPorts.indexOf(/--http-port (\d+)/.exec(line)![1]!)]!;
    for (const node of nodes) {
      // Joined, with its signal handlers in place (serve sets them after the start; /readyz may say 200 a moment before).
      await untilOutput(node.process, /"msg":"serving"/, 60_000);
      await until(`${node.process.name} ready (GET /readyz)\n${node.args.join(' ')}\n${node.process.output()}`, 60_000, async () => ((await httpGet(`https://${node.host}:${httpPort}/readyz`, { tls })).status === 200 ? true : undefined));
    }
    const cluster = await until('3 members', 30_000, async () => {
      const answer = await httpGet(`https://${nodes[0]!.host}:${httpPort}/v1/cluster`, { tls, token: secrets.apiToken });
      const members = (JSON.parse(answer.body) as { members?: unknown[] }).members ?? [];
      return members.length === nodes.length ? members : undefined;
    });
    expect(cluster).toHaveLength(3);
    expect((await httpGet(`https://${nodes[1]!.host}:${httpPort}/metrics`, { tls, token: secrets.apiToken })).body).toMatch(/^ringlimit_members 3$/m);
    const stopMs = timeSpanMs(unit.settings['TimeoutStopSec'] ?? '90s');
    const codes = await Promise.all(nodes.map((node) => stopProcess(node.process, 'SIGTERM', stopMs)));
    expect(codes, nodes.map((n) => n.process.output().slice(-2_000)).join('\n')).toEqual([0, 0, 0]);
  }, 180_000);
});
