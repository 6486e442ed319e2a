import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { RingLimitError } from '../../src/common/errors.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const BUILD_TIMEOUT_MS = 120_000;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Whether every src/**.ts has its dist/**.js, at least as new. */
function distIsCurrent(): boolean {
  return sourceFiles(SRC).every((ts) => {
    const js = join(DIST, relative(SRC, ts)).replace(/\.ts$/, '.js');
    return existsSync(js) && statSync(js).mtimeMs >= statSync(ts).mtimeMs;
  });
}

/**
 * The built CLI that chaos processes run (dist/cli.js), as `npm run build` makes it. `npm test`
 * has no build step, so this builds first when dist/ is missing or older than src/.
 */
export function builtCli(): string {
  if (!distIsCurrent()) {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', timeout: BUILD_TIMEOUT_MS });
    } catch (error) {
      const output = (error as { stdout?: string }).stdout ?? String(error);
      throw new RingLimitError('INTERNAL', `building dist/ with tsconfig.build.json failed:\n${output}`);
    }
  }
  return join(DIST, 'cli.js');
}
