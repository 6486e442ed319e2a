import { RingLimitError } from '../../common/errors.js';
import { batchBudgetDefaults } from './batch-budget.js';
import { itemError, type PublicApiBackend } from './backend.js';
import type { IncomingRequest } from './allow-codec.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';
import { callerGone, decideUnderBudget } from './large-batches.js';
import { BatchRequestReader, encodeBatchResponse, type BatchResult } from './stream-codec.js';

/** Bytes past which an AllowBatch request counts as large (about 100 requests). */
export const SMALL_BATCH_BYTES = batchBudgetDefaults.smallBatchItems * 64;
/** Answers encoded in one step. */
const WRITE_ITEMS = 100;

/**
 * Decides `item` into results[item.id] (its position), its error in its place. One that waits
 * for another member (forwarded to its owner) is handed to `forwarded` first; what fills its
 * place once it is answered goes into `later`.
 */
function decideItem(backend: PublicApiBackend, item: IncomingRequest, results: BatchResult[], forwarded: (answer: Promise<unknown>) => void, later: Promise<void>[]): void {
  const at = item.id;
  try {
    if (item.timestampMs !== undefined && Number.isFinite(item.timestampMs)) backend.recordCallerTime(item.timestampMs);
    const answer = backend.decide(item.request, item.maxWaitMs);
    if (!(answer instanceof Promise)) {
      results[at] = { decision: answer, error: undefined };
      return;
    }
    forwarded(answer);
    later.push(
      answer.then(
        (r) => void (results[at] = { decision: r, error: undefined }),
        (error: unknown) => void (results[at] = { decision: undefined, error: itemError(error) }),
      ),
    );
  } catch (error) {
    results[at] = { decision: undefined, error: itemError(error) };
  }
}

/**
 * The answer to an AllowBatch call (its request's bytes, on `connection`'s share), as the
 * HTTP API answers /v1/allow-batch (http-batch.ts): a large one — startLarge() let it start —
 * runs under the large batches' budget in bounded slices (BatchBudget.run): its requests
 * decoded (all before any is decided: a malformed one fails the call and changes nothing),
 * decided, and its answer encoded. Its requests count as in flight on its connection,
 * refused past maxItemsPerConnection. Throws the call's error.
 */
export async function answerBatch(backend: PublicApiBackend, ledger: CallerLedger, connection: CallerConnection, bytes: Buffer, large: boolean, gone: () => boolean): Promise<Uint8Array> {
  const budget = ledger.largeBatches;
  let reader: BatchRequestReader | undefined;
  const requests: IncomingRequest[] = [];
  await budget.run(large, () => {
    if (gone()) throw callerGone();
    try {
      if (reader === undefined) {
        reader = new BatchRequestReader(bytes); // counts the requests: refused past the cap before any is decoded
        return true;
      }
      const item = reader.next();
      if (item !== undefined) requests.push(item);
      return item !== undefined;
    } catch (error) {
      throw error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed AllowBatch request');
    }
  });
  const results: BatchResult[] = new Array<BatchResult>(requests.length);
  await decideUnderBudget(ledger, connection, requests.length, large, (i, forwarded, later) => decideItem(backend, requests[i]!, results, forwarded, later), gone);
  // A repeated field's items, written apart and joined, are the message written whole.
  const parts: Uint8Array[] = [];
  let from = 0;
  await budget.run(large, () => {
    parts.push(encodeBatchResponse(results.slice(from, from + WRITE_ITEMS)));
    from += WRITE_ITEMS;
    return from < results.length;
  });
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
