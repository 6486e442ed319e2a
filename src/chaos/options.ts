import { fileURLToPath } from 'node:url';
import { randomSeed } from '../common/rng.js';
import type { ChaosOptions, ClusterOptions } from './types.js';

/** Defaults of a chaos run (`ringlimit chaos`). */
export const chaosDefaults: Omit<ChaosOptions, 'log' | 'progress'> = {
  scenarios: [],
  nodes: 5,
  warmupMs: 8_000,
  afterMs: 10_000,
  ratePerSec: 2_000,
  keyCount: 100,
  limit: 100,
  distribution: 'uniform',
  seed: randomSeed(),
  out: 'docs/reliability-latest.md',
};

/** What `--quick` changes: a smaller cluster and shorter load. */
export const quickChaosDefaults: Pick<ChaosOptions, 'nodes' | 'warmupMs' | 'afterMs'> = {
  nodes: 3,
  warmupMs: 6_000,
  afterMs: 6_000,
};

export const clusterDefaults: ClusterOptions = {
  // Beside this module once built: dist/chaos/options.js → dist/cli.js. Tests running from src/ pass the built path.
  cliPath: fileURLToPath(new URL('../cli.js', import.meta.url)),
  gossipPreset: 'lan',
  harness: true,
  serveArgs: [],
  bootTimeoutMs: 20_000,
  gracefulStopTimeoutMs: 10_000,
  killExitTimeoutMs: 5_000,
  healthTimeoutMs: 300,
  apiToken: undefined,
  pollIntervalMs: 50,
};
