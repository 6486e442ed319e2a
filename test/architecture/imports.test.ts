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
    const ALLOWED = new Set(['node/routing/cluster-view.ts', 'index.ts']);
    const importers = ['node', 'chaos', 'cli', 'gossip', 'limiter', 'common']
      .flatMap((folder) => importsOf(folder))
      .filter(({ file, spec }) => target(file, spec) === 'ring' && !ALLOWED.has(file))
      .map(({ file }) => file);
    expect(importers).toEqual([]);
    const asksARing = /\.(owner|owners|ownersInto|ownerIndex|ownerIndexOfHash|nodeIdAt)\([^)]/;
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
