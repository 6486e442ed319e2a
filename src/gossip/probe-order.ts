import type { Rng } from '../common/rng.js';
import { shuffle } from './shuffle.js';

/**
 * Round-robin over a shuffled member list, reshuffled each round (as memberlist does): every
 * member is probed once per round, in an order an observer cannot predict.
 */
export class ProbeOrder {
  private order: string[] = [];
  private index = 0;

  constructor(private readonly rng: Rng) {}

  /** Next id for which `isCandidate` holds; `candidates` supplies a fresh round. */
  next(candidates: () => string[], isCandidate: (id: string) => boolean): string | undefined {
    for (let round = 0; round < 2; round++) {
      while (this.index < this.order.length) {
        const id = this.order[this.index++];
        if (id !== undefined && isCandidate(id)) return id;
      }
      this.order = shuffle(candidates(), this.rng);
      this.index = 0;
    }
    return undefined;
  }

  /** Put `id` next in line (a member others suspect: our verdict should come quickly). */
  soon(id: string): void {
    if (this.order[this.index] !== id) this.order.splice(this.index, 0, id);
  }
}
