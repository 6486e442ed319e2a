import { describe, expect, it } from 'vitest';
import { isNodeAddress, resolveClientOptions } from '../../src/node/client/client-options.js';

describe('the client’s node addresses', () => {
  it('takes host:port and a Unix socket by absolute path; refuses anything else naming the option', () => {
    expect(resolveClientOptions({ nodes: ['127.0.0.1:7001', 'unix:/tmp/ringlimit/grpc.sock'] }).nodes).toHaveLength(2);
    for (const bad of [['unix:relative.sock'], ['127.0.0.1'], ['unix:/with space'], []]) {
      expect(() => resolveClientOptions({ nodes: bad })).toThrow(/nodes/);
    }
  });

  it('a Unix socket is never taken from a node’s answer (learned owners are host:port only)', () => {
    expect(isNodeAddress('10.0.0.1:7001')).toBe(true);
    expect(isNodeAddress('unix:/tmp/x.sock')).toBe(false);
  });
});
