import { parseArgs } from 'node:util';
import { RingLimitError } from '../common/errors.js';
import { chaosDefaults, quickChaosDefaults } from '../chaos/options.js';
import { runChaos } from '../chaos/runner.js';
import { FULL, QUICK, scenarios } from '../chaos/scenarios.js';
import type { ChaosOptions } from '../chaos/types.js';

export const CHAOS_USAGE = `usage: ringlimit chaos [options]

  --quick               four short scenarios on 3 nodes (about a minute and a half): ${QUICK.join(', ')}
  --scenario NAME       run only this scenario (repeatable): ${Object.keys(scenarios).join(', ')}
  --nodes N             cluster size (default ${chaosDefaults.nodes}; ${quickChaosDefaults.nodes} with --quick)
  --seed N              replay a run's schedule and load
  --distribution D      uniform (default), zipf or hot
  --rate N              decisions per second offered by the load generators (default 2000)
  --keys N              distinct keys (default 100)
  --limit N             limit per key (default 100); size it so keys fill during the warm-up
  --out FILE            report path (default docs/reliability-latest.md; JSON beside it)
`;

export async function runChaosCli(args: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      options: {
        quick: { type: 'boolean' },
        scenario: { type: 'string', multiple: true },
        nodes: { type: 'string' },
        seed: { type: 'string' },
        distribution: { type: 'string' },
        rate: { type: 'string' },
        keys: { type: 'string' },
        limit: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    throw new RingLimitError('INVALID_ARGUMENT', `${(error as Error).message}\n\n${CHAOS_USAGE}`);
  }
  if (v.help === true) {
    process.stdout.write(CHAOS_USAGE);
    return 0;
  }
  const quick = v.quick === true;
  const options: ChaosOptions = {
    ...chaosDefaults,
    ...(quick ? quickChaosDefaults : {}),
    scenarios: v.scenario ?? (quick ? QUICK : FULL),
    log: (line) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
    progress: (line) => {
      if (process.stdout.isTTY) process.stdout.write(`\r\x1b[K${line}`);
      else if (line !== '') console.log(line);
    },
  };
  if (v.nodes !== undefined) options.nodes = Number(v.nodes);
  if (!(Number.isInteger(options.nodes) && options.nodes >= 3 && options.nodes <= 9)) throw new RingLimitError('INVALID_ARGUMENT', '--nodes must be 3..9');
  if (v.seed !== undefined) options.seed = Number(v.seed) >>> 0;
  if (v.distribution !== undefined) {
    if (!['uniform', 'zipf', 'hot'].includes(v.distribution)) throw new RingLimitError('INVALID_ARGUMENT', '--distribution must be uniform, zipf or hot');
    options.distribution = v.distribution as ChaosOptions['distribution'];
  }
  const count = (name: string, value: string | undefined, min: number, max: number): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new RingLimitError('INVALID_ARGUMENT', `--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  options.ratePerSec = count('rate', v.rate, 10, 50_000) ?? options.ratePerSec;
  options.keyCount = count('keys', v.keys, 1, 100_000) ?? options.keyCount;
  options.limit = count('limit', v.limit, 1, 1_000_000) ?? options.limit;
  if (v.out !== undefined) options.out = v.out;
  for (const s of options.scenarios) if (scenarios[s] === undefined) throw new RingLimitError('INVALID_ARGUMENT', `unknown scenario ${s}`);
  const results = await runChaos(options);
  return results.every((r) => r.pass) ? 0 : 1;
}
