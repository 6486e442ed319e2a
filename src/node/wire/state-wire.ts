import { STATE_STRIDE, algorithmImpl } from '../../limiter/algorithms/index.js';
import type { AlgorithmId } from '../../limiter/types.js';
import type { WireEntry } from './frames.js';

const scratch = new Float64Array(STATE_STRIDE);

/**
 * A key's state for the wire: every time cell made relative to the sender's now, so the
 * receiver re-bases it onto its own clock and skew between nodes neither gifts nor
 * steals capacity.
 */
export function toWireEntry(action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, nowMs: number): WireEntry {
  for (let i = 0; i < STATE_STRIDE; i++) scratch[i] = cells[base + i]!;
  algorithmImpl(algorithm).rebase(scratch, 0, -nowMs);
  return { action, key, algorithm, cells: [scratch[0]!, scratch[1]!, scratch[2]!, scratch[3]!] };
}

/** The entry's state on this node's clock, written into `into` (length STATE_STRIDE). */
export function fromWireEntry(entry: WireEntry, nowMs: number, into: Float64Array): Float64Array {
  for (let i = 0; i < STATE_STRIDE; i++) into[i] = entry.cells[i]!;
  algorithmImpl(entry.algorithm as AlgorithmId).rebase(into, 0, nowMs);
  return into;
}
