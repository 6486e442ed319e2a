import { describe, expect, it } from 'vitest';
import { isNodeAddress, resolveClientOptions } from '../../src/node/client/client-options.js';

describe('the client’s node addresses', () => {
  it('takes host:port and a Unix socket by absolute path; refuses anything else naming the option', () => {
    expect(resolveClientOptions({ nodes: ['127.0.0.1:7001', 'ringlimit-0.ringlimit:7001', '[::1]:7001', 'unix:/tmp/ringlimit/grpc.sock'] }).nodes).toHaveLength(4);
    const tooLong = `unix:/${'x'.repeat(110)}`;
    for (const bad of [['unix:relative.sock'], ['unix://authority/path.sock'], ['127.0.0.1'], ['127.0.0.1:0'], ['127.0.0.1:65536'], ['unix:/with space'], [tooLong], []]) {
      expect(() => resolveClientOptions({ nodes: bad }), JSON.stringify(bad)).toThrow(/nodes/);
    }
  });

  it('an address learned from a node’s answer is host:port only: nothing grpc-js would dial as another scheme', () => {
    for (const good of ['10.0.0.1:7001', 'node-1.cluster.local:7001', 'ringlimit_node1:7001', '[fe80::1]:7001']) expect(isNodeAddress(good), good).toBe(true);
    for (const bad of ['unix:/tmp/x.sock', 'unix:/tmp/x.sock:80', 'unix-abstract:x:80', 'dns:evil:80', 'dns:///evil:80', 'host:99999', 'host:0', ':7001', 'a b:1']) {
      expect(isNodeAddress(bad), bad).toBe(false);
    }
  });
});
