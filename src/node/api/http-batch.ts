import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS, itemError, type PublicApiBackend } from './backend.js';
import { batchBudgetDefaults } from './batch-budget.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';
import { HttpError, decision, parseJson, toRequest } from './http-json.js';

/** Body bytes past which a /v1/allow-batch request counts as large (about 100 requests of JSON). */
const SMALL_BATCH_JSON_BYTES = batchBudgetDefaults.smallBatchItems * 128;
/** Requests decided in one turn of the event loop; a large batch yields between slices, so other callers' calls run in between. */
const SLICE_ITEMS = 500;

/** JSON text already written, sent as it is. */
export class RawJson {
  constructor(readonly text: string) {}
}

type Result = { decision: object } | { error: { code: string; field: string; message: string } };

/** Whether a batch of `bytes` may run now: always when small; a large one while the node has room for answers and large batches have their share left. */
export function mayTakeLarge(ledger: CallerLedger, bytes: number): boolean {
  return bytes <= SMALL_BATCH_JSON_BYTES || (ledger.largeBatches.running === 0 && !ledger.nodeFull() && ledger.largeBatches.admit(Infinity));
}

/** The next turn of the event loop: other callers' work runs first. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function refuseLarge(ledger: CallerLedger): never {
  if (ledger.nodeFull()) {
    ledger.refusedForUnsent();
    throw new RingLimitError('RESOURCE_EXHAUSTED', 'this node holds too many answers its callers have not read: retry, or send smaller batches');
  }
  ledger.stats.refusedLarge++;
  throw new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`);
}

const failed = (error: unknown): Result => ({ error: error instanceof HttpError ? { code: error.code, field: error.field, message: error.message } : itemError(error) });

/** One request's decision, or its error in its place (a bad item fails only itself). */
function decideItem(backend: PublicApiBackend, item: unknown, index: number, into: Promise<Result>[]): void {
  try {
    const { request, maxWaitMs } = toRequest(item, `requests[${index}]`);
    const answer = backend.decide(request, maxWaitMs);
    into.push(answer instanceof Promise ? answer.then((r: Reservation): Result => ({ decision: decision(r) }), failed) : Promise.resolve({ decision: decision(answer) }));
  } catch (error) {
    into.push(Promise.resolve(failed(error)));
  }
}

/**
 * POST /v1/allow-batch under the caller bounds the gRPC AllowBatch has: a large batch is
 * refused before its body is read (by its declared length) or parsed while the node holds
 * too many unsent answers or large batches are past their share of the event loop; what one
 * takes (parsing, its decisions, in slices of SLICE_ITEMS with other callers served between
 * them, and its answer's writing) is spent from that share; its requests count as in flight
 * on its connection, refused past maxItemsPerConnection.
 */
export async function allowBatch(
  backend: PublicApiBackend,
  ledger: CallerLedger,
  connection: CallerConnection,
  declaredBytes: number,
  read: () => Promise<Buffer>,
  send: (status: number, body: unknown) => void,
): Promise<void> {
  connection.lastRequestLarge = declaredBytes > SMALL_BATCH_JSON_BYTES;
  if (!mayTakeLarge(ledger, declaredBytes)) refuseLarge(ledger);
  const bytes = await read();
  const large = bytes.length > SMALL_BATCH_JSON_BYTES;
  connection.lastRequestLarge = large;
  if (!mayTakeLarge(ledger, bytes.length)) refuseLarge(ledger);
  if (large) ledger.largeBatches.running++;
  try {
    send(200, await decideBatch(backend, ledger, connection, bytes, large));
  } finally {
    if (large) ledger.largeBatches.running--;
  }
}

/**
 * The answer to a batch, as JSON text (see allowBatch): its decisions and its answer's
 * writing in slices of SLICE_ITEMS, the time each slice of a large batch takes spent from
 * the large batches' share.
 */
async function decideBatch(backend: PublicApiBackend, ledger: CallerLedger, connection: CallerConnection, bytes: Buffer, large: boolean): Promise<RawJson> {
  let started = performance.now();
  const slice = async (): Promise<void> => {
    if (large) ledger.largeBatches.spent(performance.now() - started);
    await nextTurn();
    started = performance.now();
  };
  const body = parseJson(bytes);
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (typeof body !== 'object' || body === null || !Array.isArray(requests)) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', 'the body must be { "requests": [ ... ] }');
  if (requests.length > MAX_BATCH_ITEMS) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', `at most ${MAX_BATCH_ITEMS} requests per batch`);
  const count = requests.length;
  if (ledger.itemsFull(connection, count)) throw new RingLimitError('RESOURCE_EXHAUSTED', `more than ${ledger.limits.maxItemsPerConnection} requests in flight on this connection`);
  ledger.takeItems(connection, count);
  let results: Result[];
  try {
    const answers: Promise<Result>[] = [];
    for (let from = 0; from < count; from += SLICE_ITEMS) {
      if (from > 0 && large) await slice();
      const to = Math.min(count, from + SLICE_ITEMS);
      for (let i = from; i < to; i++) decideItem(backend, requests[i], i, answers);
    }
    if (large) await slice();
    results = await Promise.all(answers);
  } finally {
    ledger.itemsDone(connection, count);
  }
  const parts: string[] = [];
  for (let from = 0; from < results.length; from += SLICE_ITEMS) {
    if (from > 0 && large) await slice();
    parts.push(JSON.stringify(results.slice(from, from + SLICE_ITEMS)).slice(1, -1));
  }
  if (large) ledger.largeBatches.spent(performance.now() - started);
  return new RawJson(`{"results":[${parts.filter((p) => p !== '').join(',')}]}`);
}
