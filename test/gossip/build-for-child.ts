import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Child processes run plain Node, which cannot import .ts. Transpile (no type check: tsc
 * covers that) src/gossip and src/common into node_modules/.cache so bare imports such as
 * msgpackr still resolve from the repo's node_modules. Takes a few hundred milliseconds.
 */
export function buildGossipForChild(): { dir: string; cleanup: () => void } {
  const dir = join(ROOT, 'node_modules', '.cache', `ringlimit-gossip-test-${process.pid}-${Date.now()}`);
  for (const folder of ['gossip', 'common']) {
    const srcDir = join(ROOT, 'src', folder);
    for (const name of readdirSync(srcDir).filter((n) => n.endsWith('.ts'))) {
      const source = readFileSync(join(srcDir, name), 'utf8');
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
        fileName: name,
      });
      const out = join(dir, relative(join(ROOT, 'src'), srcDir), name.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, outputText);
    }
  }
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
