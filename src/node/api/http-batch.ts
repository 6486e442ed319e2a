import { RingLimitError } from '../../common/errors.js';
import { MAX_BATCH_ITEMS, itemError, type PublicApiBackend } from './backend.js';
import { batchBudgetDefaults } from './batch-budget.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';
import { HttpError, decideOne, decision, parseJson } from './http-json.js';

/** Body bytes past which a /v1/allow-batch request counts as large (about 100 requests of JSON). */
const SMALL_BATCH_JSON_BYTES = batchBudgetDefaults.smallBatchItems * 128;

/**
 * POST /v1/allow-batch under the caller bounds the gRPC AllowBatch has: a large batch is
 * refused before it is parsed while the node holds too many unsent answers or large batches
 * are past their share of the event loop (and what it takes, parsing, synchronous decisions
 * and the answer's writing, is spent from that share); its requests count as in flight on its
 * connection, refused past maxItemsPerConnection.
 */
export async function allowBatch(backend: PublicApiBackend, ledger: CallerLedger, connection: CallerConnection, bytes: Buffer, send: (status: number, body: unknown) => void): Promise<void> {
  const large = bytes.length > SMALL_BATCH_JSON_BYTES;
  connection.lastRequestLarge = large;
  if (large && ledger.nodeFull()) {
    ledger.refusedForUnsent();
    throw new RingLimitError('RESOURCE_EXHAUSTED', 'this node holds too many answers its callers have not read: retry, or send smaller batches');
  }
  if (large && !ledger.largeBatches.admit(Infinity)) {
    ledger.stats.refusedLarge++;
    throw new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`);
  }
  const started = large ? performance.now() : 0;
  const body = parseJson(bytes);
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (typeof body !== 'object' || body === null || !Array.isArray(requests)) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', 'the body must be { "requests": [ ... ] }');
  if (requests.length > MAX_BATCH_ITEMS) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', `at most ${MAX_BATCH_ITEMS} requests per batch`);
  const count = requests.length;
  if (ledger.itemsFull(connection, count)) throw new RingLimitError('RESOURCE_EXHAUSTED', `more than ${ledger.limits.maxItemsPerConnection} requests in flight on this connection`);
  ledger.takeItems(connection, count);
  let results: object[];
  try {
    const answers = Promise.all(
      requests.map((item: unknown, i) =>
        decideOne(backend, item, `requests[${i}]`).then(
          (r) => ({ decision: decision(r) }),
          (error: unknown) => ({ error: error instanceof HttpError ? { code: error.code, field: error.field, message: error.message } : itemError(error) }),
        ),
      ),
    );
    if (large) ledger.largeBatches.spent(performance.now() - started);
    results = await answers;
  } finally {
    ledger.itemsDone(connection, count);
  }
  const encoding = large ? performance.now() : 0;
  send(200, { results });
  if (large) ledger.largeBatches.spent(performance.now() - encoding);
}
