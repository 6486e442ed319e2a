import { createInterface } from 'node:readline';
import { systemClock } from '../common/clock.js';
import type { NodeOptionsInput } from '../node/options.js';
import { ChaosClock, FaultRules, FaultyPacketTransport, FaultyPeerTransport } from './faults.js';

export interface HarnessFaults {
  rules: FaultRules;
  clock: ChaosClock;
}

/** Fault commands, one JSON object per stdin line. */
export type FaultCommand =
  | { op: 'block'; gossipTo?: string[]; gossipFrom?: string[]; peersTo?: string[]; peersFrom?: string[] }
  | { op: 'heal' }
  | { op: 'clock'; offsetMs: number; driftPpm: number }
  | { op: 'stats' };

/** Puts fault injection into a node's seams (transports and clock). */
export function enableHarness(options: NodeOptionsInput): HarnessFaults {
  const rules = new FaultRules();
  const clock = new ChaosClock(options.clock ?? systemClock);
  options.clock = clock;
  options.wrapPeerTransport = (t) => new FaultyPeerTransport(t, rules);
  options.wrapGossipTransport = (t) => new FaultyPacketTransport(t, rules);
  return { rules, clock };
}

export function applyFaultCommand(faults: HarnessFaults, command: FaultCommand): void {
  switch (command.op) {
    case 'block':
      for (const a of command.gossipTo ?? []) faults.rules.gossipSendBlocked.add(a);
      for (const a of command.gossipFrom ?? []) faults.rules.gossipReceiveBlocked.add(a);
      for (const a of command.peersTo ?? []) faults.rules.peerSendBlocked.add(a);
      for (const a of command.peersFrom ?? []) faults.rules.peerReceiveBlocked.add(a);
      return;
    case 'heal':
      faults.rules.heal();
      return;
    case 'clock':
      faults.clock.set(command.offsetMs, command.driftPpm);
      return;
    case 'stats':
      return; // answered by the listener, which has the node
  }
}

/** Reads fault commands from stdin; answers each with {"ok":true} or {"ok":false,"error":…} on stdout. */
export function listenForFaultCommands(faults: HarnessFaults, stats: () => unknown): void {
  const lines = createInterface({ input: process.stdin });
  // The harness keeps this pipe open: it must not keep the process alive once the node has stopped.
  process.stdin.unref?.();
  lines.on('line', (line) => {
    try {
      const command = JSON.parse(line) as FaultCommand;
      applyFaultCommand(faults, command);
      const extra = command.op === 'stats' ? { stats: stats(), dropped: faults.rules.dropped } : {};
      process.stdout.write(`${JSON.stringify({ ok: true, op: command.op, ...extra })}\n`);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
    }
  });
}
