/**
 * One measurement for bench/compare.ts, in a process of its own: the node paths of the
 * build in argv[2] (a dist folder compiled from src/), printed as one JSON line.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measurePaths, type BenchClient, type BenchNode, type NodeModule } from './node-paths.js';

/** The package's entry (dist/index.js): the same in every version, wherever the files inside it move. */
interface BuiltPackage {
  createNode(options?: Record<string, unknown>): Promise<BenchNode>;
  RingLimitClient: new (options: { nodes: string[]; preferFirst: boolean; ringAware: boolean }) => BenchClient;
}

async function main(): Promise<void> {
  const [dist, rounds = '2'] = process.argv.slice(2);
  if (dist === undefined) throw new Error('usage: compare-child <dist folder> [rounds]');
  const pkg = (await import(pathToFileURL(join(dist, 'index.js')).href)) as BuiltPackage;
  const mod: NodeModule = {
    createNode: (options) => pkg.createNode(options),
    newClient: (nodes) => new pkg.RingLimitClient({ nodes, preferFirst: true, ringAware: false }),
  };
  const rates = await measurePaths(mod, Number(rounds), (line) => console.error(line));
  console.log(JSON.stringify(rates));
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
