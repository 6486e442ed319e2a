import { describe, expect, it } from 'vitest';
import { AdaptiveBatcher, type BatchQueue } from '../../src/node/routing/adaptive-batcher.js';

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function recording(init: { maxBatchSize: number; maxFramesInFlight: number; eagerBatchSize?: number }, accept: () => boolean = () => true) {
  const frames: number[][] = [];
  const sentTo: string[] = [];
  const batcher = new AdaptiveBatcher<number>((queue: BatchQueue<number>, items) => {
    frames.push(items);
    sentTo.push(queue.key);
    return accept();
  }, { eagerBatchSize: 1_000, ...init, batchWaitMs: 0 });
  return { frames, sentTo, batcher, queue: batcher.queue('peer') };
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

  it('eagerBatchSize items go out mid-turn while the window has room; the rest of the turn gathers at its end', async () => {
    const { frames, batcher, queue } = recording({ maxBatchSize: 100, maxFramesInFlight: 2, eagerBatchSize: 3 });
    for (let i = 1; i <= 8; i++) batcher.add(queue, i);
    // Two eager frames fill the window; 7 and 8 wait for room.
    expect(frames).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    await endOfTurn();
    expect(frames.length).toBe(2);
    batcher.framesDone(queue, 1);
    await endOfTurn();
    expect(frames).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8],
    ]);
  });

  it('the window is shared by the destinations with frames in flight, and each may always have one', async () => {
    const { sentTo, batcher } = recording({ maxBatchSize: 100, maxFramesInFlight: 4 });
    const [a, b, c] = ['a', 'b', 'c'].map((key) => batcher.queue(key)) as [BatchQueue<number>, BatchQueue<number>, BatchQueue<number>];
    // Alone, a destination pipelines up to the whole window.
    for (let turn = 0; turn < 5; turn++) {
      batcher.add(a, turn);
      await endOfTurn();
    }
    expect(a.framesInFlight).toBe(4);
    expect(batcher.take(a)).toEqual([4]);
    // Three busy destinations: a has more than its share and waits; b and c still get their first frame.
    batcher.add(b, 10);
    batcher.add(c, 20);
    await endOfTurn();
    expect(sentTo.slice(4)).toEqual(['b', 'c']);
    batcher.framesDone(a, 3);
    batcher.add(a, 5);
    await endOfTurn();
    // a's one frame left in flight is its share of 4 among 3: the new item waits for it.
    expect(sentTo.length).toBe(6);
    // Its frame processed, a sends what waited.
    batcher.framesDone(a, 1);
    await endOfTurn();
    expect(sentTo.slice(6)).toEqual(['a']);
    // b and c idle again: a alone may pipeline once more.
    batcher.framesDone(b, 1);
    batcher.framesDone(c, 1);
    batcher.add(a, 6);
    await endOfTurn();
    expect(sentTo.slice(7)).toEqual(['a']);
    expect(a.framesInFlight).toBe(2);
  });
});
