import { describe, expect, it } from 'vitest';
import { seededRng } from '../../src/common/rng.js';
import { parseIpAddress, parseSeed } from '../../src/gossip/address.js';
import { encodeValue } from '../../src/gossip/codec.js';
import { defaults } from '../../src/gossip/defaults.js';
import { Keyring } from '../../src/gossip/keyring.js';
import { decodePacket, encodeMessage } from '../../src/gossip/message-codec.js';
import type { Message } from '../../src/gossip/messages.js';
import { frame } from '../../src/gossip/packet.js';
import { invalidDatagram } from './fuzz.js';

const limits = defaults.limits;
const alive = { kind: 'alive', nodeId: 'a', generation: 5, incarnation: 2, address: '127.0.0.1:7000', meta: { grpc: '127.0.0.1:9000' } } as const;
const samples: Message[] = [
  { type: 'ping', from: 'a', seq: 1, target: 'b', updates: [alive] },
  { type: 'ping-req', from: 'a', seq: 2, target: 'c', targetAddress: '[::1]:7002', updates: [] },
  { type: 'ack', from: 'b', seq: 1, updates: [{ kind: 'suspect', nodeId: 'c', generation: 1, incarnation: 0, from: 'a' }] },
  { type: 'nack', from: 'b', seq: 4_294_967_295 },
  { type: 'gossip', from: 'a', updates: [{ kind: 'left', nodeId: 'a', generation: 5, incarnation: 3 }, { kind: 'dead', nodeId: 'd', generation: 1, incarnation: 9, from: 'b' }] },
  { type: 'sync', from: 'a', wantsReply: true, members: [{ nodeId: 'a', address: '127.0.0.1:7000', generation: 5, incarnation: 2, state: 'alive', meta: {} }] },
  { type: 'sync-reply', from: 'b', members: [{ nodeId: 'd', address: '10.0.0.4:7000', generation: 1, incarnation: 9, state: 'dead', meta: { v: '1' } }] },
  { type: 'sync-digest', from: 'c', digest: { a: 0xffff_ffff, b: 0, count: 4097 } },
];

describe('wire codec', () => {
  it('round-trips every message type, with and without a keyring', () => {
    for (const keyring of [undefined, new Keyring([new Uint8Array(16).fill(3)])]) {
      for (const message of samples) {
        const stamp = keyring === undefined ? undefined : { epoch: 7, seq: 42, ts: 1_700_000_000_123.5 };
        const decoded = decodePacket(encodeMessage(message, keyring, stamp), keyring, limits);
        expect(decoded).toEqual({ ok: true, message, stamp, bound: false });
      }
    }
  });

  it('a signed packet bound to its receiver verifies only there; unsigned packets are never bound', () => {
    const keyring = new Keyring([new Uint8Array(16).fill(3)]);
    const stamp = { epoch: 7, seq: 42, ts: 1 };
    for (const message of samples) {
      const bound = encodeMessage(message, keyring, stamp, undefined, 'node-b');
      // The receiver's id is covered by the MAC, not sent: the packet is no bigger.
      expect(bound.length).toBe(encodeMessage(message, keyring, stamp).length);
      expect(decodePacket(bound, keyring, limits, undefined, 'node-b')).toEqual({ ok: true, message, stamp, bound: true });
      expect(decodePacket(bound, keyring, limits, undefined, 'node-c')).toEqual({ ok: false, reason: 'authFailed' });
      expect(decodePacket(bound, keyring, limits)).toEqual({ ok: false, reason: 'authFailed' });
      expect(decodePacket(encodeMessage(message, undefined, undefined, undefined, 'node-b'), undefined, limits, undefined, 'node-b')).toEqual({ ok: true, message, stamp: undefined, bound: false });
    }
    // The bound flag without a MAC is malformed.
    const plain = Uint8Array.from(encodeMessage(samples[0]!, undefined));
    plain[2] = 0x08;
    expect(decodePacket(plain, undefined, limits)).toEqual({ ok: false, reason: 'badVersion' });
  });

  it('rejects, with a reason and without throwing, every kind of malformed packet', () => {
    const cases: [Uint8Array, string][] = [
      [new Uint8Array([]), 'tooShort'],
      [new Uint8Array([1, 2, 3, 4]), 'badMagic'],
      [frame(new Uint8Array([0x92, 0x01]), undefined), 'undecodable'],
      [frame(encodeValue(null), undefined), 'envelopeNotArray'],
      [frame(encodeValue([1, 'a', 1, 'b', null]), undefined), 'updatesNotArray'],
      [frame(encodeValue([2, 'a', 1, 'b', '127.0.0.1:99999', []]), undefined), 'badAddress'],
      [frame(encodeValue([2, 'a', 1, 'b', 'unresolvable.invalid:7000', []]), undefined), 'badAddress'],
      [frame(encodeValue([3, 'a', -1, []]), undefined), 'badSeq'],
      [frame(encodeValue([42, 'a']), undefined), 'unknownType'],
      [frame(encodeValue([5, 'bad id!', []]), undefined), 'badNodeId'],
      [frame(encodeValue([5, 'a', [[0, 'b', 1, 1, '127.0.0.1:1', ['k']]]]), undefined), 'metaOdd'],
      [frame(encodeValue([5, 'a', [[0, 'b', 1, 1, '127.0.0.1:1', ['__proto__', 'x']]]]), undefined), 'badMeta'],
      [frame(encodeValue([5, 'a', [[0, 'b', 1, 1, '127.0.0.1:1', ['k', 'x'.repeat(600)]]]]), undefined), 'badMeta'],
      [frame(encodeValue([6, 'a', 2, []]), undefined), 'badFlag'],
      [frame(encodeValue([8, 'a', 2 ** 32, 0, 3]), undefined), 'badSeq'],
      [frame(encodeValue([8, 'a', 1, 2, 0]), undefined), 'badCount'],
      [frame(encodeValue([8, 'a', 1, 2, limits.maxMembers + 2]), undefined), 'badCount'],
      [frame(encodeValue([8, 'a', 1, 2]), undefined), 'arity'],
      [new Uint8Array(1401).fill(0x52), 'oversize'],
    ];
    for (const [bytes, reason] of cases) expect(decodePacket(bytes, undefined, limits)).toEqual({ ok: false, reason });
  });

  it('enforces the keyring: missing, wrong and unexpected MACs are rejected', () => {
    const ring = new Keyring([new Uint8Array(16).fill(1)]);
    const other = new Keyring([new Uint8Array(16).fill(2)]);
    const message = samples[0]!;
    expect(decodePacket(encodeMessage(message, undefined), ring, limits)).toEqual({ ok: false, reason: 'authMissing' });
    expect(decodePacket(encodeMessage(message, other), ring, limits)).toEqual({ ok: false, reason: 'authFailed' });
    expect(decodePacket(encodeMessage(message, ring), undefined, limits)).toEqual({ ok: false, reason: 'authUnexpected' });
    const tampered = encodeMessage(message, ring);
    tampered[5] = (tampered[5] ?? 0) ^ 0xff;
    expect(decodePacket(tampered, ring, limits)).toEqual({ ok: false, reason: 'authFailed' });
  });

  it('a cluster name travels in every packet: another name, or none, is dropped as otherCluster (with a keyring too)', () => {
    const label = new TextEncoder().encode('prod-eu');
    for (const keyring of [undefined, new Keyring([new Uint8Array(16).fill(3)])]) {
      const stamp = keyring === undefined ? undefined : { epoch: 1, seq: 1, ts: 1 };
      const message = samples[0]!;
      const named = encodeMessage(message, keyring, stamp, label);
      expect(decodePacket(named, keyring, limits, label)).toEqual({ ok: true, message, stamp, bound: false });
      expect(decodePacket(named, keyring, limits, new TextEncoder().encode('staging'))).toEqual({ ok: false, reason: 'otherCluster' });
      expect(decodePacket(named, keyring, limits)).toEqual({ ok: false, reason: 'otherCluster' });
      expect(decodePacket(encodeMessage(message, keyring, stamp), keyring, limits, label)).toEqual({ ok: false, reason: 'otherCluster' });
      const truncated = named.subarray(0, 5);
      expect(decodePacket(truncated, keyring, limits, label).ok).toBe(false);
    }
    // With a keyring the name is covered by the MAC: rewriting it breaks the packet.
    const keyring = new Keyring([new Uint8Array(16).fill(3)]);
    const packet = encodeMessage(samples[0]!, keyring, { epoch: 1, seq: 1, ts: 1 }, new TextEncoder().encode('aaaa'));
    const forged = Uint8Array.from(packet);
    forged.set(new TextEncoder().encode('bbbb'), 4);
    expect(decodePacket(forged, keyring, limits, new TextEncoder().encode('bbbb'))).toEqual({ ok: false, reason: 'authFailed' });
  });

  it('keyring validates keys with clear errors', () => {
    expect(() => new Keyring([])).toThrow(/at least one key/);
    expect(() => new Keyring([new Uint8Array(4)])).toThrow(/16\.\.64 bytes/);
    expect(() => new Keyring(['not base64!!'])).toThrow(/base64/);
    const ring = new Keyring([Buffer.alloc(16, 1).toString('base64')]);
    expect(() => ring.remove(Buffer.alloc(16, 1))).toThrow(/primary/);
  });

  it('never throws on 20,000 generated invalid datagrams', () => {
    const rng = seededRng(99);
    const ring = new Keyring([new Uint8Array(16).fill(5)]);
    for (let i = 0; i < 20_000; i++) {
      const keyring = i % 2 === 0 ? undefined : ring;
      const result = decodePacket(invalidDatagram(rng, 'n0', keyring), keyring, limits);
      expect(result.ok).toBe(false);
    }
  });

  it('parses gossip addresses (IP literals only) and seeds (DNS names allowed)', () => {
    expect(parseIpAddress('127.0.0.1:7000')).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(parseIpAddress('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
    for (const bad of ['127.0.0.1:99999', '127.0.0.1:0', 'localhost:7000', '::1:7000', '127.0.0.1', ':7000', '1.2.3.4:7a']) {
      expect(parseIpAddress(bad)).toBeUndefined();
    }
    expect(parseSeed('localhost:7000')).toEqual({ host: 'localhost', port: 7000 });
    expect(parseSeed('bad host:7000')).toBeUndefined();
  });
});
