#!/usr/bin/env node
// `prepare` (npm pack, npm publish, an install from git, and `npm install` in this repository):
// dist/ from scratch, so the package holds exactly what src/ builds today (no file of an
// older build, moved or deleted since); then what `npm run build` does.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
execFileSync(process.execPath, [join(root, 'scripts', 'write-cjs-types.mjs')], { cwd: root, stdio: 'inherit' });
