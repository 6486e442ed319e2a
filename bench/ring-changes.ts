/**
 * Membership changes of a ring of `count` members, timed in a process that holds nothing
 * else (as a node's ClusterView holds its ring): a member leaves, another joins, 12 times;
 * the first 2 warm the code up. Each change's event-loop time is measured whole, and the
 * process's garbage-collection pauses inside it are told apart. Prints one JSON line.
 * Run by bench/ring.ts (`node dist-bench/bench/ring-changes.js 1000`).
 */
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Ring } from '../src/ring/index.js';

export interface ChangeTimes {
  /** Event-loop time of each change, ms. */
  changes: number[];
  /** Of which garbage-collection pauses, ms. */
  gcInside: number[];
}

const addressIds = (count: number): string[] => Array.from({ length: count }, (_, i) => `10.0.${i >> 8}.${i & 255}:7946`);

export async function timeChanges(count: number): Promise<ChangeTimes> {
  const ids = addressIds(count);
  const ring = new Ring(ids.map((nodeId) => ({ nodeId })));
  const pauses: [number, number][] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as PerformanceEntry[]) pauses.push([e.startTime, e.startTime + e.duration]);
  });
  observer.observe({ entryTypes: ['gc'] });
  const spans: [number, number][] = [];
  let current = ring;
  for (let i = 0; i < 12; i++) {
    const leaveStart = performance.now();
    const left = current.withoutMember(ids[i * 13]!);
    const joinStart = performance.now();
    current = left.withMember({ nodeId: `10.200.0.${i}:7946` });
    const joinEnd = performance.now();
    if (i >= 2) spans.push([leaveStart, joinStart], [joinStart, joinEnd]);
  }
  await new Promise((resolve) => setTimeout(resolve, 50)); // GC entries arrive after the work
  observer.disconnect();
  const pausedWithin = (from: number, to: number): number => {
    let ms = 0;
    for (const [start, end] of pauses) ms += Math.max(0, Math.min(end, to) - Math.max(start, from));
    return ms;
  };
  return { changes: spans.map(([from, to]) => to - from), gcInside: spans.map(([from, to]) => pausedWithin(from, to)) };
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const count = Number(process.argv[2]);
  if (!Number.isInteger(count) || count < 1) throw new Error('usage: ring-changes.js <members>');
  timeChanges(count).then(
    (times) => console.log(JSON.stringify(times)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
