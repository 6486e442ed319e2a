/** Greedy split into chunks whose summed sizes stay within `budgetBytes` (an oversize item goes alone). */
export function chunkBySize<T>(items: readonly T[], budgetBytes: number, sizeOf: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let used = 0;
  for (const item of items) {
    const bytes = sizeOf(item);
    if (used + bytes > budgetBytes && chunk.length > 0) {
      chunks.push(chunk);
      chunk = [];
      used = 0;
    }
    chunk.push(item);
    used += bytes;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
