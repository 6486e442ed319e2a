import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cleanNpmEnv, run } from './npm.js';

const ROOT = join(import.meta.dirname, '..', '..');

export interface PackedTarball {
  /** The .tgz `npm pack` wrote. */
  path: string;
  /** Paths inside it, without the leading package/. */
  files: string[];
  /** What the pack printed (the prepare script's build included). */
  log: string;
}

/** What a build needs, where the tree is not a git checkout (a copy without .git). */
const BUILD_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'scripts', 'src', 'proto'];

function filesUnder(path: string): string[] {
  const full = join(ROOT, path);
  if (!existsSync(full)) return [];
  return statSync(full).isDirectory() ? readdirSync(full).flatMap((name) => filesUnder(join(path, name))) : [path];
}

/** The repository's files as a fresh clone of this working tree has them: tracked and new, never ignored ones (dist/, node_modules/). */
function checkoutFiles(): string[] {
  let listed: string;
  try {
    listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return BUILD_INPUTS.flatMap(filesUnder);
  }
  return listed.split('\0').filter((path) => path !== '' && existsSync(join(ROOT, path)) && statSync(join(ROOT, path)).isFile());
}

/**
 * `npm pack` as a new user runs it on a fresh clone: the working tree's files (no dist/)
 * copied to `work`/checkout, this repository's node_modules linked in (what `npm install`
 * would have made), and `npm pack`, whose prepare script builds dist/. Nothing is written
 * to this repository, so tests running the built CLI meanwhile are not disturbed.
 */
export async function packFromCleanCheckout(work: string, timeoutMs: number): Promise<PackedTarball> {
  const checkout = join(work, 'checkout');
  for (const path of checkoutFiles()) {
    mkdirSync(dirname(join(checkout, path)), { recursive: true });
    copyFileSync(join(ROOT, path), join(checkout, path));
  }
  if (existsSync(join(checkout, 'dist'))) throw new Error('a clean checkout has no dist/');
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  const out = join(work, 'packed');
  mkdirSync(out);
  const { stdout, stderr } = await run('npm', ['pack', '--pack-destination', out, '--no-update-notifier'], { cwd: checkout, env: cleanNpmEnv(), timeoutMs });
  const name = readdirSync(out).find((file) => file.endsWith('.tgz'));
  if (name === undefined) throw new Error(`npm pack wrote no tarball:\n${stdout}\n${stderr}`);
  const path = join(out, name);
  const listing = execFileSync('tar', ['-tzf', path], { encoding: 'utf8', timeout: 30_000 });
  const files = listing.split('\n').filter((line) => line !== '' && !line.endsWith('/')).map((line) => line.replace(/^package\//, ''));
  return { path, files, log: `${stdout}\n${stderr}` };
}
