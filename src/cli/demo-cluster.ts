import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RingLimitClient } from '../node/client/client.js';
import { ClusterView } from '../node/routing/cluster-view.js';
import { systemClock } from '../common/clock.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const BOOT_TIMEOUT_MS = 20_000;

interface Started {
  child: ChildProcess;
  nodeId: string;
  grpc: string;
  gossip: string;
}

/** Starts `ringlimit serve` in a child process and waits for its ready line. */
function startNode(nodeId: string, join: string | undefined): Promise<Started> {
  const args = [CLI, 'serve', '--node-id', nodeId, '--ready-json', '--gossip-preset', 'lan', ...(join === undefined ? [] : ['--join', join])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${nodeId} did not start within ${BOOT_TIMEOUT_MS} ms`));
    }, BOOT_TIMEOUT_MS);
    let errors = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      errors = (errors + chunk.toString()).slice(-2000);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${nodeId} exited with code ${code}: ${errors}`));
    });
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      const ready = JSON.parse(line) as { grpc: string; gossip: string };
      resolve({ child, nodeId, grpc: ready.grpc, gossip: ready.gossip });
    });
  });
}

const USERS = [
  { key: 'free-user', weight: 1 },
  { key: 'pro-user', weight: 3 },
  { key: 'partner', weight: 10 },
];
const LIMIT = 20;
const WINDOW_MS = 1000;
const ACTION = 'api';

/**
 * Who owns each demo user's key, as the client's ring view places it: the same Ring and
 * routing key the client (and every node) uses, over the owners the client learned.
 */
export function ownersOfUsers(ownerIds: readonly string[], keys: readonly string[]): Map<string, string> {
  const members = ownerIds.map((nodeId) => ({ nodeId, address: '', owns: true }));
  const view = new ClusterView({ members: { current: () => members }, clock: systemClock }, { selfId: '', replicas: 0, maxHandedAwayKeys: 1, handoffWindowMs: 0 });
  return new Map(keys.map((key) => [key, ownerIds.length === 0 ? '?' : view.ownerOf(ACTION, key)]));
}

/** The node to kill: the one owning the most of the shown keys (the first such in `nodeIds` order). */
export function victimOf(owners: ReadonlyMap<string, string>, nodeIds: readonly string[]): string {
  const count = (id: string): number => [...owners.values()].filter((owner) => owner === id).length;
  return nodeIds.reduce((best, id) => (count(id) > count(best) ? id : best), nodeIds[0]!);
}

/** The client's view of the owners once it holds every node (it asks about once a second); bounded. */
async function learnedOwners(client: RingLimitClient, count: number): Promise<string[]> {
  for (let i = 0; i < 100 && client.ownerIds().length < count; i++) await sleep(50);
  return client.ownerIds();
}

/** Drives every user through every node for one aligned window; returns allowed per user. */
async function oneWindow(clients: RingLimitClient[], windowEnd: number): Promise<{ allowed: number[]; attempted: number; errors: number }> {
  const allowed = USERS.map(() => 0);
  let attempted = 0;
  let errors = 0;
  while (Date.now() < windowEnd - 20) {
    const calls: Promise<void>[] = [];
    for (const client of clients) {
      USERS.forEach((user, u) => {
        for (let i = 0; i < 10; i++) {
          attempted++;
          calls.push(
            client.allow({ key: user.key, action: ACTION, limit: LIMIT, windowMs: WINDOW_MS, weight: user.weight, algorithm: 'fixed-window' }).then(
              (d) => {
                if (d.allowed) allowed[u]!++;
              },
              () => {
                errors++;
              },
            ),
          );
        }
      });
    }
    await Promise.all(calls);
    await sleep(10);
  }
  return { allowed, attempted, errors };
}

export async function runClusterDemo(args: string[]): Promise<number> {
  const seconds = Number(args[0] ?? 3);
  if (!(seconds >= 1 && seconds <= 30)) throw new Error('demo: seconds per phase must be 1..30');
  console.log('ringlimit demo: starting a 3-node cluster on 127.0.0.1 (each node is a `ringlimit serve` process)…');
  const nodes: Started[] = [];
  const clients: RingLimitClient[] = [];
  const stopAll = () => {
    for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGKILL');
  };
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    nodes.push(await startNode('n1', undefined));
    nodes.push(await startNode('n2', nodes[0]!.gossip));
    nodes.push(await startNode('n3', nodes[0]!.gossip));
    for (const n of nodes) console.log(`  ${n.nodeId}: gRPC ${n.grpc}, gossip ${n.gossip}`);
    // One client per node, each preferring its own node and failing over to the others.
    for (let i = 0; i < nodes.length; i++) {
      const order = [...nodes.slice(i), ...nodes.slice(0, i)].map((n) => n.grpc);
      clients.push(new RingLimitClient({ nodes: order, preferFirst: true, timeoutMs: 1500 }));
    }
    await sleep(1500); // let gossip settle so every node owns its share
    const health = await clients[0]!.health();
    console.log(`  ring: ${health.owners.join(', ')} (${health.members} members)\n`);
    console.log(`traffic: every node asks for every user ~${3 * 10 * 90}×/s; limit ${LIMIT}/s × weight, fixed 1 s windows, decided by each key's owner`);
    const header = `window  ${USERS.map((u) => `${u.key} (limit ${LIMIT * u.weight})`.padEnd(26)).join('')}errors`;
    const phase = async (label: string, count: number) => {
      console.log(`\n${label}\n${header}`);
      for (let w = 0; w < count; w++) {
        const windowEnd = (Math.floor(Date.now() / WINDOW_MS) + 1) * WINDOW_MS;
        const r = await oneWindow(clients, windowEnd);
        const cells = r.allowed.map((a, u) => `${a} allowed${a === LIMIT * USERS[u]!.weight ? ' ✓' : ''}`.padEnd(26));
        console.log(`${String(w + 1).padStart(6)}  ${cells.join('')}${r.errors}`);
        await sleep(Math.max(0, windowEnd - Date.now() + 5));
      }
    };
    // Start on a window boundary so each row is one whole window.
    const keys = USERS.map((u) => u.key);
    const ownerIds = await learnedOwners(clients[0]!, nodes.length);
    const owners = ownersOfUsers(ownerIds, keys);
    console.log(`  owners (the client's ring view): ${keys.map((k) => `${k} → ${owners.get(k)}`).join(', ')}`);
    await sleep(WINDOW_MS - (Date.now() % WINDOW_MS) + 5);
    await phase('all three nodes up:', seconds);
    const victimId = victimOf(owners, nodes.map((n) => n.nodeId));
    const victim = nodes.find((n) => n.nodeId === victimId)!;
    const itsKeys = keys.filter((k) => owners.get(k) === victimId);
    // A key's replica is its owner on the ring without the victim: where it fails over.
    const replicas = ownersOfUsers(ownerIds.filter((id) => id !== victimId), itsKeys);
    const listed = itsKeys.length === 1 ? itsKeys[0]! : `${itsKeys.slice(0, -1).join(', ')} and ${itsKeys.at(-1)!}`;
    console.log(`\nkill -9 ${victim.nodeId}, the owner of ${listed}: ${itsKeys.length === 1 ? 'it fails' : 'they fail'} over to ${itsKeys.length === 1 ? 'its replica' : 'their replicas'} (${itsKeys.map((k) => `${k} → ${replicas.get(k)}`).join(', ')}), which decide from the copies they hold; clients of ${victim.nodeId} fail over to other nodes`);
    victim.child.kill('SIGKILL');
    await sleep(WINDOW_MS - (Date.now() % WINDOW_MS) + 5);
    await phase(`${victim.nodeId} down:`, seconds);
    console.log('\nstopping: SIGTERM to the survivors (graceful: hand state over, leave the gossip)…');
    for (const c of clients) c.close();
    const survivors = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    for (const n of survivors) n.child.kill('SIGTERM');
    const started = Date.now();
    for (let i = 0; i < 200 && survivors.some((n) => n.child.exitCode === null); i++) await sleep(50);
    console.log(`done: ${survivors.map((n) => `${n.nodeId} exited ${n.child.exitCode === 0 ? 'cleanly' : `with ${n.child.exitCode}`}`).join(', ')} in ${Date.now() - started} ms.`);
    return 0;
  } finally {
    for (const c of clients) c.close();
    stopAll();
  }
}
