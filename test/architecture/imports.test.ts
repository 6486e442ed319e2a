import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every import specifier of every .ts file under src/<folder>. */
function importsOf(folder: string): { file: string; spec: string }[] {
  const dir = join(SRC, folder);
  let list: string[];
  try {
    list = files(dir);
  } catch {
    return [];
  }
  return list.flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => ({
      file: relative(SRC, file),
      spec: (m[1] ?? m[2])!,
    }));
  });
}

/** The src/ folder an import resolves into, or the package name for third-party imports. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return `package:${spec}`;
  const resolved = relative(SRC, join(SRC, file, '..', spec));
  return resolved.split('/')[0]!.replace(/\.js$/, '');
}

describe('module layering', () => {
  it('src/common is a leaf: it imports nothing from other src/ folders', () => {
    const bad = importsOf('common').filter(({ file, spec }) => spec.startsWith('.') && target(file, spec) !== 'common');
    expect(bad).toEqual([]);
  });

  it('src/limiter imports only itself, src/common and node built-ins', () => {
    const bad = importsOf('limiter').filter(({ file, spec }) => {
      const t = target(file, spec);
      return !(t === 'limiter' || t === 'common' || t.startsWith('package:node:'));
    });
    expect(bad).toEqual([]);
  });

  it('src/redis imports only src/limiter, src/common and node built-ins (the client is the caller\'s: no package import)', () => {
    const bad = importsOf('redis').filter(({ file, spec }) => {
      const t = target(file, spec);
      return !(t === 'redis' || t === 'limiter' || t === 'common' || t.startsWith('package:node:'));
    });
    expect(bad).toEqual([]);
  });

  it('src/ring and src/gossip do not import each other, src/node or src/limiter', () => {
    for (const [folder, forbidden] of [
      ['ring', ['gossip', 'node', 'limiter']],
      ['gossip', ['ring', 'node', 'limiter']],
    ] as const) {
      const bad = importsOf(folder).filter(({ file, spec }) => (forbidden as readonly string[]).includes(target(file, spec)));
      expect(bad, folder).toEqual([]);
    }
  });

  it('only ClusterView asks a ring who owns a key: every other file routes through it', () => {
    // ring-keys.ts holds ClusterView's routing key, hash and ring version (also the client's); ring-history.ts its rings since the cluster last settled.
    const ALLOWED = new Set(['node/routing/cluster-view.ts', 'node/routing/ring-keys.ts', 'node/routing/ring-history.ts', 'index.ts']);
    const importers = ['node', 'chaos', 'cli', 'gossip', 'limiter', 'common']
      .flatMap((folder) => importsOf(folder))
      .filter(({ file, spec }) => target(file, spec) === 'ring' && !ALLOWED.has(file))
      .map(({ file }) => file);
    expect(importers).toEqual([]);
    const asksARing = /\.(owner|owners|ownersInto|ownersIntoHash|ownerOfHash|ownerIndex|ownerIndexOfHash|nodeIdAt)\([^)]/;
    const outsideRing = files(SRC).filter((f) => !relative(SRC, f).startsWith('ring/') && !ALLOWED.has(relative(SRC, f)));
    const callers = outsideRing.filter((f) => asksARing.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    expect(callers).toEqual([]);
  });

  it('no `any` in src/', () => {
    const code = (f: string) => readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    // Type positions only: `: any,` `as any)` `<any>` `: any` at the end of a line.
    const offenders = files(SRC).filter((f) => /(:|\bas|<)\s*any\s*([,;)>\]|&=]|$)/m.test(code(f)));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });
});

/** The folder of src/node an import lands in ('' for a file at src/node's root), or undefined outside src/node. */
function nodeFolderOf(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const parts = relative(SRC, join(SRC, file, '..', spec)).split('/');
  if (parts[0] !== 'node') return undefined;
  return parts.length === 2 ? '' : parts[1]!;
}

describe('layering inside src/node', () => {
  /**
   * Bottom to top: wire and transport; routing (who decides, forwarding); state (replication,
   * handoff, snapshots) and sync (hot keys, policies, fair share, load control) beside each
   * other; cluster (composition of a member); api (servers and codecs) and client; ops
   * (metrics, stats, config files); the node's root files compose everything. A folder imports
   * only folders below it.
   */
  const MAY_IMPORT: Record<string, string[]> = {
    wire: ['wire', 'transport'],
    transport: ['transport', 'wire'],
    routing: ['routing', 'wire', 'transport'],
    state: ['state', 'routing', 'wire', 'transport'],
    sync: ['sync', 'routing', 'wire', 'transport'],
    lease: ['lease', 'routing', 'wire', 'transport'],
    cluster: ['cluster', 'routing', 'state', 'sync', 'lease', 'wire', 'transport'],
    api: ['api', 'routing', 'wire', 'transport'],
    client: ['client', 'api', 'routing', 'wire', 'transport', 'ops'],
    ops: ['ops', 'cluster', 'api', 'routing', 'state', 'sync', 'lease', 'wire', 'transport'],
  };

  it('each folder imports only itself and the folders below it (nothing imports upward, nothing imports the root)', () => {
    const bad: string[] = [];
    for (const [folder, allowed] of Object.entries(MAY_IMPORT)) {
      for (const { file, spec } of importsOf(`node/${folder}`)) {
        const to = nodeFolderOf(file, spec);
        if (to !== undefined && !allowed.includes(to)) bad.push(`${file} imports ${spec} (node/${to === '' ? '<root>' : to})`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('every folder of src/node has its rule', () => {
    const folders = readdirSync(join(SRC, 'node')).filter((name) => statSync(join(SRC, 'node', name)).isDirectory());
    expect(folders.filter((f) => !(f in MAY_IMPORT))).toEqual([]);
  });

  it('no file in src/node is longer than 400 lines, and node.ts no longer than 300', () => {
    const long = files(join(SRC, 'node'))
      .map((f) => ({ file: relative(SRC, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter(({ file, lines }) => lines > (file === 'node/node.ts' ? 300 : 400));
    expect(long).toEqual([]);
  });

  it('one answer to "decide here?": only ClusterView compares a placement with this node', () => {
    const forms = /isOwnedHere|\[0\]\s*===\s*(this\.)?(view\.)?selfId|ownerOf\([^)]*\)\s*!==\s*(this\.)?(init\.)?(view\.)?selfId|candidate\s*===\s*(this\.)?(init\.)?selfId/;
    const offenders = files(join(SRC, 'node'))
      .filter((f) => !f.endsWith('routing/cluster-view.ts'))
      .filter((f) => forms.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });
});

describe('src/envoy', () => {
  it('is pure: it imports only itself, src/limiter, src/common and node built-ins', () => {
    const bad = importsOf('envoy').filter(({ file, spec }) => {
      const t = target(file, spec);
      return !(t === 'envoy' || t === 'limiter' || t === 'common' || t.startsWith('package:node:'));
    });
    expect(bad).toEqual([]);
  });
});
