import type * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS, fromWire, itemError, toServiceError, toWire, type PublicApiBackend } from './backend.js';
import type { WireAllowRequest, WireAllowStreamRequest, WireAllowStreamResponse, WireStreamedResult } from './proto.js';

/** Requests awaiting an answer on one stream (forwarded to their owners); past it, items are refused. */
export const MAX_AWAITING_PER_STREAM = 100_000;

export type AllowStreamCall = grpc.ServerDuplexStream<WireAllowStreamRequest, WireAllowStreamResponse>;

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The serving end of AllowStream for one call. What is decided at once (keys owned here)
 * goes back in one message per incoming message, which also counts that message as
 * processed (even when it carries no result); answers that come later (forwarded to
 * their owners) are gathered and sent once per event-loop turn.
 */
class StreamAnswers {
  private ready: WireStreamedResult[] = [];
  /** Request messages served since the last response message. */
  private processed = 0;
  private awaiting = 0;
  private flushScheduled = false;
  private halfClosed = false;
  private gone = false;
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(
    private readonly backend: PublicApiBackend,
    private readonly call: AllowStreamCall,
  ) {}

  serve(message: WireAllowStreamRequest): void {
    const items = message?.requests ?? [];
    if (!Array.isArray(items) || items.length > MAX_BATCH_ITEMS) {
      this.fail(new RingLimitError('INVALID_ARGUMENT', `requests: at most ${MAX_BATCH_ITEMS} per message`, 'requests'));
      return;
    }
    for (const item of items) {
      const id = item?.id;
      if (!isId(id)) continue; // no id to answer with: nothing can be sent back for it
      if (this.awaiting >= MAX_AWAITING_PER_STREAM) {
        this.ready.push({ id, error: itemError(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${MAX_AWAITING_PER_STREAM} requests awaiting an answer on this stream`)) });
        continue;
      }
      let answer: Reservation | Promise<Reservation>;
      try {
        answer = this.decide(item.request);
      } catch (error) {
        this.ready.push({ id, error: itemError(error) });
        continue;
      }
      if (answer instanceof Promise) {
        this.awaiting++;
        answer.then(
          (r) => this.answerLater({ id, decision: toWire(r) }),
          (error: unknown) => this.answerLater({ id, error: itemError(error) }),
        );
      } else {
        this.ready.push({ id, decision: toWire(answer) });
      }
    }
    this.processed++;
    this.flush();
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

  private decide(w: WireAllowRequest | undefined): Reservation | Promise<Reservation> {
    if (typeof w !== 'object' || w === null) throw new RingLimitError('INVALID_ARGUMENT', 'request: missing', 'request');
    if (w.timestampMs !== undefined && Number.isFinite(w.timestampMs)) this.backend.recordCallerTime(w.timestampMs);
    return this.backend.decide(fromWire(w), w.maxWaitMs);
  }

  private answerLater(result: WireStreamedResult): void {
    this.awaiting--;
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
      this.call.write({ results: this.ready, processed: this.processed });
      this.ready = [];
      this.processed = 0;
    }
    if (this.halfClosed && this.awaiting === 0) {
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
export function serveAllowStream(backend: PublicApiBackend, call: AllowStreamCall): void {
  const answers = new StreamAnswers(backend, call);
  call.on('data', (message: WireAllowStreamRequest) => answers.serve(message));
  call.on('end', () => answers.end());
  call.on('error', () => answers.abandon());
  call.on('cancelled', () => answers.abandon());
}
