import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanNpmEnv } from './npm.js';

/**
 * An npm registry on 127.0.0.1 that serves exactly the packages of this repository's
 * package-lock.json: their manifests from the lockfile, their tarballs from npm's own cache
 * (which `npm ci` filled), or, for a package missing there, packed from node_modules/. So
 * `npm install ./ringlimit-x.y.z.tgz` resolves ringlimit's dependencies as it would from
 * registry.npmjs.org, with no network: the versions are the ones the tests ran against.
 */

const ROOT = join(import.meta.dirname, '..', '..');

interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  hasInstallScript?: boolean;
}

interface Version {
  entry: LockEntry;
  /** Where the installed copy is, to pack it when the cache lacks its tarball. */
  dir: string;
}

export interface LocalRegistry {
  /** http://127.0.0.1:PORT/ */
  readonly url: string;
  /** Packages whose tarball was asked for (name@version), for diagnostics. */
  readonly served: string[];
  close(): Promise<void>;
}

/** name → version → entry, from every node_modules/… entry of the lockfile. */
function lockedVersions(): Map<string, Map<string, Version>> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const byName = new Map<string, Map<string, Version>>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.includes('node_modules/') || entry.version === undefined || entry.link === true) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const versions = byName.get(name) ?? new Map<string, Version>();
    versions.set(entry.version, { entry, dir: join(ROOT, path) });
    byName.set(name, versions);
  }
  return byName;
}

/** npm's cache directory (content-v2 holds tarballs by integrity). */
function npmCacheDir(): string {
  return execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', env: cleanNpmEnv(), timeout: 30_000 }).trim();
}

/** The cached tarball with this integrity ("sha512-<base64>"), if npm's cache holds it. */
function cachedTarball(cache: string, integrity: string): Buffer | undefined {
  const [algorithm, digest] = integrity.split(/-(.*)/s) as [string, string | undefined];
  if (digest === undefined) return undefined;
  const hex = Buffer.from(digest, 'base64').toString('hex');
  const path = join(cache, '_cacache', 'content-v2', algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  return existsSync(path) ? readFileSync(path) : undefined;
}

const tarballName = (name: string, version: string): string => `${name.slice(name.lastIndexOf('/') + 1)}-${version}.tgz`;

export async function startLocalRegistry(): Promise<LocalRegistry> {
  const packages = lockedVersions();
  const cache = npmCacheDir();
  const packedDir = mkdtempSync(join(tmpdir(), 'ringlimit-registry-'));
  /** Tarballs by "name@version", and the integrity the manifests advertise for them. */
  const tarballs = new Map<string, Buffer>();
  const served: string[] = [];

  const tarball = (name: string, version: Version): Buffer | undefined => {
    const id = `${name}@${version.entry.version}`;
    let bytes = tarballs.get(id);
    if (bytes === undefined && version.entry.integrity !== undefined) bytes = cachedTarball(cache, version.entry.integrity);
    if (bytes === undefined && existsSync(join(version.dir, 'package.json'))) {
      // Not in the cache (an npm cache cleaned since the install): pack the installed copy.
      const out = mkdtempSync(join(packedDir, 'pack-'));
      execFileSync('npm', ['pack', version.dir, '--ignore-scripts', '--pack-destination', out], { cwd: out, env: cleanNpmEnv(), stdio: 'pipe', timeout: 60_000 });
      const file = readdirSync(out).find((f) => f.endsWith('.tgz'));
      if (file !== undefined) bytes = readFileSync(join(out, file));
    }
    if (bytes !== undefined) tarballs.set(id, bytes);
    return bytes;
  };

  const integrityOf = (name: string, version: Version): string | undefined => {
    const bytes = tarball(name, version);
    return bytes === undefined ? undefined : `sha512-${createHash('sha512').update(bytes).digest('base64')}`;
  };

  const packument = (name: string, versions: Map<string, Version>, base: string): object => {
    const manifests: Record<string, object> = {};
    let latest = '';
    for (const [number, version] of versions) {
      const e = version.entry;
      const integrity = integrityOf(name, version);
      manifests[number] = {
        name,
        version: number,
        ...(e.dependencies === undefined ? {} : { dependencies: e.dependencies }),
        ...(e.optionalDependencies === undefined ? {} : { optionalDependencies: e.optionalDependencies }),
        ...(e.peerDependencies === undefined ? {} : { peerDependencies: e.peerDependencies }),
        ...(e.peerDependenciesMeta === undefined ? {} : { peerDependenciesMeta: e.peerDependenciesMeta }),
        ...(e.bin === undefined ? {} : { bin: e.bin }),
        ...(e.engines === undefined ? {} : { engines: e.engines }),
        ...(e.os === undefined ? {} : { os: e.os }),
        ...(e.cpu === undefined ? {} : { cpu: e.cpu }),
        ...(e.libc === undefined ? {} : { libc: e.libc }),
        ...(e.hasInstallScript === true ? { hasInstallScript: true } : {}),
        // A package of another platform that was never installed has no tarball: npm skips it (os/cpu).
        dist: { tarball: `${base}${name}/-/${tarballName(name, number)}`, ...(integrity === undefined ? {} : { integrity }) },
      };
      if (latest === '' || compareVersions(number, latest) > 0) latest = number;
    }
    return { name, 'dist-tags': { latest }, versions: manifests };
  };

  let base = '';
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!.slice(1));
    const at = path.indexOf('/-/');
    const name = at < 0 ? path : path.slice(0, at);
    const versions = packages.get(name);
    if (versions === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    try {
      if (at < 0) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(packument(name, versions, base)));
        return;
      }
      const file = path.slice(at + 3);
      const version = [...versions.values()].find((v) => tarballName(name, v.entry.version!) === file);
      const bytes = version === undefined ? undefined : tarball(name, version);
      if (bytes === undefined) {
        res.writeHead(404).end();
        return;
      }
      served.push(`${name}@${version!.entry.version}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes);
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url: base,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(packedDir, { recursive: true, force: true });
      }),
  };
}

/** Compares two plain x.y.z[-pre] versions (enough to pick a latest among a lockfile's). */
function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => v.split(/[.+-]/).slice(0, 3).map(Number);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}
