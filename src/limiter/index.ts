export { createLimiter, Limiter, limiterDefaults, limitFromRate, type AcquireOptions, type LimiterOptions, type LimiterStats } from './limiter.js';
export { LimiterStore, storeDefaults, type StoreOptions, type StoreStats } from './store.js';
export { decide, merge, rebase, reserve, type Step } from './pure.js';
export { requestLimits } from './limits.js';
export { resolveRequest, newResolvedParams, parseAlgorithm } from './validate.js';
export { ALGORITHMS, type Algorithm, type Decision, type LimiterState, type RateLimitRequest, type Reservation, type ResolvedParams, type ResolvedPolicy } from './types.js';
export { Policies, policyLimits, type PolicyDocument, type PolicyRuleInput } from './policies.js';
export { PolicyHandle, type PolicyCallOptions, type PolicySpec } from './policy-handle.js';
