import { aimdDefaults } from '../limiter/adaptive.js';
import { envoySettingsDefaults } from '../envoy/answer.js';
import { envoyStatsDefaults } from '../envoy/stats.js';
import { fairShareDefaults } from '../limiter/fair-share.js';
import { limiterDefaults } from '../limiter/limiter.js';
import { remoteLimiterDefaults } from '../limiter/remote-limiter.js';
import { redisStoreDefaults } from '../redis/redis-store.js';
import { storeDefaults } from '../limiter/store.js';
import { callerLimitsDefaults } from '../node/api/caller-ledger.js';
import { clientDefaults } from '../node/client/client.js';
import { nodeDefaults } from '../node/options.js';

/** How a default reads in the reference. */
function shown(value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value === 'number') return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
  if (typeof value === 'string') return value === '' ? "'' (none)" : `'${value}'`;
  if (Array.isArray(value)) return value.length === 0 ? '[]' : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return typeof (value as { now?: unknown }).now === 'function' ? 'system clock' : '(object: see below)';
  return String(value);
}

function table(title: string, source: string, defaults: object, skip: readonly string[] = []): string {
  const rows = Object.entries(defaults)
    .filter(([name]) => !skip.includes(name))
    .map(([name, value]) => `| \`${name}\` | ${shown(value)} |`);
  return [`## ${title}`, '', `Defaults object: \`${source}\`.`, '', '| option | default |', '| --- | --- |', ...rows].join('\n');
}

/**
 * docs/configuration.md, generated from the defaults objects themselves (`npm run
 * docs:config` writes it; a test fails when it is not current). What each option means is
 * in its component's docs and in the comments of its options type.
 */
export function renderConfigReference(): string {
  return [
    '# Configuration reference',
    '',
    'Generated from the defaults objects by `npm run docs:config`; `test/config-reference.test.ts` fails when this file is not current. What each option means: the comments of its options type, `docs/node.md`, `docs/policies.md`, `docs/security.md` and `ringlimit serve --help` (flags map onto these options).',
    '',
    table('Node (`createNode(options)`, `ringlimit serve`)', 'nodeDefaults in src/node/options.ts', nodeDefaults, ['store', 'callerLimits', 'envoy', 'clock', 'membership', 'wrapPeerTransport', 'wrapGossipTransport']),
    '',
    table('Envoy rate limit service (`envoy` of a node, `serve --envoy-*`, docs/envoy.md)', 'envoySettingsDefaults in src/envoy/answer.ts', envoySettingsDefaults),
    '',
    table('Envoy stats (fixed)', 'envoyStatsDefaults in src/envoy/stats.ts', envoyStatsDefaults),
    '',
    table('Caller bounds (`callerLimits`, `serve --caller-limit NAME=N`)', 'callerLimitsDefaults in src/node/api/caller-ledger.ts', callerLimitsDefaults),
    '',
    table('Store (`store` of a node; options of `createLimiter`)', 'storeDefaults in src/limiter/store.ts', storeDefaults),
    '',
    table('Limiter (`createLimiter(options)`)', 'limiterDefaults in src/limiter/limiter.ts', limiterDefaults, Object.keys(storeDefaults).concat(['clock'])),
    '',
    table('Limiter on a shared store (`createLimiter({ store, ...options })`, docs/redis.md)', 'remoteLimiterDefaults in src/limiter/remote-limiter.ts', remoteLimiterDefaults, ['clock', 'policies']),
    '',
    table('Redis store (`redisStore({ client, ...options })` from ringlimit/redis)', 'redisStoreDefaults in src/redis/redis-store.ts', redisStoreDefaults, ['clock']),
    '',
    table('Client (`new RingLimitClient(options)`)', 'clientDefaults in src/node/client/client.ts', clientDefaults),
    '',
    table('Adaptive limits (`adaptive` of a node)', 'aimdDefaults in src/limiter/adaptive.ts (and sampleMs 250)', aimdDefaults),
    '',
    table('Fair share (fixed; per shared capacity)', 'fairShareDefaults in src/limiter/fair-share.ts', fairShareDefaults),
    '',
  ].join('\n');
}
