// Throttling with the in-process limiter: 20 jobs paced to 5 per second, waiting instead of
// failing (npm run build first).   node examples/throttle.mjs
import { createLimiter } from 'ringlimit';

const limiter = createLimiter();
const started = Date.now();
const jobs = Array.from({ length: 20 }, (_, i) => i);
await Promise.all(
  jobs.map(async (job) => {
    // acquire() waits for a slot (one shared timer for every waiter), at most maxWaitMs.
    const r = await limiter.acquire({ key: 'crawler', action: 'fetch', limit: 5, windowMs: 1_000, burst: 1 }, { maxWaitMs: 10_000 });
    console.log(`job ${String(job).padStart(2)} ${r.allowed ? 'ran' : 'refused'} at +${Date.now() - started} ms`);
  }),
);
limiter.close();
