/** One destination's waiting items, and how many of its frames it has not processed yet. */
export interface BatchQueue<T> {
  readonly key: string;
  items: T[];
  framesInFlight: number;
  flushScheduled: boolean;
  /** Made once per destination: flushes at the end of the current event-loop turn. */
  readonly flushSoon: () => void;
}

export interface AdaptiveBatcherInit {
  /** Items per frame. */
  maxBatchSize: number;
  /**
   * Frames sent and not yet processed, shared by the destinations that have some in
   * flight; each destination may always have one.
   */
  maxFramesInFlight: number;
  /**
   * Items that go out at once, mid-turn, while their destination has room in the window:
   * it starts on them while this side still gathers the rest of the turn's items.
   */
  eagerBatchSize: number;
  /** 0: adaptive. Otherwise a fixed wait before each round of frames, whatever is in flight. */
  batchWaitMs: number;
}

/**
 * "Send these in batches", for every stream that carries many small requests: the
 * forwarder's peer streams and the client's AllowStream. Batching adapts to load like a
 * pipelining client:
 * - items go out at the end of the current event-loop turn (setImmediate: answers that
 *   came in the same poll are all handled first, so their follow-ups share a frame) while
 *   their destination has room in the window;
 * - otherwise they gather into the next frame, sent as soon as the destination reports
 *   one processed;
 * - eagerBatchSize items go out at once, mid-turn, when there is room: with one
 *   destination the two sides then work at the same time instead of taking turns;
 * - a full batch goes at once.
 * The window of maxFramesInFlight frames is shared by the destinations in use: talking to
 * one node, a client pipelines several frames; talking to many (whose processes share
 * the cores), each gets one or two, and frames stay large. No timer per item.
 */
export class AdaptiveBatcher<T> {
  private readonly queues = new Map<string, BatchQueue<T>>();
  /** Destinations with at least one frame in flight. */
  private busyDestinations = 0;
  private waitScheduled = false;
  private readonly flushAll = (): void => {
    this.waitScheduled = false;
    for (const queue of this.queues.values()) this.flush(queue);
  };

  /**
   * `send` sends one frame of `items` to the queue's destination and returns true; or
   * returns false when it cannot, having taken care of the items itself (a failover).
   */
  constructor(
    private readonly send: (queue: BatchQueue<T>, items: T[]) => boolean,
    private readonly init: AdaptiveBatcherInit,
  ) {}

  /** The queue for destination `key`, made on first use. */
  queue(key: string): BatchQueue<T> {
    let queue = this.queues.get(key);
    if (queue === undefined) {
      const created: BatchQueue<T> = {
        key,
        items: [],
        framesInFlight: 0,
        flushScheduled: false,
        flushSoon: () => {
          created.flushScheduled = false;
          if (this.hasRoom(created)) this.flush(created);
        },
      };
      this.queues.set(key, created);
      queue = created;
    }
    return queue;
  }

  add(queue: BatchQueue<T>, item: T): void {
    queue.items.push(item);
    const length = queue.items.length;
    if (length >= this.init.maxBatchSize || (length >= this.init.eagerBatchSize && this.hasRoom(queue))) {
      this.flush(queue);
    } else if (this.init.batchWaitMs > 0) {
      if (!this.waitScheduled) {
        this.waitScheduled = true;
        setTimeout(this.flushAll, this.init.batchWaitMs);
      }
    } else {
      this.flushWhenRoom(queue);
    }
  }

  /** `frames` frames to this destination were processed (or given up): what waits may go out. */
  framesDone(queue: BatchQueue<T>, frames: number): void {
    this.setInFlight(queue, Math.max(0, queue.framesInFlight - frames));
    if (queue.items.length > 0) this.flushWhenRoom(queue);
  }

  /** The destination's stream broke: none of its frames is in flight any more. */
  reset(queue: BatchQueue<T>): void {
    this.setInFlight(queue, 0);
  }

  /** Removes and returns what waits for this destination. */
  take(queue: BatchQueue<T>): T[] {
    const items = queue.items;
    queue.items = [];
    return items;
  }

  /** Removes and returns everything waiting, for every destination (closing). */
  takeAll(): T[] {
    const all: T[] = [];
    for (const queue of this.queues.values()) all.push(...this.take(queue));
    return all;
  }

  /** Whether `queue` may send another frame now: its share of the window, at least one frame. */
  private hasRoom(queue: BatchQueue<T>): boolean {
    if (queue.framesInFlight === 0) return true;
    return (queue.framesInFlight + 1) * this.busyDestinations <= this.init.maxFramesInFlight;
  }

  private setInFlight(queue: BatchQueue<T>, frames: number): void {
    if (queue.framesInFlight === 0 && frames > 0) this.busyDestinations++;
    else if (queue.framesInFlight > 0 && frames === 0) this.busyDestinations--;
    queue.framesInFlight = frames;
  }

  private flushWhenRoom(queue: BatchQueue<T>): void {
    if (!queue.flushScheduled && this.hasRoom(queue)) {
      queue.flushScheduled = true;
      setImmediate(queue.flushSoon);
    }
  }

  private flush(queue: BatchQueue<T>): void {
    const items = queue.items;
    if (items.length === 0) return;
    queue.items = items.length > this.init.maxBatchSize ? items.splice(this.init.maxBatchSize) : [];
    if (this.send(queue, items)) this.setInFlight(queue, queue.framesInFlight + 1);
  }
}
