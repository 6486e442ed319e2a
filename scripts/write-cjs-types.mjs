#!/usr/bin/env node
// Part of `npm run build`: the declarations seen by CommonJS callers (the "require" condition
// of package.json's exports). ringlimit is one ES module build; Node >= 20.19 / 22.12
// require()s it as is (require(esm)). TypeScript, though, reads a .d.ts under a
// "type": "module" package as ESM, and refuses to let a CommonJS file import it under
// `module: node16` (TS1479). The same declarations under dist/cjs/, beside a package.json
// that says "type": "commonjs", describe the exports a require() returns, so both module
// types get the same types from the same runtime code.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const out = join(dist, 'cjs');

/** Every .d.ts under dir, dist/cjs excluded. */
function declarations(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return path === out ? [] : declarations(path);
    return entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

rmSync(out, { recursive: true, force: true });
const files = declarations(dist);
if (!files.some((f) => relative(dist, f) === 'index.d.ts')) {
  console.error('write-cjs-types: dist/index.d.ts is missing; run tsc -p tsconfig.build.json first');
  process.exit(1);
}
for (const file of files) {
  const target = join(out, relative(dist, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
