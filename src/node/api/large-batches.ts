import { RingLimitError } from '../../common/errors.js';
import { batchBudgetDefaults } from './batch-budget.js';
import type { CallerLedger } from './caller-ledger.js';

/**
 * A large batch asks to start, on any public surface (gRPC AllowBatch, HTTP /v1/allow-batch):
 * undefined when it may, counted under way until endLarge(); otherwise the refusal to answer
 * it with (counted): the node holds too many unsent answers, or large batches are past their
 * share of the event loop or as many as may be are under way (BatchBudget).
 */
export function startLarge(ledger: CallerLedger): RingLimitError | undefined {
  if (ledger.nodeFull()) {
    ledger.refusedForUnsent();
    return new RingLimitError('RESOURCE_EXHAUSTED', 'this node holds too many answers its callers have not read: retry, or send smaller batches');
  }
  if (!ledger.largeBatches.mayStart()) {
    ledger.stats.refusedLarge++;
    return new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`);
  }
  ledger.largeBatches.running++;
  return undefined;
}

/** Whether a large batch could start now (startLarge() would let it); counts nothing. */
export function mayStartLarge(ledger: CallerLedger): boolean {
  return !ledger.nodeFull() && ledger.largeBatches.mayStart();
}

/** A large batch that startLarge() let start has ended. */
export function endLarge(ledger: CallerLedger): void {
  ledger.largeBatches.running--;
}
