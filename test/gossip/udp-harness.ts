import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSwimMembership } from '../../src/gossip/index.js';
import type { SwimMembership } from '../../src/gossip/swim.js';
import type { Member, MembershipEventName, Meta } from '../../src/gossip/types.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'member.mjs');

export interface Observed {
  readonly atMs: number;
  readonly observer: string;
  readonly event: MembershipEventName;
  readonly member: Member;
}

export class UdpCluster {
  readonly nodes: SwimMembership[] = [];
  readonly events: Observed[] = [];
  private readonly children = new Set<ChildProcess>();

  constructor(private readonly buildDir: string) {}

  async addLocal(nodeId: string, seeds: readonly string[] = []): Promise<SwimMembership> {
    const node = await createSwimMembership({ nodeId, preset: 'lan' });
    for (const event of ['join', 'leave', 'fail', 'update'] as const) {
      node.on(event, (member: Member) => this.events.push({ atMs: performance.now(), observer: nodeId, event, member }));
    }
    this.nodes.push(node);
    await node.start();
    await node.join(seeds);
    return node;
  }

  /** A member in a child process. Resolves once it has joined. */
  async spawn(nodeId: string, port: number, seeds: readonly string[], meta: Meta): Promise<{ child: ChildProcess; address: string }> {
    const config = { buildDir: this.buildDir, nodeId, port, seeds, meta, preset: 'lan' };
    const child = fork(FIXTURE, [JSON.stringify(config)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child ${nodeId} not ready in 10 s`)), 10_000);
      child.once('message', (m: { type: string; address: string }) => {
        clearTimeout(timer);
        resolve(m.address);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`child ${nodeId} exited with ${String(code)}`));
      });
    });
    return { child, address };
  }

  async stop(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.all(this.nodes.map((n) => n.stop({ graceful: false })));
  }
}

/** Poll a condition on real time, bounded. Returns elapsed ms or throws. */
export async function waitFor(predicate: () => boolean, maxMs: number, what: string): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) {
    if (predicate()) return performance.now() - start;
    if (performance.now() - start > maxMs) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what}: not within ${maxMs} ms`);
}

export function liveIds(node: SwimMembership): string {
  return node
    .members()
    .filter((m) => m.state === 'alive')
    .map((m) => m.nodeId)
    .join(',');
}
