export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Ms until `check` holds (polled every intervalMs), or -1 if it did not within timeoutMs. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, intervalMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await check()) return Date.now() - t0;
    await sleep(intervalMs);
  }
  return -1;
}
