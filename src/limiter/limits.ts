/** Documented input bounds. Exported so the wire API and docs quote the same numbers. */
export const requestLimits = {
  /** Longest key, in UTF-8 bytes. */
  maxKeyBytes: 1024,
  /** Longest action name, in UTF-8 bytes. */
  maxActionBytes: 256,
  minWindowMs: 1,
  /** 24 hours. */
  maxWindowMs: 86_400_000,
  /** Largest weight. Above this a limit is better expressed directly. */
  maxWeight: 1_000_000,
  /** Effective limits (limit × weight) must stay exact in a double. */
  maxEffectiveLimit: Number.MAX_SAFE_INTEGER,
} as const;
