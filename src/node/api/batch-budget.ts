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
 * owner) goes into `forwarded`: the budget charges what it costs (its frame's encoding, its
 * answer's decoding and completion), and the slice waits for those answers before its batch
 * goes on, so no more than a slice's worth is ever out.
 */
export type BatchStep = (forwarded: Promise<unknown>[]) => boolean;

/** The event loop's busy time so far, in ms (it grows only while the loop is not waiting for I/O). */
const loopBusyMs = (): number => performance.eventLoopUtilization().active;

/**
 * The event-loop budget of large batch work on every public surface (gRPC AllowBatch, HTTP
 * /v1/allow-batch; Envoy requests, at most 64 descriptors, and small batches are single
 * calls). A bucket of event-loop time that refills at the share (BatchShare: a smaller one
 * while single calls come) and saves up one window's worth.
 *
 * What is charged is measured, as the event loop's busy time (performance.eventLoopUtilization),
 * and no stretch of it twice however many batches are under way:
 * - each slice of a large batch, start to end;
 * - the encoding of what a slice forwarded: the turn's immediates in which the forwarder
 *   writes its frames, bracketed by two of the budget's own;
 * - the answers to what it forwarded: every turn in which one of them lands, from the turn's
 *   start (the previous turn's immediates) through its decoding and completion to the end of
 *   that turn's immediates (where the forwarder sends what waited for those answers).
 * Turns in which none of its answers land are not charged. Other callers' work in a charged
 * turn is charged to bulk too, so this bounds the batches' own cost from above: bulk work never
 * gets more than its share.
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
  /** Busy time charged up to: no stretch is charged twice. */
  private chargedTo: number;
  /** Forwarded requests of large batches awaiting their answers, and the busy time at the start of the current turn while there are. */
  private awaiting = 0;
  private turnStart = 0;
  private ticking = false;
  private closingTurn = false;
  /** Slices waiting for their turn, oldest first. */
  private readonly waiting: (() => void)[] = [];
  private pumping = false;

  constructor(
    private readonly share: BatchShare,
    private readonly stats: BatchBudgetStats = { largeBatchSlices: 0, largeBatchBusyMs: 0 },
    private readonly now: () => number = () => performance.now(),
    private readonly busyMs: () => number = loopBusyMs,
  ) {
    this.tokensMs = (batchBudgetDefaults.windowMs * share.sharePercent) / 100;
    this.lastMs = now();
    this.chargedTo = busyMs();
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

  /** Event-loop time taken outside run(), charged directly. */
  spent(ms: number): void {
    this.settle();
    this.tokensMs -= ms;
    this.stats.largeBatchBusyMs += ms;
  }

  /** Charges the busy time from `fromBusy` (or from what was charged last, if later) to now. */
  private chargeSince(fromBusy: number): void {
    const busy = this.busyMs();
    const from = Math.max(fromBusy, this.chargedTo);
    if (busy > from) this.spent(busy - from);
    this.chargedTo = Math.max(this.chargedTo, busy);
  }

  /**
   * Runs a batch's steps (see BatchStep) until none remain. A small batch (`large` false)
   * runs them at once. A large one runs them in bounded slices under the budget (see the
   * class): its steps, and what they forward, are charged to it.
   */
  async run(large: boolean, step: BatchStep): Promise<void> {
    const forwarded: Promise<unknown>[] = [];
    if (!large) {
      while (step(forwarded));
      return;
    }
    const { sliceMs, sliceItems, maxForwardWaitMs } = batchBudgetDefaults;
    for (let more = true; more; ) {
      await this.turn();
      this.stats.largeBatchSlices++;
      // The forwarder writes what a slice forwarded in immediates it queues meanwhile: between these two.
      let encodingFrom = Infinity;
      setImmediate(() => void (encodingFrom = this.busyMs()));
      const from = this.busyMs();
      try {
        const until = this.now() + sliceMs;
        for (let steps = 1; (more = step(forwarded)) && steps < sliceItems && this.now() < until; steps++);
      } finally {
        this.chargeSince(from);
      }
      if (forwarded.length > 0) {
        setImmediate(() => this.chargeSince(encodingFrom));
        for (const answer of forwarded) this.awaitAnswer(answer);
        await settledWithin(forwarded, maxForwardWaitMs);
        forwarded.length = 0;
      }
    }
  }

  /** Watches a forwarded request until its answer lands: that turn is charged (see the class). */
  private awaitAnswer(answer: Promise<unknown>): void {
    if (this.awaiting++ === 0 && !this.ticking) {
      this.ticking = true;
      this.turnStart = this.busyMs();
      setImmediate(this.tick);
    }
    answer.then(this.answered, this.answered);
  }

  /** Marks the start of each turn while answers are awaited. */
  private readonly tick = (): void => {
    this.turnStart = this.busyMs();
    if (this.awaiting > 0) setImmediate(this.tick);
    else this.ticking = false;
  };

  /** An answer landed: its turn is charged from its start to the end of its immediates. */
  private readonly answered = (): void => {
    this.awaiting--;
    if (this.closingTurn) return;
    this.closingTurn = true;
    this.chargeSince(this.turnStart);
    setImmediate(this.closeTurn);
  };

  private readonly closeTurn = (): void => {
    this.closingTurn = false;
    this.chargeSince(this.chargedTo);
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
