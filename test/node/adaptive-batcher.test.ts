import { describe, expect, it } from 'vitest';
import { AdaptiveBatcher, type BatchQueue } from '../../src/node/adaptive-batcher.js';

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function recording(init: { maxBatchSize: number; maxFramesInFlight: number }, accept: () => boolean = () => true) {
  const frames: number[][] = [];
  const batcher = new AdaptiveBatcher<number>((_queue: BatchQueue<number>, items) => {
    frames.push(items);
    return accept();
  }, { ...init, batchWaitMs: 0 });
  return { frames, batcher, queue: batcher.queue('peer') };
}

describe('AdaptiveBatcher: send these in batches', () => {
  it('items added in one turn go out together at its end; a lone item goes out at once', async () => {
    const { frames, batcher, queue } = recording({ maxBatchSize: 100, maxFramesInFlight: 2 });
    for (let i = 0; i < 5; i++) batcher.add(queue, i);
    expect(frames).toEqual([]);
    await endOfTurn();
    expect(frames).toEqual([[0, 1, 2, 3, 4]]);
    batcher.add(queue, 5);
    await endOfTurn();
    expect(frames).toEqual([[0, 1, 2, 3, 4], [5]]);
    expect(queue.framesInFlight).toBe(2);
  });

  it('while maxFramesInFlight frames await the destination, items gather into the next frame, sent when one is processed', async () => {
    const { frames, batcher, queue } = recording({ maxBatchSize: 100, maxFramesInFlight: 1 });
    batcher.add(queue, 1);
    await endOfTurn();
    for (let i = 2; i <= 4; i++) {
      batcher.add(queue, i);
      await endOfTurn();
    }
    expect(frames).toEqual([[1]]);
    batcher.framesDone(queue, 1);
    await endOfTurn();
    expect(frames).toEqual([[1], [2, 3, 4]]);
  });

  it('a full batch goes at once, whatever is in flight, and never more than maxBatchSize per frame', async () => {
    const { frames, batcher, queue } = recording({ maxBatchSize: 3, maxFramesInFlight: 1 });
    batcher.add(queue, 1);
    await endOfTurn();
    for (let i = 2; i <= 7; i++) batcher.add(queue, i);
    expect(frames).toEqual([[1], [2, 3, 4], [5, 6, 7]]);
  });

  it('a frame the sender could not send does not count as in flight; reset and take empty a destination', async () => {
    let accept = false;
    const { frames, batcher, queue } = recording({ maxBatchSize: 10, maxFramesInFlight: 1 }, () => accept);
    batcher.add(queue, 1);
    await endOfTurn();
    expect(queue.framesInFlight).toBe(0);
    accept = true;
    batcher.add(queue, 2);
    await endOfTurn();
    batcher.add(queue, 3);
    await endOfTurn();
    expect(frames).toEqual([[1], [2]]);
    expect(batcher.take(queue)).toEqual([3]);
    batcher.reset(queue);
    expect(queue.framesInFlight).toBe(0);
  });
});
