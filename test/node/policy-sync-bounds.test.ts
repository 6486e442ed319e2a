import { describe, expect, it } from 'vitest';
import type { Membership } from '../../src/gossip/index.js';
import { PolicySync, policyDigest } from '../../src/node/sync/policy-sync.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { frameLimits } from '../../src/node/wire/codec.js';

function syncWith(text: string, warnings: string[]): PolicySync {
  const membership = { members: () => [], self: { nodeId: 'n1', meta: {} }, updateMeta: () => undefined } as unknown as Membership;
  const transport = { send: () => true } as unknown as PeerTransport;
  return new PolicySync({ membership, transport, apply: () => undefined, warn: (m) => warnings.push(m), now: () => 1 }, { version: 1, digest: policyDigest(text), text, policies: undefined });
}

describe('policy documents between peers (issue 28, finding 7)', () => {
  it('a document larger than a peer frame carries is not sent when pulled, and that is said once', () => {
    const warnings: string[] = [];
    const text = JSON.stringify({ users: { a: 'x'.repeat(frameLimits.maxPolicyTextBytes) } });
    const sync = syncWith(text, warnings);
    const replies: Buffer[] = [];
    for (let i = 0; i < 3; i++) sync.answerPull(i, policyDigest(text), (frame) => replies.push(frame as Buffer));
    expect(replies).toHaveLength(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/more than a peer frame carries/);
    sync.close();
  });

  it('a document from a peer is loaded off the event loop and taken when it is in force, once', async () => {
    const warnings: string[] = [];
    const sync = syncWith('null', warnings);
    const text = JSON.stringify({ defaults: { '*': { limit: 5, window: '1m' } }, users: { a: { weight: 2 } } });
    sync.receive(10, policyDigest(text), text, 'n2');
    sync.receive(10, policyDigest(text), text, 'n2'); // already loading: not loaded twice
    expect(sync.current.version).toBe(1); // not yet: it loads in slices
    for (let i = 0; i < 50 && sync.current.version !== 10; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sync.current.version).toBe(10);
    expect(sync.current.policies?.resolve('a', 'x', undefined)).toMatchObject({ limit: 5, weight: 2 });
    expect(sync.stats.adopted).toBe(1);
    const bad = JSON.stringify({ users: { b: { group: 'gold' } } });
    sync.receive(11, policyDigest(bad), bad, 'n3');
    for (let i = 0; i < 50 && sync.stats.refused === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sync.stats.refused).toBe(1);
    expect(warnings[0]).toMatch(/^refused: policies from n3 \(version 11\): users\.b\.group/);
    sync.close();
  });
});
