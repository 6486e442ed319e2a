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
import { leaseDefaults } from '../node/lease/lease-options.js';
import { CONFIG_MEANINGS, type ConfigSection } from './config-meanings.js';

/** How a default reads in the reference. */
function shown(value: unknown): string {
  if (value === undefined) return '(none)';
  if (typeof value === 'number') return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
  if (typeof value === 'string') return value === '' ? "'' (none)" : `'${value}'`;
  if (Array.isArray(value)) return value.length === 0 ? '[]' : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return typeof (value as { now?: unknown }).now === 'function' ? 'system clock' : '(object: see below)';
  return String(value);
}

/** One option of the reference: its section, name, default as shown, and meaning ('' when CONFIG_MEANINGS lacks it). */
export interface ConfigRow {
  section: ConfigSection;
  option: string;
  shownDefault: string;
  meaning: string;
}

interface Section {
  id: ConfigSection;
  title: string;
  source: string;
  defaults: object;
  skip?: readonly string[];
}

/** The sections of the reference, in order: every defaults object a user configures. */
const SECTIONS: readonly Section[] = [
  { id: 'node', title: 'Node (`createNode(options)`, `ringlimit serve`)', source: 'nodeDefaults in src/node/options.ts', defaults: nodeDefaults, skip: ['store', 'callerLimits', 'envoy', 'leases', 'clock', 'membership', 'wrapPeerTransport', 'wrapGossipTransport'] },
  { id: 'envoy', title: 'Envoy rate limit service (`envoy` of a node, `serve --envoy-*`, docs/envoy.md)', source: 'envoySettingsDefaults in src/envoy/answer.ts', defaults: envoySettingsDefaults },
  { id: 'envoyStats', title: 'Envoy stats (fixed)', source: 'envoyStatsDefaults in src/envoy/stats.ts', defaults: envoyStatsDefaults },
  { id: 'callerLimits', title: 'Caller bounds (`callerLimits`, `serve --caller-limit NAME=N`)', source: 'callerLimitsDefaults in src/node/api/caller-ledger.ts', defaults: callerLimitsDefaults },
  { id: 'store', title: 'Store (`store` of a node; options of `createLimiter`)', source: 'storeDefaults in src/limiter/store.ts', defaults: storeDefaults },
  { id: 'limiter', title: 'Limiter (`createLimiter(options)`)', source: 'limiterDefaults in src/limiter/limiter.ts', defaults: limiterDefaults, skip: Object.keys(storeDefaults).concat(['clock']) },
  { id: 'remoteLimiter', title: 'Limiter on a shared store (`createLimiter({ store, ...options })`, docs/redis.md)', source: 'remoteLimiterDefaults in src/limiter/remote-limiter.ts', defaults: remoteLimiterDefaults, skip: ['clock', 'policies'] },
  { id: 'redisStore', title: 'Redis store (`redisStore({ client, ...options })` from ringlimit/redis)', source: 'redisStoreDefaults in src/redis/redis-store.ts', defaults: redisStoreDefaults, skip: ['clock'] },
  { id: 'client', title: 'Client (`new RingLimitClient(options)`)', source: 'clientDefaults in src/node/client/client-options.ts', defaults: clientDefaults },
  { id: 'adaptive', title: 'Adaptive limits (`adaptive` of a node)', source: 'aimdDefaults in src/limiter/adaptive.ts (and sampleMs 250)', defaults: aimdDefaults },
  { id: 'fairShare', title: 'Fair share (fixed; per shared capacity)', source: 'fairShareDefaults in src/limiter/fair-share.ts', defaults: fairShareDefaults },
  { id: 'leases', title: 'Leases (`leases` of a node, `serve --leases`)', source: 'leaseDefaults in src/node/lease/lease-options.ts', defaults: leaseDefaults },
];

/** Every option of every section, with its default and meaning. */
export function configRows(): ConfigRow[] {
  return SECTIONS.flatMap((section) =>
    Object.entries(section.defaults)
      .filter(([name]) => !(section.skip ?? []).includes(name))
      .map(([option, value]) => ({ section: section.id, option, shownDefault: shown(value), meaning: CONFIG_MEANINGS[section.id][option] ?? '' })),
  );
}

const cell = (text: string): string => text.replaceAll('|', '\\|');

function table(section: Section, rows: readonly ConfigRow[]): string {
  const lines = rows.filter((r) => r.section === section.id).map((r) => `| \`${r.option}\` | ${r.shownDefault} | ${cell(r.meaning)} |`);
  return [`## ${section.title}`, '', `Defaults object: \`${section.source}\`.`, '', '| option | default | meaning |', '| --- | --- | --- |', ...lines].join('\n');
}

/**
 * docs/configuration.md, generated from the defaults objects themselves (`npm run
 * docs:config` writes it; a test fails when it is not current), with each option's meaning
 * from config-meanings.ts.
 */
export function renderConfigReference(): string {
  const rows = configRows();
  return [
    '# Configuration reference',
    '',
    'Generated from the defaults objects by `npm run docs:config`; `test/config-reference.test.ts` fails when this file is not current, or when an option has no meaning. The meanings are condensed from the comments of each options type (`src/cli/config-meanings.ts`); more in `docs/node.md`, `docs/policies.md`, `docs/security.md` and `ringlimit serve --help` (flags map onto these options).',
    '',
    ...SECTIONS.flatMap((section) => [table(section, rows), '']),
  ].join('\n');
}
