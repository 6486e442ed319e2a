import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { ChaosClock, FaultRules, FaultyPacketTransport, FaultyPeerTransport } from '../../src/chaos/faults.js';
import { evaluate, type LoggedDecision } from '../../src/chaos/model.js';
import { allowedPerSecond } from '../../src/chaos/report.js';
import type { PacketTransport } from '../../src/gossip/index.js';
import type { FrameHandler, PeerTransport } from '../../src/node/transport/peer-transport.js';

const d = (sentAtMs: number, key: number, outcome: number, latencyMs = 1): LoggedDecision => ({ sentAtMs, key, outcome, latencyMs });

describe('chaos reference model', () => {
  it('counts allowed past the limit as over-admission, by phase', () => {
    const log = [d(1, 0, 1), d(2, 0, 1), d(3, 0, 1), d(50, 0, 1), d(150, 0, 1), d(4, 1, 1), d(5, 1, 0)];
    const a = evaluate(log, 2, { faultAtMs: 10, faultEndMs: 100 });
    // key 0: 5 allowed, limit 2 → 3 over (t=3 before, t=50 during, t=150 after); key 1: 1 allowed, 1 rejected → 1 under.
    expect(a.overUnits).toBe(3);
    expect(a.overByPhase).toEqual({ before: 1, during: 1, after: 1 });
    expect(a.underUnits).toBe(1);
    expect(a.overPct).toBeCloseTo(75, 6);
    expect(a.underPct).toBeCloseTo(25, 6);
    expect(a.underByPhase).toEqual({ before: 1, during: 0, after: 0 });
  });

  it('under-admission by phase counts refusals made while the key had room, even if made up for later', () => {
    // limit 3. Key 0: 1 allowed before; refused twice during the fault (room left both times); allowed twice after:
    // it reaches its limit, so nothing is under-admitted at the end, but 2 refusals during the fault had room.
    // Key 1: 1 allowed, then refused 4 times during the fault: only 2 of them had room (an exact limiter stops at 3).
    const log = [d(1, 0, 1), d(20, 0, 0), d(30, 0, 0), d(150, 0, 1), d(160, 0, 1), d(2, 1, 1), d(40, 1, 0), d(41, 1, 0), d(42, 1, 0), d(43, 1, 0)];
    const a = evaluate(log, 3, { faultAtMs: 10, faultEndMs: 100 });
    expect(a.underUnits).toBe(2);
    expect(a.underByPhase).toEqual({ before: 0, during: 4, after: 0 });
    expect(a.underDuringPct).toBeCloseTo((100 * 4) / 6, 6);
    expect(a.overUnits).toBe(0);
  });

  it('an exact run scores zero both ways, and errors and latency are reported', () => {
    const log = [d(1, 0, 1, 2), d(2, 0, 1, 4), d(3, 0, 0, 6), d(4, 0, -1, 100)];
    const a = evaluate(log, 2, { faultAtMs: Infinity, faultEndMs: Infinity });
    expect(a.overUnits + a.underUnits).toBe(0);
    expect(a.errors).toBe(1);
    expect(a.maxMs).toBe(6);
  });

  it('the p99 after warm-up leaves out what was sent in the first 2 s of load', () => {
    const log = [d(0, 0, 1, 500), d(1_000, 0, 1, 400), ...Array.from({ length: 100 }, (_, i) => d(2_000 + i, 0, 0, 3))];
    const a = evaluate(log, 1_000, { faultAtMs: Infinity, faultEndMs: Infinity });
    expect(a.p99Ms).toBe(400);
    expect(a.p99WarmMs).toBe(3);
  });

  it('allowedPerSecond covers the whole run, including seconds with nothing allowed', () => {
    const s = allowedPerSecond([d(0, 0, 1), d(500, 0, 1), d(2500, 0, 0)], 1000, 2000, 2);
    expect(s.allowed).toEqual([2, 0, 0]);
    expect(s.cumulative).toEqual([2, 2, 2]);
    expect(s.faultAtS).toBe(1);
  });
});

describe('fault injection seams', () => {
  it('drops peer frames to and from blocked nodes silently, and heals', () => {
    const sent: string[] = [];
    let handler: FrameHandler = () => undefined;
    const inner: PeerTransport = {
      send: (address) => (sent.push(address), true),
      onFrame: (h) => {
        handler = h;
      },
      onPeerDown: () => undefined,
      disconnect: () => undefined,
      close: async () => undefined,
    };
    const rules = new FaultRules();
    const faulty = new FaultyPeerTransport(inner, rules);
    const got: string[] = [];
    faulty.onFrame((_f, _r, from) => got.push(from));
    rules.peerSendBlocked.add('10.0.0.2:1');
    rules.peerReceiveBlocked.add('n2');
    expect(faulty.send('10.0.0.2:1', new Uint8Array(1))).toBe(true);
    faulty.send('10.0.0.3:1', new Uint8Array(1));
    handler(new Uint8Array(1), () => undefined, 'n2');
    handler(new Uint8Array(1), () => undefined, 'n3');
    expect(sent).toEqual(['10.0.0.3:1']);
    expect(got).toEqual(['n3']);
    expect(rules.dropped).toBe(2);
    rules.heal();
    faulty.send('10.0.0.2:1', new Uint8Array(1));
    expect(sent).toEqual(['10.0.0.3:1', '10.0.0.2:1']);
  });

  it('drops gossip datagrams one way only when asked', () => {
    const sent: string[] = [];
    let receive: (b: Uint8Array, from: string) => void = () => undefined;
    const inner: PacketTransport = {
      localAddress: '127.0.0.1:1',
      send: (_b, address) => void sent.push(address),
      onPacket: (h) => {
        receive = h;
      },
      close: async () => undefined,
    };
    const rules = new FaultRules();
    const faulty = new FaultyPacketTransport(inner, rules);
    const got: string[] = [];
    faulty.onPacket((_b, from) => got.push(from));
    rules.gossipSendBlocked.add('127.0.0.1:2');
    faulty.send(new Uint8Array(1), '127.0.0.1:2');
    receive(new Uint8Array(1), '127.0.0.1:2');
    expect(sent).toEqual([]);
    expect(got).toEqual(['127.0.0.1:2']);
  });

  it('the chaos clock applies offset and drift from when they are set', () => {
    const base = new ManualClock(1_000_000);
    const clock = new ChaosClock(base);
    clock.set(5_000, 100);
    expect(clock.now()).toBe(1_005_000);
    base.advance(1_000_000);
    expect(clock.now()).toBeCloseTo(2_005_100, 6);
  });
});
