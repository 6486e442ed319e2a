/** One destination's waiting items, and how many of its frames it has not processed yet. */
export interface BatchQueue<T> {
  readonly key: string;
  items: T[];
  framesInFlight: number;
  flushScheduled: boolean;
  /** Made once per destination: flushes at the end of the current turn's synchronous work. */
  readonly flushSoon: () => void;
}

export interface AdaptiveBatcherInit {
  /** Items per frame. */
  maxBatchSize: number;
  /** Frames a destination has not processed yet before new items wait for the next frame. */
  maxFramesInFlight: number;
  /** 0: adaptive. Otherwise a fixed wait before each round of frames, whatever is in flight. */
  batchWaitMs: number;
}

/**
 * "Send these in batches", for every stream that carries many small requests: the
 * forwarder's peer streams and the client's AllowStream. Batching adapts to load like a
 * pipelining client: items go out at the end of the current turn while fewer than
 * maxFramesInFlight frames await their destination; otherwise they gather into the next
 * frame, sent as soon as the destination reports one processed. A full batch goes at
 * once. No timer per item.
 */
export class AdaptiveBatcher<T> {
  private readonly queues = new Map<string, BatchQueue<T>>();
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
          if (created.framesInFlight < this.init.maxFramesInFlight) this.flush(created);
        },
      };
      this.queues.set(key, created);
      queue = created;
    }
    return queue;
  }

  add(queue: BatchQueue<T>, item: T): void {
    queue.items.push(item);
    if (queue.items.length >= this.init.maxBatchSize) {
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
    queue.framesInFlight = Math.max(0, queue.framesInFlight - frames);
    if (queue.items.length > 0) this.flushWhenRoom(queue);
  }

  /** The destination's stream broke: none of its frames is in flight any more. */
  reset(queue: BatchQueue<T>): void {
    queue.framesInFlight = 0;
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

  private flushWhenRoom(queue: BatchQueue<T>): void {
    if (!queue.flushScheduled && queue.framesInFlight < this.init.maxFramesInFlight) {
      queue.flushScheduled = true;
      queueMicrotask(queue.flushSoon);
    }
  }

  private flush(queue: BatchQueue<T>): void {
    const items = queue.items;
    if (items.length === 0) return;
    queue.items = items.length > this.init.maxBatchSize ? items.splice(this.init.maxBatchSize) : [];
    if (this.send(queue, items)) queue.framesInFlight++;
  }
}
