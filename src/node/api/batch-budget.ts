/** The fixed parts of the large batches' budget (the shares are callerLimits options: see BatchShare). */
export const batchBudgetDefaults = {
  /** The window a share is a share of: the budget refills at share × windowMs per windowMs and saves up no more than that; a single call counts as waiting for this long after it came. */
  windowMs: 100,
  /** A batch (or its body) of more requests than this is large: it runs under the budget. Smaller ones are single calls. */
  smallBatchItems: 100,
  /** A slice of a large batch runs steps until this much time has passed (or sliceItems steps), then lets the event loop turn. */
  sliceMs: 2,
  sliceItems: 500,
  /** How long a slice waits for the answers of the requests it forwarded before its batch goes on without them. */
  maxForwardWaitMs: 100,
  /** Large batches under way at once on a node (their slices take turns, one per event-loop turn); past it a large batch is refused. */
  maxRunning: 4,
  /**
   * Charged per forwarded answer for its decoding and matching, which run before any of the
   * batch's own code sees it (measured: 0.2 µs to decode a result of a 200-result reply frame).
   */
  answerDecodeMs: 0.001,
} as const;

/** What large batches may take of the event loop (CallerLimits.largeBatchSharePercent and largeBatchShareWithCallsPercent). */
export interface BatchShare {
  /** Percent of the event loop's time while no single call came within the window. */
  sharePercent: number;
  /** Percent while single calls come (one within the window): bulk work then leaves them the rest. */
  withCallsPercent: number;
}

/** What the budget counts, kept in the caller ledger's stats. */
export interface BatchBudgetStats {
  /** Slices of large batches run. */
  largeBatchSlices: number;
  /** Event-loop time charged to large batches, in ms (see BatchBudget). */
  largeBatchBusyMs: number;
}

/**
 * One step of a batch's work (decode a request, decide one, write a part of the answer);
 * returns whether steps remain. A decision that waits for another member (forwarded to its
 * owner) is handed to `forwarded` before anything else waits on it: the budget charges what it
 * costs (its frame's encoding, its answer's decoding and completion), and the slice waits for
 * those answers before its batch goes on, so no more than a slice's worth is ever out.
 */
export type BatchStep = (forwarded: (answer: Promise<unknown>) => void) => boolean;

/**
 * The event-loop budget of large batch work on every public surface (gRPC AllowBatch, HTTP
 * /v1/allow-batch; Envoy requests, at most 64 descriptors, and small batches are single
 * calls). A bucket of event-loop time that refills at the share (BatchShare: a smaller one
 * while single calls come) and saves up one window's worth.
 *
 * What is charged is measured, each stretch of the event loop's time once however many
 * batches are under way:
 * - each slice of a large batch, start to end, and the handing of its answer to its connection;
 * - the encoding of what a slice forwarded to other members: the immediates in which the
 *   forwarder writes its frames, bracketed by two of the budget's own;
 * - the answers to what it forwarded, in every turn in which some land: their completion
 *   (the run of microtasks in which the answers of one reply settle, the batch's own
 *   callbacks included), answerDecodeMs each for the decoding that precedes it, and the
 *   turn's immediates up to one the budget queues after them (where the forwarder sends what
 *   waited for those answers).
 * Other callers' calls served between are not charged, so bulk work is slowed by what it
 * costs, not by the load around it; what is charged may include other immediates of a turn,
 * so it bounds the batches' own cost from above.
 *
 * A large batch runs in bounded slices (run()): at most sliceMs each, one slice per event-loop
 * turn on the whole node (a turn never holds more than one), and only while the bucket is
 * not empty (else its next slice waits for the refill); a slice waits for the answers of what
 * it forwarded (at most maxForwardWaitMs) before its batch goes on. At most maxRunning are
 * under way; past it, or with the bucket empty, a new large batch is refused at once (cheaply:
 * before it is decoded).
 */
export class BatchBudget {
  private tokensMs: number;
  private lastMs: number;
  private singleCallAtMs = -Infinity;
  /** Large batches under way (admitted by the ledger and not ended). */
  running = 0;
  /** Time charged up to: no stretch is charged twice. */
  private chargedTo = -Infinity;
  /** Forwarded requests of large batches awaiting their answers. */
  private awaiting = 0;
  /** While there are: when the current turn's immediates began (a tick queued each turn runs first among them). */
  private ticking = false;
  private tickAt = -Infinity;
  /** Answers landed in the current turn; while the completion of one reply's answers runs (its microtasks), since when. */
  private turnAnswers = 0;
  private turnFrom = 0;
  private completing = false;
  private completionFrom = 0;
  /** Slices waiting for their turn, oldest first. */
  private readonly waiting: (() => void)[] = [];
  private pumping = false;

  constructor(
    private readonly share: BatchShare,
    private readonly stats: BatchBudgetStats = { largeBatchSlices: 0, largeBatchBusyMs: 0 },
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokensMs = (batchBudgetDefaults.windowMs * share.sharePercent) / 100;
    this.lastMs = now();
  }

  /** A single call (or a small batch) came: large batches get the smaller share for a window. */
  singleCall(): void {
    this.singleCallAtMs = this.now();
  }

  /** The share in force at `nowMs`, as a fraction. */
  private rate(nowMs: number): number {
    return (nowMs - this.singleCallAtMs < batchBudgetDefaults.windowMs ? this.share.withCallsPercent : this.share.sharePercent) / 100;
  }

  /** Brings the bucket up to now (refilled at the share); returns what is left. */
  private settle(): number {
    const nowMs = this.now();
    const rate = this.rate(nowMs);
    this.tokensMs = Math.min(batchBudgetDefaults.windowMs * rate, this.tokensMs + (nowMs - this.lastMs) * rate);
    this.lastMs = nowMs;
    return this.tokensMs;
  }

  /** Whether large batches have time left now. */
  hasTime(): boolean {
    return this.settle() > 0;
  }

  /** Whether one more large batch may start now: time left, and fewer than maxRunning under way. */
  mayStart(): boolean {
    return this.running < batchBudgetDefaults.maxRunning && this.hasTime();
  }

  /** Event-loop time taken by large batches, charged directly. */
  spent(ms: number): void {
    this.settle();
    this.tokensMs -= ms;
    this.stats.largeBatchBusyMs += ms;
  }

  /** Runs `work` (e.g. a large batch's answer handed to its connection: written at once to a local caller) and charges the time it takes. */
  charged<T>(work: () => T): T {
    const from = this.now();
    try {
      return work();
    } finally {
      this.charge(from, this.now());
    }
  }

  /** Charges the time from `fromMs` (or from what was charged last, if later) to `toMs`. */
  private charge(fromMs: number, toMs: number): void {
    const from = Math.max(fromMs, this.chargedTo);
    if (toMs > from) this.spent(toMs - from);
    this.chargedTo = Math.max(this.chargedTo, toMs);
  }

  /**
   * Runs a batch's steps (see BatchStep) until none remain. A small batch (`large` false)
   * runs them at once. A large one runs them in bounded slices under the budget (see the
   * class): its steps, and what they forward, are charged to it.
   */
  async run(large: boolean, step: BatchStep): Promise<void> {
    if (!large) {
      while (step(ignore));
      return;
    }
    const out: Promise<unknown>[] = [];
    const forwarded = (answer: Promise<unknown>): void => {
      this.awaitAnswer(answer);
      out.push(answer);
    };
    const { sliceMs, sliceItems, maxForwardWaitMs } = batchBudgetDefaults;
    for (let more = true; more; ) {
      await this.turn();
      this.stats.largeBatchSlices++;
      // The forwarder writes what a slice forwarded in immediates it queues meanwhile: between these two.
      let encodingFrom = Infinity;
      setImmediate(() => void (encodingFrom = this.now()));
      const from = this.now();
      try {
        const until = from + sliceMs;
        for (let steps = 1; (more = step(forwarded)) && steps < sliceItems && this.now() < until; steps++);
      } finally {
        this.charge(from, this.now());
      }
      if (out.length > 0) {
        setImmediate(() => this.charge(encodingFrom, this.now()));
        await settledWithin(out, maxForwardWaitMs);
        out.length = 0;
      }
    }
  }

  /** Watches a forwarded request until its answer lands (see the class). */
  private awaitAnswer(answer: Promise<unknown>): void {
    this.awaiting++;
    if (!this.ticking) {
      this.ticking = true;
      setImmediate(this.tick);
    }
    answer.then(this.answered, this.answered);
  }

  private readonly tick = (): void => {
    this.tickAt = this.now();
    if (this.awaiting > 0) setImmediate(this.tick);
    else this.ticking = false;
  };

  private readonly answered = (): void => {
    this.awaiting--;
    if (this.turnAnswers++ === 0) {
      this.turnFrom = this.now();
      setImmediate(this.closeTurn);
    }
    if (this.completing) return;
    // The answers of one reply are completed in one run of microtasks: this one, queued last, ends it.
    this.completing = true;
    this.completionFrom = this.now();
    queueMicrotask(this.completed);
  };

  private readonly completed = (): void => {
    this.completing = false;
    this.charge(this.completionFrom, this.now());
  };

  /** The end of a turn in which answers landed: their decoding, and the turn's immediates so far. */
  private readonly closeTurn = (): void => {
    this.spent(this.turnAnswers * batchBudgetDefaults.answerDecodeMs);
    this.turnAnswers = 0;
    // From the tick that opened the turn's immediates (one queued the turn before runs first among them).
    this.charge(Math.max(this.tickAt, this.turnFrom), this.now());
  };

  /** Resolves when a slice may run: in the next event-loop turn that has no other slice, once the bucket is not empty. */
  private turn(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.pump();
    });
  }

  private pump(): void {
    if (this.pumping || this.waiting.length === 0) return;
    this.pumping = true;
    const go = (): void => {
      this.pumping = false;
      if (this.settle() <= 0) return this.pump();
      this.waiting.shift()!();
      // Scheduled from this turn's immediates, the next slice runs in the next turn at the earliest.
      this.pump();
    };
    const left = this.settle();
    if (left > 0) setImmediate(go);
    else setTimeout(go, Math.max(1, Math.ceil(-left / this.rate(this.now()))));
  }
}

const ignore = (): void => undefined;

/** Resolves once every one of `promises` has settled, or after `ms`, whichever is first. */
function settledWithin(promises: readonly Promise<unknown>[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void Promise.allSettled(promises).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
