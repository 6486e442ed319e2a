import { RingLimitError } from '../../common/errors.js';
import { batchBudgetDefaults } from './batch-budget.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';

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

/** The error of a batch whose caller went away before it was decided whole. */
export function callerGone(): RingLimitError {
  return new RingLimitError('ABORTED', 'the caller went away: the rest of its batch was not decided');
}

/** A large batch that startLarge() let start has ended. */
export function endLarge(ledger: CallerLedger): void {
  ledger.largeBatches.running--;
}

/**
 * Decides a batch's `count` requests in order, on any public surface: in slices under the
 * large batches' budget when `large`, at once otherwise. They count as in flight on
 * `connection` until every answer is in (refused past maxItemsPerConnection, before any is
 * decided). `decide(index, forwarded, later)` decides request `index`: an answer that waits
 * for another member goes to `forwarded` (the budget charges it), and what fills its place
 * once answered into `later`. Once `gone()` says the caller went away (its call cancelled,
 * its socket closed), no further request is decided: nobody would read the answer, and what
 * the batch holds is released at once. Throws ABORTED then.
 */
export async function decideUnderBudget(
  ledger: CallerLedger,
  connection: CallerConnection,
  count: number,
  large: boolean,
  decide: (index: number, forwarded: (answer: Promise<unknown>) => void, later: Promise<void>[]) => void,
  gone: () => boolean = () => false,
): Promise<void> {
  if (ledger.itemsFull(connection, count)) throw new RingLimitError('RESOURCE_EXHAUSTED', `more than ${ledger.limits.maxItemsPerConnection} requests in flight on this connection`);
  ledger.takeItems(connection, count);
  try {
    const later: Promise<void>[] = [];
    let next = 0;
    await ledger.largeBatches.run(large, (forwarded) => {
      if (gone()) return false;
      if (next < count) decide(next++, forwarded, later);
      return next < count;
    });
    if (next < count) throw callerGone();
    await Promise.all(later);
  } finally {
    ledger.itemsDone(connection, count);
  }
}
