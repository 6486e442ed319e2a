/**
 * Policy documents of many users (issue 28, finding 7): the parse on one thread (JSON and
 * YAML) and the load a node does (parsed in a worker, compiled in slices), with the longest
 * the event loop went unanswered meanwhile. `npm run bench -- policy-parse`.
 */
import { loadPolicyText } from '../src/node/sync/policy-loader.js';
import { parsePolicyText } from '../src/node/sync/policy-parse.js';
import { table, type Log } from './util.js';

const BOUNDS = { maxBytes: 512 * 1024 * 1024, maxUsers: 10_000_000 };

function documentOf(users: number, yaml: boolean): string {
  if (yaml) {
    const lines = ['defaults:', '  "*": { limit: 100, window: 1m }', 'groups:', '  pro: { weight: 5 }', 'users:'];
    for (let i = 0; i < users; i++) lines.push(`  user-${i}: { group: pro, weight: 2 }`);
    return `${lines.join('\n')}\n`;
  }
  const all: Record<string, unknown> = {};
  for (let i = 0; i < users; i++) all[`user-${i}`] = { group: 'pro', weight: 2 };
  return JSON.stringify({ defaults: { '*': { limit: 100, window: '1m' } }, groups: { pro: { weight: 5 } }, users: all });
}

async function loadWatchingTheLoop(text: string): Promise<{ ms: number; maxGapMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await loadPolicyText(text, 'bench', BOUNDS);
  const ms = performance.now() - started;
  clearInterval(timer);
  return { ms, maxGapMs };
}

export async function runPolicyParseBench(log: Log): Promise<string> {
  const rows: string[][] = [];
  for (const users of [25_000, 50_000, 300_000, 1_000_000]) {
    for (const yaml of [false, true]) {
      if (yaml && users > 300_000) continue; // the YAML library needs ~100× the text in memory: large documents go as JSON
      const text = documentOf(users, yaml);
      const started = performance.now();
      parsePolicyText(text, 'bench', BOUNDS);
      const parseMs = performance.now() - started;
      const loaded = await loadWatchingTheLoop(text);
      log(`${users} users ${yaml ? 'YAML' : 'JSON'}: parse ${parseMs.toFixed(0)} ms, load ${loaded.ms.toFixed(0)} ms, longest loop gap ${loaded.maxGapMs.toFixed(0)} ms`);
      rows.push([users.toLocaleString('en'), yaml ? 'YAML' : 'JSON', `${(text.length / 2 ** 20).toFixed(1)} MB`, `${(parseMs / 1000).toFixed(2)} s`, `${(loaded.ms / 1000).toFixed(2)} s`, `${loaded.maxGapMs.toFixed(0)} ms`]);
    }
  }
  return [
    '### Policy documents of many users (issue 28, finding 7)',
    '',
    'Parse: parsePolicyText on one thread. Load: what a node does for SetPolicies, the watched file and a peer\'s document (parsed in a worker, compiled 10,000 users per event-loop turn); loop gap: the longest the event loop went unanswered during the load. Before issue 28: 25k users 6.8 s, 50k 29.4 s, 300k unfinished after 40 s.',
    '',
    table(['users', 'format', 'size', 'parse', 'load', 'loop gap'], rows),
  ].join('\n');
}
