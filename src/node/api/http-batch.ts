import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { itemError, type PublicApiBackend } from './backend.js';
import { batchBudgetDefaults } from './batch-budget.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';
import { decideUnderBudget, endLarge, mayStartLarge, startLarge } from './large-batches.js';
import { HttpError, decision, toRequest } from './http-json.js';
import { BatchBodyReader } from './batch-body.js';

/** Body bytes past which a /v1/allow-batch request counts as large (about 100 requests of JSON). */
const SMALL_BATCH_JSON_BYTES = batchBudgetDefaults.smallBatchItems * 128;
/** Answers written as JSON in one step. */
const WRITE_ITEMS = 100;

/** JSON already written and encoded, sent as it is. */
export class RawJson {
  constructor(readonly bytes: Buffer) {}
}

type Result = { decision: object } | { error: { code: string; field: string; message: string } };

/** Whether a batch of `bytes` may run now: always when small; a large one while the node has room for answers and large batches have their share left. */
export function mayTakeLarge(ledger: CallerLedger, bytes: number): boolean {
  return bytes <= SMALL_BATCH_JSON_BYTES || mayStartLarge(ledger);
}

const failed = (error: unknown): Result => ({ error: error instanceof HttpError ? { code: error.code, field: error.field, message: error.message } : itemError(error) });

/**
 * Decides requests[index] into results[index], or its error in its place (a bad item fails
 * only itself). One that waits for another member (forwarded to its owner) is handed to
 * `forwarded` first; what fills its place once it is answered goes into `later`.
 */
function decideItem(backend: PublicApiBackend, item: unknown, index: number, results: Result[], forwarded: (answer: Promise<unknown>) => void, later: Promise<void>[]): void {
  try {
    const { request, maxWaitMs } = toRequest(item, `requests[${index}]`);
    const answer = backend.decide(request, maxWaitMs);
    if (!(answer instanceof Promise)) {
      results[index] = { decision: decision(answer) };
      return;
    }
    forwarded(answer);
    later.push(
      answer.then(
        (r: Reservation) => void (results[index] = { decision: decision(r) }),
        (error: unknown) => void (results[index] = failed(error)),
      ),
    );
  } catch (error) {
    results[index] = failed(error);
  }
}

/**
 * POST /v1/allow-batch under the caller bounds the gRPC AllowBatch has: a large batch is
 * refused before its body is read (by its declared length) or parsed while the node holds
 * too many unsent answers or large batches are past their share of the event loop (or as
 * many as may be are under way); a large one runs under that share in bounded slices
 * (BatchBudget.run: its parsing, its decisions and what they forward, its answer's writing);
 * its requests count as in flight on its connection, refused past maxItemsPerConnection.
 */
export async function allowBatch(
  backend: PublicApiBackend,
  ledger: CallerLedger,
  connection: CallerConnection,
  declaredBytes: number,
  read: () => Promise<Buffer>,
  send: (status: number, body: unknown) => void,
  gone: () => boolean,
): Promise<void> {
  // Under way from before its body is read: at most maxRunning large bodies are read at once.
  let started = declaredBytes > SMALL_BATCH_JSON_BYTES;
  connection.lastRequestLarge = started;
  if (started) throwIf(startLarge(ledger));
  try {
    const bytes = await read();
    const large = bytes.length > SMALL_BATCH_JSON_BYTES;
    connection.lastRequestLarge = large;
    if (large && !started) {
      throwIf(startLarge(ledger));
      started = true;
    }
    if (!large) ledger.largeBatches.singleCall();
    const answer = await decideBatch(backend, ledger, connection, bytes, large, gone);
    if (large) ledger.largeBatches.charged(() => send(200, answer));
    else send(200, answer);
  } finally {
    if (started) endLarge(ledger);
  }
}

function throwIf(refusal: RingLimitError | undefined): void {
  if (refusal !== undefined) throw refusal;
}

/** The answer to a batch, as JSON text (see allowBatch); a large one in slices under the large batches' budget. */
async function decideBatch(backend: PublicApiBackend, ledger: CallerLedger, connection: CallerConnection, bytes: Buffer, large: boolean, gone: () => boolean): Promise<RawJson> {
  const budget = ledger.largeBatches;
  // Read in steps under the budget (a 10,000-request body took 3–5 ms to parse in one piece).
  const reader = new BatchBodyReader(bytes);
  await budget.run(large, () => reader.step());
  const requests = reader.result();
  const results: Result[] = new Array<Result>(requests.length);
  await decideUnderBudget(ledger, connection, requests.length, large, (i, forwarded, later) => decideItem(backend, requests[i], i, results, forwarded, later), gone);
  // Written and encoded in parts of WRITE_ITEMS answers: joined, they are the answer's bytes.
  const parts: Buffer[] = [Buffer.from('{"results":[')];
  let from = 0;
  await budget.run(large, () => {
    const part = JSON.stringify(results.slice(from, from + WRITE_ITEMS)).slice(1, -1);
    if (part !== '') parts.push(Buffer.from(from === 0 ? part : `,${part}`));
    from += WRITE_ITEMS;
    return from < results.length;
  });
  parts.push(Buffer.from(']}'));
  return new RawJson(Buffer.concat(parts));
}
