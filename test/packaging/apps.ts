import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Fresh apps of each kind a user starts from, written into empty directories: plain ESM and
 * CommonJS JavaScript, and TypeScript in a "type": "module" and a "type": "commonjs" package.
 * Each loads ringlimit and its three subpaths, makes one decision on a limiter and one on a
 * zero-configuration node, prints them as JSON and exits 0.
 */

export type AppKind = 'esm' | 'cjs' | 'ts-esm' | 'ts-cjs';

/** What every app prints: the remaining units after one decision each, and what the subpaths export. */
export interface AppOutput {
  app: AppKind;
  limiter: number;
  node: number;
  subpaths: string[];
  version?: string;
}

const REQUEST = "{ key: 'user-42', action: 'upload', limit: 100, windowMs: 60_000 }";

const ESM = `import { createLimiter, createNode } from 'ringlimit';
import { rateLimit as expressRateLimit } from 'ringlimit/express';
import { rateLimit as fastifyRateLimit } from 'ringlimit/fastify';
import { redisStore } from 'ringlimit/redis';

const limiter = createLimiter();
const d = limiter.allow(${REQUEST});
limiter.close();
const node = await createNode();
const n = await node.allow(${REQUEST});
await node.stop();
console.log(JSON.stringify({ app: 'esm', limiter: d.remaining, node: n.remaining, subpaths: [typeof expressRateLimit, typeof fastifyRateLimit, typeof redisStore] }));
`;

const CJS = `const { createLimiter, createNode } = require('ringlimit');
const { rateLimit: expressRateLimit } = require('ringlimit/express');
const { rateLimit: fastifyRateLimit } = require('ringlimit/fastify');
const { redisStore } = require('ringlimit/redis');
const { version } = require('ringlimit/package.json');

async function main() {
  const limiter = createLimiter();
  const d = limiter.allow(${REQUEST});
  limiter.close();
  const node = await createNode();
  const n = await node.allow(${REQUEST});
  await node.stop();
  console.log(JSON.stringify({ app: 'cjs', limiter: d.remaining, node: n.remaining, subpaths: [typeof expressRateLimit, typeof fastifyRateLimit, typeof redisStore], version }));
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

/** The TypeScript app: the same calls, typed; @ts-expect-error lines fail the build if ringlimit's types were missing (any). */
const TS = (app: AppKind): string => `import { createLimiter, createNode, RateLimitError, type Decision, type RateLimitRequest } from 'ringlimit';
import { rateLimit as expressRateLimit, type RateLimitOptions } from 'ringlimit/express';
import { rateLimit as fastifyRateLimit } from 'ringlimit/fastify';
import { redisStore, type RedisStoreOptions } from 'ringlimit/redis';

const request: RateLimitRequest = ${REQUEST};

/** Never called: the compiler must refuse what ringlimit's types forbid. */
export function refusedByTheTypes(options: RateLimitOptions, store: RedisStoreOptions): void {
  // @ts-expect-error a key is a string
  createLimiter().allow({ key: 42, limit: 100, windowMs: 60_000 });
  // @ts-expect-error no such algorithm
  createLimiter().allow({ ...request, algorithm: 'leaky' });
  // @ts-expect-error the middleware needs a limiter
  expressRateLimit({ ...options, limiter: undefined });
  void store;
}

async function main(): Promise<void> {
  const limiter = createLimiter();
  const d: Decision = limiter.allow(request);
  limiter.close();
  const node = await createNode();
  const n: Decision = await node.allow(request);
  await node.stop();
  const remaining: number = n.remaining;
  console.log(JSON.stringify({ app: '${app}', limiter: d.remaining, node: remaining, subpaths: [typeof expressRateLimit, typeof fastifyRateLimit, typeof redisStore, typeof RateLimitError] }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`;

/**
 * TypeScript settings per module mode; node16 emits, and also checks ringlimit's declarations
 * (skipLibCheck false: they must compile under the app's settings); the others only resolve and check the app.
 */
const tsconfig = (module: 'node16' | 'nodenext' | 'commonjs', emit: boolean): string =>
  JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module,
        moduleResolution: module === 'commonjs' ? 'node10' : module,
        ...(module === 'commonjs' ? { ignoreDeprecations: '5.0' } : {}),
        strict: true,
        esModuleInterop: true,
        types: ['node'],
        skipLibCheck: !emit,
        rootDir: 'src',
        outDir: 'out',
        noEmit: !emit,
      },
      include: ['src'],
    },
    null,
    2,
  );

/** The tsconfig files of a TypeScript app: tsc -p each of them. */
export function tsconfigsOf(kind: AppKind): string[] {
  if (kind === 'ts-esm') return ['tsconfig.node16.json', 'tsconfig.nodenext.json'];
  if (kind === 'ts-cjs') return ['tsconfig.node16.json', 'tsconfig.nodenext.json', 'tsconfig.node10.json'];
  return [];
}

/** Writes the app into `dir` (package.json without dependencies: the test installs them); returns the file to run with node. */
export function writeApp(dir: string, kind: AppKind): string {
  mkdirSync(dir, { recursive: true });
  const type = kind === 'esm' || kind === 'ts-esm' ? 'module' : 'commonjs';
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `ringlimit-${kind}-app`, version: '1.0.0', private: true, type }, null, 2)}\n`);
  if (kind === 'esm' || kind === 'cjs') {
    writeFileSync(join(dir, 'index.js'), kind === 'esm' ? ESM : CJS);
    return join(dir, 'index.js');
  }
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'index.ts'), TS(kind));
  writeFileSync(join(dir, 'tsconfig.node16.json'), tsconfig('node16', true));
  writeFileSync(join(dir, 'tsconfig.nodenext.json'), tsconfig('nodenext', false));
  if (kind === 'ts-cjs') writeFileSync(join(dir, 'tsconfig.node10.json'), tsconfig('commonjs', false));
  return join(dir, 'out', 'index.js');
}
