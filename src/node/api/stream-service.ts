import type * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { itemError, toServiceError, type PublicApiBackend } from './backend.js';
import type { IncomingRequest } from './allow-codec.js';
import { decodeStreamRequest, encodeStreamResponse, holdsMoreThan, type OutgoingResult } from './stream-codec.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';
import { batchBudgetDefaults } from './batch-budget.js';

/** Requests awaiting an answer on one stream (forwarded to their owners); past it, items are refused. */
export const MAX_AWAITING_PER_STREAM = 100_000;

/**
 * A message of more requests than this (the client's default maxBatchSize) runs under the
 * large batches' budget, in slices, with its stream paused meanwhile; smaller ones are
 * decided at once, as callers' own calls batched by their client.
 */
export const LARGE_STREAM_MESSAGE_ITEMS = 1_000;

/** AllowStream with its messages as bytes (see stream-codec.ts). */
export type AllowStreamCall = grpc.ServerDuplexStream<Buffer, Uint8Array>;

/**
 * The serving end of AllowStream for one call. What is decided at once (keys owned here)
 * goes back in one message per incoming message, which also counts that message as
 * processed (even when it carries no result); answers that come later (forwarded to
 * their owners) are gathered and sent once per event-loop turn.
 */
class StreamAnswers {
  private ready: OutgoingResult[] = [];
  /** Request messages served since the last response message. */
  private processed = 0;
  private awaiting = 0;
  private flushScheduled = false;
  /** Reading paused until the answers written so far drain. */
  private paused = false;
  private readonly resume = (): void => {
    this.paused = false;
    if (!this.gone && !this.largeUnderWay) this.call.resume();
  };
  private halfClosed = false;
  private gone = false;
  /** A large message is being served in slices: the stream stays paused until it is done. */
  private largeUnderWay = false;
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(
    private readonly backend: PublicApiBackend,
    private readonly call: AllowStreamCall,
    private readonly ledger: CallerLedger,
    private readonly connection: CallerConnection,
  ) {}

  serve(bytes: Buffer): void {
    if (this.gone) return;
    let large: boolean;
    try {
      large = holdsMoreThan(bytes, LARGE_STREAM_MESSAGE_ITEMS);
    } catch (error) {
      this.fail(error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed AllowStream message'));
      return;
    }
    if (large) {
      this.serveLarge(bytes);
      return;
    }
    // A stream's messages are callers' own calls, batched by their client: while they come, large batches get their smaller share.
    this.ledger.largeBatches.singleCall();
    const items = this.decode(bytes);
    if (items === undefined) return;
    for (const item of items) this.serveItem(item);
    this.processed++;
    this.flush();
  }

  /**
   * A message of more requests than a client batches (LARGE_STREAM_MESSAGE_ITEMS): decoded,
   * then decided in slices under the large batches' budget, as an AllowBatch is; the stream
   * reads nothing more until it is done (HTTP/2 holds the caller's next messages).
   */
  private serveLarge(bytes: Buffer): void {
    this.largeUnderWay = true;
    this.call.pause();
    let items: IncomingRequest[] | undefined;
    let next = 0;
    void this.ledger.largeBatches
      .run(true, (forwarded) => {
        if (this.gone) return false;
        if (items === undefined) {
          items = this.decode(bytes);
          return items !== undefined && items.length > 0;
        }
        const answer = this.serveItem(items[next++]!);
        if (answer !== undefined) forwarded(answer);
        // Its answers go out as they are decided, a slice's worth at a time, not all in one message at the end.
        if (this.ready.length >= batchBudgetDefaults.sliceItems) this.flush();
        return next < items.length;
      })
      .then(
        () => {
          this.largeUnderWay = false;
          if (this.gone) return;
          this.processed++;
          this.flush();
          if (!this.paused && !this.gone) this.call.resume();
        },
        () => {
          // Nothing in a slice is expected to throw; if something does, this stream ends, not the node.
          this.largeUnderWay = false;
          if (!this.gone) this.fail(new RingLimitError('INTERNAL', 'a large AllowStream message could not be served'));
        },
      );
  }

  /** The message's requests, or undefined when it is malformed (the stream has then failed). */
  private decode(bytes: Buffer): IncomingRequest[] | undefined {
    try {
      return decodeStreamRequest(bytes);
    } catch (error) {
      this.fail(error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed AllowStream message'));
      return undefined;
    }
  }

  /** Decides one request: answered now (into the next response message), or later; returns the answer that comes later. */
  private serveItem(item: IncomingRequest): Promise<Reservation> | undefined {
    const id = item.id;
    if (this.awaiting >= MAX_AWAITING_PER_STREAM) {
      this.ready.push({ id, decision: undefined, error: itemError(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${MAX_AWAITING_PER_STREAM} requests awaiting an answer on this stream`)) });
      return undefined;
    }
    if (this.ledger.itemsFull(this.connection, 1)) {
      this.ready.push({ id, decision: undefined, error: itemError(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.ledger.limits.maxItemsPerConnection} requests in flight on this connection`)) });
      return undefined;
    }
    if (item.timestampMs !== undefined && Number.isFinite(item.timestampMs)) this.backend.recordCallerTime(item.timestampMs);
    let answer: Reservation | Promise<Reservation>;
    try {
      answer = this.backend.decide(item.request, item.maxWaitMs);
    } catch (error) {
      this.ready.push({ id, decision: undefined, error: itemError(error) });
      return undefined;
    }
    if (!(answer instanceof Promise)) {
      this.ready.push({ id, decision: answer, error: undefined });
      return undefined;
    }
    this.awaiting++;
    this.ledger.takeItems(this.connection, 1);
    answer.then(
      (r) => this.answerLater({ id, decision: r, error: undefined }),
      (error: unknown) => this.answerLater({ id, decision: undefined, error: itemError(error) }),
    );
    return answer;
  }

  /** The caller finished sending: end the stream once everything is answered. */
  end(): void {
    this.halfClosed = true;
    this.flush();
  }

  abandon(): void {
    this.gone = true;
    this.ready = [];
  }

  private answerLater(result: OutgoingResult): void {
    this.awaiting--;
    this.ledger.itemsDone(this.connection, 1);
    if (this.gone) return;
    this.ready.push(result);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private flush(): void {
    if (this.gone) return;
    if (this.ready.length > 0 || this.processed > 0) {
      const room = this.call.write(encodeStreamResponse(this.ready, this.processed, this.backend.ringDigest()));
      this.ready = [];
      this.processed = 0;
      // Back-pressure: a caller that does not read its answers gets no more of its requests read (HTTP/2 holds them in the caller).
      if (!room && !this.paused) {
        this.paused = true;
        this.call.pause();
        this.call.once('drain', this.resume);
      }
    }
    if (this.halfClosed && this.awaiting === 0 && !this.largeUnderWay) {
      this.gone = true;
      this.call.end();
    }
  }

  private fail(error: RingLimitError): void {
    this.gone = true;
    this.call.emit('error', toServiceError(error));
  }
}

/** Serves one AllowStream call until the caller ends it or goes away. */
export function serveAllowStream(backend: PublicApiBackend, call: AllowStreamCall, ledger: CallerLedger, connection: CallerConnection): void {
  const answers = new StreamAnswers(backend, call, ledger, connection);
  call.on('data', (bytes: Buffer) => answers.serve(bytes));
  call.on('end', () => answers.end());
  call.on('error', () => answers.abandon());
  call.on('cancelled', () => answers.abandon());
}
