/**
 * Policy paths against rate-limiter-flexible's RateLimiterMemory: policy handles, allow()
 * with one request shape and after six, and a request resolved from the policies against
 * the same request given in full. Each contender in fresh processes, paired with the peer.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEYS, type PolicyContender } from './policies-measure.js';
import { fmtRate, median, table, type Log } from './util.js';

const PAIRS = 3;

function measureOnce(contender: PolicyContender): number {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'policies-measure.js');
  const result = spawnSync(process.execPath, [script, contender], { encoding: 'utf8', timeout: 300_000 });
  if (result.status !== 0) throw new Error(`measurement ${contender} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout.trim().split('\n').pop()!) as { perSecond: number }).perSecond;
}

const OURS: [PolicyContender, string][] = [
  ['handle-six-shapes', '`limiter.policy(...)` handle, `search.allow(userId)`, after six request shapes were seen'],
  ['allow-one-shape', '`limiter.allow(request)`, one request shape'],
  ['allow-six-shapes', '`limiter.allow(request)`, after six request shapes were seen'],
  ['explicit', '`allow({ key, action, limit, windowMs })`: the request in full'],
  ['resolved', '`allow({ key, action })`: limit and window from the policies'],
];

export async function runPoliciesBench(log: Log): Promise<string> {
  const rates = new Map<PolicyContender, number[]>();
  const ratios = new Map<PolicyContender, number[]>();
  for (let pair = 0; pair < PAIRS; pair++) {
    log(`policies: pair ${pair + 1}/${PAIRS}: rate-limiter-flexible…`);
    const peer = measureOnce('flexible');
    rates.set('flexible', [...(rates.get('flexible') ?? []), peer]);
    for (const [contender, label] of OURS) {
      const rate = measureOnce(contender);
      log(`policies: pair ${pair + 1}/${PAIRS}: ${label}: ${fmtRate(rate)} (${(rate / peer).toFixed(1)}× rate-limiter-flexible)`);
      rates.set(contender, [...(rates.get(contender) ?? []), rate]);
      ratios.set(contender, [...(ratios.get(contender) ?? []), rate / peer]);
    }
  }
  const explicit = rates.get('explicit')!;
  const resolved = rates.get('resolved')!;
  const resolvedVsExplicit = median(resolved.map((r, i) => r / explicit[i]!));
  const rows = [
    ['rate-limiter-flexible `RateLimiterMemory.consume()` (awaited)', fmtRate(median(rates.get('flexible')!)), '1.0×'],
    ...OURS.map(([c, label]) => [label, fmtRate(median(rates.get(c)!)), `${median(ratios.get(c)!).toFixed(1)}×`]),
  ];
  return [
    '### Policies: handles, request shapes, resolved requests (one thread, system clock)',
    '',
    `${KEYS / 1000}k distinct keys in random order, a request object made per call, the system clock read on every call. Each rate is the median of ${PAIRS} fresh processes; each ratio the median of the per-pair ratios against rate-limiter-flexible measured just before. "Six request shapes": the process first made 200k calls through six call sites whose request objects differ in their properties, which makes the validation's property loads megamorphic.`,
    '',
    table(['path', 'decisions/s', 'against rate-limiter-flexible'], rows),
    '',
    `A request resolved from the policies runs at ${(resolvedVsExplicit * 100).toFixed(0)} % of the same request given in full (median of the per-pair ratios).`,
  ].join('\n');
}
