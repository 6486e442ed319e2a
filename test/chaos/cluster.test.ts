import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { ChaosCluster } from '../../src/chaos/cluster.js';
import { builtCli } from './built-cli.js';

// Generous bounds for a busy 2-core machine; with the lan preset each wait usually takes about a second.
const CONVERGE_MS = 15_000;
const TEST_MS = 90_000;

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('ChaosCluster on real `serve --harness` processes', () => {
  let cliPath = '';
  let cluster: ChaosCluster | undefined;

  beforeAll(() => {
    cliPath = builtCli();
  }, 150_000);

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('sees a kill -9, a restart on the same ports and a pause; close() leaves nothing running', async () => {
    cluster = await ChaosCluster.start(3, { cliPath });
    await cluster.waitForMembers(3, CONVERGE_MS);
    const firstPids = [0, 1, 2].map((i) => cluster!.node(i).child.pid!);
    await expect(cluster.restart(0)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });

    const { grpc, gossip } = cluster.node(2);
    cluster.kill(2);
    expect(cluster.isUp(2)).toBe(false);
    await cluster.waitForMembersSeen([2, 2, null], CONVERGE_MS);

    await cluster.restart(2);
    expect(cluster.node(2)).toMatchObject({ grpc, gossip });
    await cluster.waitForMembersSeen([3, 3, 3], CONVERGE_MS);

    // A frozen node answers nothing; the others declare it dead, and it rejoins once resumed.
    cluster.pause(1);
    await cluster.waitForMembersSeen([2, -1, 2], CONVERGE_MS);
    cluster.resume(1);
    await cluster.waitForMembers(3, CONVERGE_MS);

    const pids = [...firstPids, cluster.node(2).child.pid!];
    await cluster.close();
    expect(pids.filter(isAlive)).toEqual([]);
  }, TEST_MS);

  it('a graceful stop drains, leaves and exits; the node restarts on its ports', async () => {
    cluster = await ChaosCluster.start(3, { cliPath });
    await cluster.waitForMembers(3, CONVERGE_MS);
    await cluster.stopGracefully(1); // throws if the process is still running after the bound
    await cluster.waitForMembersSeen([2, null, 2], CONVERGE_MS);
    await cluster.restart(1);
    await cluster.waitForMembers(3, CONVERGE_MS);
  }, TEST_MS);

  it('after a kill -9 of every node, restarts one at a time: the first starts alone at once, the next join it', async () => {
    cluster = await ChaosCluster.start(3, { cliPath });
    await cluster.waitForMembers(3, CONVERGE_MS);
    for (const i of [0, 1, 2]) cluster.kill(i);
    const t0 = Date.now();
    await cluster.restart(1);
    // No seeds, so no wait for dead ones (the lan preset's join timeout is 10 s).
    expect(Date.now() - t0).toBeLessThan(8_000);
    await cluster.waitForMembersSeen([null, 1, null], CONVERGE_MS);
    await cluster.restart(2);
    await cluster.waitForMembersSeen([null, 2, 2], CONVERGE_MS);
    await cluster.restart(0);
    await cluster.waitForMembers(3, CONVERGE_MS);
  }, TEST_MS);

  it('partitions one node from the others, then heals', async () => {
    cluster = await ChaosCluster.start(3, { cliPath });
    await cluster.waitForMembers(3, CONVERGE_MS);
    cluster.partition([0], [1, 2]);
    await cluster.waitForMembersSeen([1, 2, 2], CONVERGE_MS);
    cluster.heal();
    await cluster.waitForMembers(3, CONVERGE_MS);
  }, TEST_MS);

  it('a start that fails rejects with a typed error and kills the nodes it had started', async () => {
    // A stand-in CLI: n0 comes up and stays, every other node fails before it is ready.
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-chaos-'));
    try {
      const fakeCli = join(dir, 'cli.mjs');
      writeFileSync(
        fakeCli,
        `import { writeFileSync } from 'node:fs';
const id = process.argv[process.argv.indexOf('--node-id') + 1];
if (id !== 'n0') process.exit(3);
writeFileSync(${JSON.stringify(join(dir, 'n0.pid'))}, String(process.pid));
console.log(JSON.stringify({ grpc: '127.0.0.1:1', gossip: '127.0.0.1:2' }));
setInterval(() => undefined, 1_000);
`,
      );
      const failed = await ChaosCluster.start(3, { cliPath: fakeCli }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failed).toBeInstanceOf(RingLimitError);
      expect(failed).toMatchObject({ code: 'UNAVAILABLE' });
      expect(isAlive(Number(readFileSync(join(dir, 'n0.pid'), 'utf8')))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, TEST_MS);
});
