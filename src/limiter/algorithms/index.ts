import { AlgorithmId } from '../types.js';
import { fixedWindow } from './fixed-window.js';
import { gcra } from './gcra.js';
import { slidingWindow } from './sliding-window.js';
import type { AlgorithmImpl } from './step.js';
import { tokenBucket } from './token-bucket.js';

/** Indexed by AlgorithmId. */
export const algorithms: readonly AlgorithmImpl[] = [tokenBucket, gcra, slidingWindow, fixedWindow];

export function algorithmImpl(id: AlgorithmId): AlgorithmImpl {
  return algorithms[id]!;
}

export { FRESH_AT, NO_WAIT, STATE_STRIDE, newStepOut, reservationOf, type AlgorithmImpl, type StepOut } from './step.js';
